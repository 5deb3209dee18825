// Starting, stopping and finding the background daemon.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { DaemonClient } from '../client/daemon-client.js';
import { ensureStateDir, statePaths } from '../config/state-dir.js';
import { daemonLockState, processAlive, readDaemonInfo, type DaemonInfo } from '../config/daemon-lock.js';
import { SkyfarmError } from '../errors.js';
import { DAEMON_VERSION } from '../version.js';

const CLI_ENTRY = fileURLToPath(new URL('./main.js', import.meta.url));

/**
 * V8 grows its young generation to suit the busiest moment (up to 16 MiB per semi-space), and an idle
 * daemon kept what a big upload made it take. With the semi-spaces capped at 4 MiB it gives memory
 * back once idle: measured ~190 → ~105 MiB RSS 30 s after uploading a 10,000-file project, with no
 * measurable change in upload time (`npm run bench`, daemon_idle_rss_mb).
 */
const DAEMON_NODE_FLAGS = ['--max-semi-space-size=4'];

/**
 * glibc's allocator keeps what an upload frees: every thread that allocates (hash workers, V8's and
 * libuv's helper threads) gets an arena of its own that stays mostly empty but resident, and the main
 * heap is only given back from its top. Two arenas in all, and freed memory above 128 KiB returned,
 * took the daemon idling after a 10,000-file upload from 91-93 to ~82 MiB RSS (daemon_idle_rss_mb).
 * Blocks of 16 KiB or more are mapped on their own, so they go back when freed instead of leaving
 * holes between live blocks that only malloc_trim (which Node.js cannot call) would return: with
 * SQLite's smaller page cache (db/database.ts), 76-77 MiB. Settings the user gives in
 * GLIBC_TUNABLES win; other C libraries ignore the variable.
 */
const DAEMON_GLIBC_TUNABLES: Record<string, string> = {
  'glibc.malloc.arena_max': '2',
  'glibc.malloc.trim_threshold': '131072',
  'glibc.malloc.mmap_threshold': '16384',
};

/** Where the background daemon finds the user's own GLIBC_TUNABLES (empty: none), for its children. */
const USER_TUNABLES_VAR = 'SKYFARM_USER_GLIBC_TUNABLES';

/** GLIBC_TUNABLES for the background daemon: ours, then the user's own (a later setting wins). */
export function daemonGlibcTunables(user: string | undefined): string {
  const own = (user ?? '').split(':').filter((item) => item.includes('='));
  const set = new Set(own.map((item) => item.slice(0, item.indexOf('='))));
  const ours = Object.entries(DAEMON_GLIBC_TUNABLES)
    .filter(([name]) => !set.has(name))
    .map(([name, value]) => `${name}=${value}`);
  return [...ours, ...own].join(':');
}

/**
 * The daemon's own allocator settings are not for the programs it runs (Blender renders with many
 * threads of its own): a daemon started by `startDetachedDaemon` puts the user's GLIBC_TUNABLES back
 * in its environment (glibc read the variable when the process started) before it starts anything.
 */
export function restoreUserGlibcTunables(env: NodeJS.ProcessEnv): void {
  const user = env[USER_TUNABLES_VAR];
  if (user === undefined) return;
  if (user === '') delete env['GLIBC_TUNABLES'];
  else env['GLIBC_TUNABLES'] = user;
  delete env[USER_TUNABLES_VAR];
}

export async function connect(stateDir: string, timeoutMs = 5000): Promise<DaemonClient> {
  return DaemonClient.connect({
    stateDir,
    clientName: 'skyfarm-cli',
    clientVersion: DAEMON_VERSION,
    timeoutMs,
  });
}

export async function daemonStatus(stateDir: string): Promise<DaemonInfo | undefined> {
  try {
    const client = await connect(stateDir, 3000);
    client.close();
    return client.daemon;
  } catch {
    return undefined;
  }
}

