// Runs the real `skyfarm` CLI (the built one in dist/, as users run it) in a child process.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
export const cliEntry = `${projectRoot}dist/daemon/src/cli/main.js`;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; onStdout?: (text: string) => void },
): Promise<CliResult> {
  if (!existsSync(cliEntry))
    throw new Error(`${cliEntry} is missing: run \`npm run build\` first (npm test does)`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, ...args], {
      env: options.env,
      cwd: options.cwd ?? projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      options.onStdout?.(chunk.toString());
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `skyfarm ${args.join(' ')} did not finish in ${options.timeoutMs ?? 120_000} ms\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** An environment with a private state dir; the daemon a test starts through the CLI is stopped at teardown. */
export function cliEnv(t: Test, stateDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, SKYFARM_HOME: stateDir, SKYFARM_PORT: '0', ...extra };
  t.teardown(async () => {
    await runCli(['daemon', 'stop'], { env, timeoutMs: 30_000 });
  });
  return env;
}
