// One daemon per state dir: an exclusive lock file holding the owner's pid; a stale lock (its
// process is gone) is taken over.
import { openSync, writeSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { SkyfarmError } from '../errors.js';

export interface DaemonInfo {
  pid: number;
  port: number;
  version: string;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
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

export function acquireDaemonLock(lockPath: string, infoPath: string, stateDir: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lockPath, 'utf8').trim() === String(process.pid))
            rmSync(lockPath, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let owner = NaN;
      try {
        owner = Number(readFileSync(lockPath, 'utf8').trim());
      } catch {
        continue;
      }
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        const info = readDaemonInfo(infoPath);
        const where = info && info.pid === owner ? `, port ${info.port}, version ${info.version}` : '';
        throw new SkyfarmError(
          'DAEMON_RUNNING',
          `a skyfarm daemon is already running for ${stateDir} (pid ${owner}${where}); stop it with \`skyfarm daemon stop\``,
        );
      }
      rmSync(lockPath, { force: true });
    }
  }
  throw new SkyfarmError('DAEMON_RUNNING', `could not take the daemon lock ${lockPath}`);
}