/** Starts a detached daemon and waits until it answers; its output goes to daemon.log. */
export async function startDetachedDaemon(stateDir: string, env: NodeJS.ProcessEnv): Promise<DaemonInfo> {
  const paths = ensureStateDir(stateDir);
  const logFd = openSync(paths.daemonLog, 'a', 0o600);
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, CLI_ENTRY, 'daemon'], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: {
      ...env,
      SKYFARM_HOME: stateDir,
      GLIBC_TUNABLES: daemonGlibcTunables(env['GLIBC_TUNABLES']),
      [USER_TUNABLES_VAR]: env['GLIBC_TUNABLES'] ?? '',
    },
  });
  closeSync(logFd);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    // Lost the lock to a daemon started at the same moment (another command, another click): that
    // one is the daemon, once it answers.
    if (exited !== null && daemonLockState(paths.lock) !== 'held') {
      const tail = readFileSync(paths.daemonLog, 'utf8').trim().split('\n').slice(-3).join('\n');
      const running = /already running/.exec(tail);
      throw new SkyfarmError(
        running ? 'DAEMON_RUNNING' : 'DAEMON_UNREACHABLE',
        `the daemon exited right away (code ${exited}); see ${paths.daemonLog}:\n${tail}`,
      );
    }
    const info = await daemonStatus(stateDir);
    if (info) return info;
    await sleep(150);
  }
  throw new SkyfarmError(
    'DAEMON_UNREACHABLE',
    `the daemon did not start within 20 s; see ${paths.daemonLog}`,
  );
}

/** Connects to the running daemon, starting one first when none answers. */
export async function connectOrStart(
  stateDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ client: DaemonClient; started: boolean }> {
  try {
    return { client: await connect(stateDir), started: false };
  } catch (error) {
    if (!(error instanceof SkyfarmError) || error.code !== 'DAEMON_UNREACHABLE') throw error;
  }
  await startDetachedDaemon(stateDir, env);
  return { client: await connect(stateDir), started: true };
}

/** Whether the state dir's daemon lock is held ('unknown' counts: the lock cannot be read here). */
function lockHeld(stateDir: string): boolean {
  return daemonLockState(statePaths(stateDir).lock) !== 'free';
}

/**
 * The running daemon's pid, port and version: as it answers itself (its token proves it is this state
 * dir's daemon), else — starting, or hung — from daemon.json, which only the lock holder writes.
 */
async function runningDaemon(stateDir: string): Promise<DaemonInfo | undefined> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const client = await connect(stateDir, 3000);
      try {
        const { pid, version } = await client.request('daemon.info', {});
        return { pid, port: client.daemon.port, version };
      } finally {
        client.close();
      }
    } catch {
      // not answering (yet)
    }
    if (!lockHeld(stateDir)) return undefined;
    const info = readDaemonInfo(statePaths(stateDir).daemonInfo);
    if (info || Date.now() > deadline) return info;
    await sleep(100); // between taking the lock and writing daemon.json
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // exited meanwhile
  }
}

/**
 * Sends SIGTERM to the daemon and waits until it has let go of the state dir (SIGKILL after 15 s).
 * Only a daemon holding the lock is signalled: a pid in a stale daemon.json may belong to another
 * program by now, and a killed daemon not yet reaped (a zombie) is already gone.
 */
export async function stopDaemon(stateDir: string): Promise<DaemonInfo | undefined> {
  if (!lockHeld(stateDir)) return undefined;
  const info = await runningDaemon(stateDir);
  if (!info) return undefined;
  // The lock is released as the daemon exits; without a readable lock, the process itself is watched.
  const running = () => {
    const state = daemonLockState(statePaths(stateDir).lock);
    return state === 'held' || (state === 'unknown' && processAlive(info.pid));
  };
  signal(info.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (running()) {
    if (Date.now() > deadline) {
      signal(info.pid, 'SIGKILL');
      const killed = Date.now() + 5_000;
      while (running() && Date.now() < killed) await sleep(100);
      break;
    }
    await sleep(100);
  }
  return info;
}
