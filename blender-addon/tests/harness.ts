// Shared by the test/addon-*.test.ts wrappers: runs python3 and real Blender on the add-on's test
// scripts, starts and stops Xvfb, and cleans up daemons that Blender started. Every process started
// here is stopped by its pid.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const addonRoot = path.join(repoRoot, 'blender-addon');
export const addonTests = path.join(addonRoot, 'tests');
export const cliEntry = path.join(repoRoot, 'dist', 'daemon', 'src', 'cli', 'main.js');
export const artifactsRoot = path.join(repoRoot, '.tap', 'artifacts');
export const blender = process.env.SKYFARM_BLENDER?.trim() || 'blender';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion (SIGKILL by pid after timeoutMs) and returns its output. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd ?? repoRoot });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Last lines of a process's output, for assertion messages. */
export function tail(result: RunResult, lines = 60): string {
  return `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-lines).join('\n');
}

/**
 * Environment for a Blender run: private config/scripts/temp folders so nothing touches the user's
 * Blender setup or collides with parallel tests.
 */
export function blenderEnv(t: Test, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // Not t.testdir(): calling that again would wipe the test's own fixture folder.
  const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-blender-'));
  for (const sub of ['config', 'scripts', 'tmp']) mkdirSync(path.join(dir, sub));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return {
    ...process.env,
    BLENDER_USER_CONFIG: path.join(dir, 'config'),
    BLENDER_USER_SCRIPTS: path.join(dir, 'scripts'),
    TMPDIR: path.join(dir, 'tmp'),
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}

/** Runs one of blender-addon/tests/blender/*.py with JSON arguments and checks it passed. */
export async function runBlenderScript(
  t: Test,
  options: {
    script: string;
    args: Record<string, unknown>;
    env: NodeJS.ProcessEnv;
    blendFile?: string;
    background?: boolean;
    timeoutMs: number;
  },
): Promise<RunResult> {
  const argv = [
    ...(options.background === false ? [] : ['-b']),
    '--factory-startup',
    ...(options.blendFile ? [options.blendFile] : []),
    '--python-exit-code',
    '1',
    '--python',
    path.join(addonTests, 'blender', options.script),
    '--',
    JSON.stringify(options.args),
  ];
  let result = await run(blender, argv, { env: options.env, timeoutMs: options.timeoutMs });
  const crash = crashReport(result).crash;
  if (options.background === false && crash !== undefined && !/SKYFARM_TEST_FAILED/.test(result.stdout)) {
    // Blender 3.4 under Xvfb rarely segfaults early in a GUI run: seen in about 1 run of gui_upload.py
    // in 6 on a loaded machine, right after the add-on was enabled; the report has no C backtrace and
    // its Python one shows only the add-on's network thread queueing a status. Not understood yet, so
    // the scenario runs once more, with the report shown; a second crash fails the test.
    t.comment(`Blender crashed running ${options.script}; running it once more. Crash report:\n${crash}`);
    result = await run(blender, argv, { env: options.env, timeoutMs: options.timeoutMs });
  }
  t.notOk(result.timedOut, `${options.script} finished within ${options.timeoutMs / 1000} s`);
  t.equal(result.code, 0, `${options.script} exits 0`, { output: tail(result), ...crashReport(result) });
  t.match(result.stdout, /SKYFARM_TEST_PASSED/, `${options.script} reports success`, { output: tail(result) });
  t.notMatch(result.stdout, /SKYFARM_TEST_FAILED/, `${options.script} reports no failure`);
  return result;
}

/** When Blender crashed, the report it wrote (its temp folder is removed at teardown). */
function crashReport(result: RunResult): { crash?: string } {
  const written = /Writing: (\S+\.crash\.txt)/.exec(result.stdout + result.stderr)?.[1];
  if (!written || !existsSync(written)) return {};
  return { crash: readFileSync(written, 'utf8').slice(0, 20_000) };
}

/** Builds the add-on zip with blender-addon/build.py into `output`. */
export async function buildAddonZip(output: string): Promise<RunResult> {
  return run('python3', [path.join(addonRoot, 'build.py'), '--output', output], { timeoutMs: 60_000 });
}

function displayInUse(display: number): boolean {
  return existsSync(`/tmp/.X11-unix/X${display}`) || existsSync(`/tmp/.X${display}-lock`);
}

/** Starts Xvfb on a free display number and stops it (by pid) when the test ends. */
export async function startXvfb(t: Test): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const display = 100 + Math.floor(Math.random() * 800);
    if (displayInUse(display)) continue;
    const server = spawn('Xvfb', [`:${display}`, '-screen', '0', '1600x1000x24', '-nolisten', 'tcp'], {
      stdio: 'ignore',
    });
    let exited = false;
    server.once('exit', () => (exited = true));
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline && !existsSync(`/tmp/.X11-unix/X${display}`)) await sleep(50);
    if (!exited && existsSync(`/tmp/.X11-unix/X${display}`)) {
      t.teardown(async () => {
        if (!exited && server.pid) process.kill(server.pid, 'SIGTERM');
        const stopDeadline = Date.now() + 5000;
        while (!exited && Date.now() < stopDeadline) await sleep(50);
        if (!exited && server.pid) process.kill(server.pid, 'SIGKILL');
      });
      return `:${display}`;
    }
    if (!exited && server.pid) process.kill(server.pid, 'SIGKILL');
  }
  throw new Error('could not start Xvfb on a free display');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the daemon a test let Blender start (`skyfarm daemon start`), found by its daemon.json. */
export async function stopDaemonIn(stateDir: string): Promise<void> {
  const infoPath = path.join(stateDir, 'daemon.json');
  if (!existsSync(infoPath)) return;
  const { pid } = JSON.parse(readFileSync(infoPath, 'utf8')) as { pid: number };
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * A state dir for a daemon that Blender starts itself (`skyfarm daemon start`). It lives outside the
 * tap fixture so the teardown can still read daemon.json and stop that daemon before the folder goes.
 */
export function daemonHomeStartedByBlender(t: Test): string {
  const home = mkdtempSync(path.join(tmpdir(), 'skyfarm-home-'));
  t.teardown(async () => {
    await stopDaemonIn(home);
    rmSync(home, { recursive: true, force: true });
  });
  return home;
}

/** A folder for files a human should look at after the run (screenshots). */
export function artifactsDir(name: string): string {
  const dir = path.join(artifactsRoot, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Whether Blender runs here; CI installs it, so a missing Blender fails loudly rather than skipping. */
export function blenderVersion(): string {
  const result = spawnSync(blender, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`"${blender} --version" failed: install Blender or set SKYFARM_BLENDER`);
  return result.stdout.split('\n')[0] ?? '';
}
