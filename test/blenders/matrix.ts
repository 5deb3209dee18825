// Runs the Blender-facing tests (test/blenders/matrix.txt) once more with each newer Blender, after the
// full suite ran with the default one (Debian 12's 3.4 in CI): `npm run test:blenders`.
//
// The Blenders: SKYFARM_TEST_BLENDERS (comma-separated commands), else every `blender-<suite>` wrapper
// that test/blenders/setup.sh installed and that is on PATH (blender-trixie = 4.3, blender-sid = 5.x).
// Each run gets SKYFARM_BLENDER set to that Blender. Exits non-zero when any run fails; says so, and
// exits 0, when no newer Blender is installed here (CI installs them: .ci/run).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const WRAPPERS = ['blender-trixie', 'blender-sid'];

/** The test files in matrix.txt: one per line, `#` starts a comment. */
function matrixFiles(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '');
}

function version(command: string): string | null {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) return null;
  return /^Blender (\d+\.\d+(?:\.\d+)?(?: LTS)?)/m.exec(result.stdout)?.[1] ?? null;
}

function blenders(): string[] {
  const configured = process.env.SKYFARM_TEST_BLENDERS?.trim();
  if (configured)
    return configured
      .split(',')
      .map((command) => command.trim())
      .filter(Boolean);
  return WRAPPERS.filter((command) => version(command) !== null);
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: 'inherit' });
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function main(): Promise<number> {
  const files = matrixFiles(readFileSync(path.join(here, 'matrix.txt'), 'utf8'));
  const found = blenders();
  if (found.length === 0) {
    console.log(
      'test:blenders: no newer Blender on this machine (blender-trixie, blender-sid): the ' +
        `${files.length} Blender-facing test files ran only with the default Blender. ` +
        'Install them with "sudo test/blenders/setup.sh trixie" and "sudo test/blenders/setup.sh sid" (as .ci/run does).',
    );
    return 0;
  }
  const results: Array<{ blender: string; version: string | null; code: number; seconds: number }> = [];
  for (const blender of found) {
    const blenderVersion = version(blender);
    console.log(`\ntest:blenders: ${files.length} files with ${blender} (Blender ${blenderVersion ?? '?'})`);
    const started = Date.now();
    const code = blenderVersion
      ? await run('npx', ['tap', ...files], { ...process.env, SKYFARM_BLENDER: blender })
      : 1;
    results.push({ blender, version: blenderVersion, code, seconds: (Date.now() - started) / 1000 });
  }
  for (const result of results) {
    const verdict = result.version === null ? 'does not run' : result.code === 0 ? 'passed' : 'FAILED';
    console.log(
      `test:blenders: ${result.blender} (Blender ${result.version ?? '?'}) ${verdict} in ${result.seconds.toFixed(0)} s`,
    );
  }
  return results.every((result) => result.code === 0) ? 0 : 1;
}

process.exitCode = await main();
