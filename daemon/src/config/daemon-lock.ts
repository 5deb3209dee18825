// One daemon per state dir, and "is a daemon running?" answered by something a dead process cannot
// hold: the daemon keeps an exclusive SQLite lock (a POSIX advisory lock, fcntl) on daemon.lock for
// its whole life. The kernel drops it when the process exits, so a killed daemon nobody has reaped
// yet (a zombie holds no files) and a pid the system has since given to another program (it holds no
// lock) both count as not running — on Linux and macOS alike. daemon.json only says where to connect.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SkyfarmError } from '../errors.js';
import { nativeModuleMismatch } from '../util/native-module.js';

export interface DaemonInfo {
  pid: number;
  port: number;
  version: string;
}

/**
 * Whether `pid` is a running process. A zombie (exited, not yet reaped by its parent) is not: on
 * Linux its state in /proc says so (elsewhere a zombie still answers signal 0 and counts as alive).
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S …": comm may hold spaces and parentheses, the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false; // gone between the signal and the read
  }
}

export function readDaemonInfo(path: string): DaemonInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as DaemonInfo;
    return typeof info.pid === 'number' && typeof info.port === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/** SQLite's answers that mean "another connection holds a lock on this file". */
function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/** SQLite's answer to a file that is not a database: daemon.lock from an older skyfarm (its pid as text). */
function isNotDatabase(error: unknown): boolean {
  return (error as { code?: unknown }).code === 'SQLITE_NOTADB';
}

function openLockDb(path: string, options: Database.Options): Database.Database {
  try {
    return new Database(path, options); // loads the native module on first use
  } catch (error) {
    throw nativeModuleMismatch(error, 'better-sqlite3') ?? error;
  }
}

/**
 * 'held': a live process holds the daemon lock; 'free': none does (no daemon runs, whatever
 * daemon.json says); 'unknown': the lock could not be read (the native module does not load here).
 * Reading takes a shared lock for an instant, which a starting daemon waits out.
 */
export function daemonLockState(lockPath: string): 'held' | 'free' | 'unknown' {
  if (!existsSync(lockPath)) return 'free'; // no daemon of this version ever ran here
  let db: Database.Database | undefined;
  try {
    db = openLockDb(lockPath, { readonly: true, fileMustExist: true, timeout: 0 });
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return 'free';
  } catch (error) {
    if (isBusy(error)) return 'held';
    // An older skyfarm's pid file (acquireDaemonLock replaces it), or removed meanwhile.
    if (isNotDatabase(error) || (error as { code?: unknown }).code === 'SQLITE_CANTOPEN') return 'free';
    return 'unknown';
  } finally {
    db?.close();
  }
}

export interface DaemonLock {
  /** daemon.json of a daemon that ended without removing it (killed, crashed), now removed. */
  stale?: DaemonInfo;
  /** daemon.lock was an older skyfarm's pid file, replaced (its pid, when it held one). */
  replacedLegacyLock?: number | null;
  release(): void;
}

/**
 * Takes the daemon lock for this process's lifetime, or throws DAEMON_RUNNING naming the daemon that
 * holds it. A daemon.json left by a dead daemon is removed at once (while the lock is held, so no
 * client ever reads a stale one next to a live lock) and reported in `stale`.
 */
export function acquireDaemonLock(lockPath: string, infoPath: string, stateDir: string): DaemonLock {
  let replacedLegacyLock: number | null | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    const db = openLockDb(lockPath, { timeout: 2000 });
    try {
      // No journal file: the lock database is never written.
      db.pragma('journal_mode = MEMORY');
      // Waits (timeout above) while a client reads the lock, then holds it until release or exit.
      db.exec('BEGIN EXCLUSIVE');
    } catch (error) {
      db.close();
      if (isNotDatabase(error) && attempt === 0) {
        const text = readText(lockPath).trim();
        replacedLegacyLock = /^\d+$/.test(text) ? Number(text) : null;
        rmSync(lockPath, { force: true });
        continue;
      }
      if (!isBusy(error)) throw error;
      const info = readDaemonInfo(infoPath);
      const where = info ? ` (pid ${info.pid}, port ${info.port}, version ${info.version})` : '';
      throw new SkyfarmError(
        'DAEMON_RUNNING',
        `a skyfarm daemon is already running for ${stateDir}${where}; stop it with \`skyfarm daemon stop\``,
      );
    }
    const stale = readDaemonInfo(infoPath);
    rmSync(infoPath, { force: true });
    let released = false;
    return {
      ...(stale ? { stale } : {}),
      ...(replacedLegacyLock !== undefined ? { replacedLegacyLock } : {}),
      release: () => {
        if (released) return;
        released = true;
        // The file stays: removing it could let two daemons lock two different files of that name.
        try {
          db.exec('ROLLBACK');
        } catch {
          // closing releases it as well
        }
        db.close();
      },
    };
  }
  throw new SkyfarmError('DAEMON_RUNNING', `could not take the daemon lock ${lockPath}`);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
