// The state dir holds everything the daemon owns: daemon.json, token, SQLite database, object store,
// working folders and logs. It is private to the user (0700) and refused when it is more open.
import { mkdirSync, statSync, chmodSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SkyfarmError } from '../errors.js';

export function stateDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  if (env['SKYFARM_HOME']) return env['SKYFARM_HOME'];
  const xdg = env['XDG_STATE_HOME'] || join(env['HOME'] || homedir(), '.local', 'state');
  return join(xdg, 'skyfarm');
}

export interface StatePaths {
  root: string;
  daemonInfo: string;
  lock: string;
  token: string;
  database: string;
  store: string;
  work: string;
  logs: string;
  daemonLog: string;
}

export function statePaths(root: string): StatePaths {
  return {
    root,
    daemonInfo: join(root, 'daemon.json'),
    lock: join(root, 'daemon.lock'),
    token: join(root, 'token'),
    database: join(root, 'skyfarm.sqlite'),
    store: join(root, 'store'),
    work: join(root, 'work'),
    logs: join(root, 'logs'),
    daemonLog: join(root, 'daemon.log'),
  };
}

/** Creates the state dir 0700, or checks an existing one is not readable by others. */
export function ensureStateDir(root: string): StatePaths {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const mode = statSync(root).mode & 0o777;
  if (mode & 0o077) {
    if (process.platform === 'win32') return statePaths(root);
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `state dir ${root} is accessible by other users (mode ${mode.toString(8)}); run \`chmod 700 ${root}\``,
    );
  }
  const paths = statePaths(root);
  for (const dir of [paths.store, paths.work, paths.logs]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  return paths;
}
