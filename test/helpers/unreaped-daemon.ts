// A `skyfarm daemon` whose parent never waits for it, as under a container's PID 1 that reaps dead
// processes late: `sh` starts the daemon in the background, prints its pid and becomes `sleep`
// (exec), which never calls wait(). Killed, the daemon stays a zombie (state Z) until the test ends.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { cliEntry } from './cli.js';
import { until } from './until.js';
import { readDaemonInfo } from '../../daemon/src/config/daemon-lock.js';

/** A process's state letter from /proc (Linux): R, S, D, Z (zombie) …; undefined once it is gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2];
  } catch {
    return undefined;
  }
}

export interface UnreapedDaemon {
  /** The daemon's pid. */
  pid: number;
  /** Its parent, `sleep`, which never reaps it. */
  parentPid: number;
}

/** Starts the daemon (output to `logFile`) and waits until it has written daemon.json. */
export async function startUnreapedDaemon(
  t: Test,
  env: NodeJS.ProcessEnv,
  logFile: string,
): Promise<UnreapedDaemon> {
  const home = env['SKYFARM_HOME'];
  if (!home) throw new Error('startUnreapedDaemon needs SKYFARM_HOME in env');
  const parent = spawn(
    'sh',
    [
      '-c',
      '"$0" "$@" </dev/null >"$SKYFARM_TEST_LOG" 2>&1 & echo $!; exec sleep 900',
      process.execPath,
      cliEntry,
      'daemon',
    ],
    { env: { ...env, SKYFARM_TEST_LOG: logFile }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const parentPid = parent.pid!;
  let out = '';
  parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  let pid = 0;
  t.teardown(() => {
    // The daemon first (if the test left it running), then its parent: the zombie goes to PID 1.
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    parent.kill('SIGKILL');
  });
  await until('the daemon pid from sh', () => /^\d+\n/.test(out), 10_000);
  pid = Number(out.trim());
  await until(
    'the daemon to write daemon.json',
    () => readDaemonInfo(`${home}/daemon.json`)?.pid === pid,
    60_000,
    50,
  );
  return { pid, parentPid };
}
