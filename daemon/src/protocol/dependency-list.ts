// Dependency lists too large for one message travel by reference: the client writes them as JSON
// Lines into the state dir's lists/ folder (0600) and sends { path, sha256, count }; the daemon reads
// the file once, checks it and deletes it. Only the daemon's own user can write there (the state dir
// is 0700), and the daemon reads nothing outside that folder.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { lstat, open, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { LIMITS, type Dependency, type DependencyListRef } from '../../../protocol/generated/protocol.js';
import { SkyfarmError } from '../errors.js';
import { checkDefinition } from './codec.js';

export function listsDir(stateDir: string): string {
  return join(stateDir, 'lists');
}

/** Writes `dependencies` where the daemon of `stateDir` reads lists; returns the reference to send. */
export function writeDependencyList(stateDir: string, dependencies: Dependency[]): DependencyListRef {
  const folder = listsDir(stateDir);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const path = join(folder, `${Date.now()}-${randomBytes(8).toString('hex')}.jsonl`);
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
    0o600,
  );
  const hash = createHash('sha256');
  try {
    // About a megabyte per write: one string per line would be 100,000 writes.
    let batch: string[] = [];
    let batchLength = 0;
    const flush = () => {
      const data = Buffer.from(batch.join(''), 'utf8');
      hash.update(data);
      writeSync(fd, data);
      batch = [];
      batchLength = 0;
    };
    for (const dependency of dependencies) {
      const line = `${JSON.stringify(dependency)}\n`;
      batch.push(line);
      batchLength += line.length;
      if (batchLength >= 1 << 20) flush();
    }
    flush();
  } catch (error) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw error;
  }
  closeSync(fd);
  return { path, sha256: hash.digest('hex'), count: dependencies.length };
}

/** Removes a list the daemon did not take (the request failed before it was read). */
export function discardDependencyList(ref: DependencyListRef): void {
  rmSync(ref.path, { force: true });
}

/**
 * Lists read recently, by the SHA-256 of their bytes: an artist's re-submit sends the same 100,000
 * entries again, and bytes with the same hash parse to the same list (its checks already passed),
 * so it is not parsed and checked line by line again. Kept for `lingerMs` after the last use.
 */
export class RecentDependencyLists {
  private readonly lists = new Map<string, Dependency[]>();
  private expiry: NodeJS.Timeout | undefined;

  constructor(private readonly options: { lingerMs: number; max?: number }) {}

  get(sha256: string): Dependency[] | undefined {
    return this.lists.get(sha256);
  }

  remember(sha256: string, dependencies: Dependency[]): void {
    if (this.options.lingerMs <= 0) return;
    this.lists.delete(sha256);
    this.lists.set(sha256, dependencies);
    const max = this.options.max ?? 2;
    for (const oldest of this.lists.keys()) {
      if (this.lists.size <= max) break;
      this.lists.delete(oldest);
    }
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => this.lists.clear(), this.options.lingerMs);
    this.expiry.unref();
  }
}

function refuse(message: string): never {
  throw new SkyfarmError('BAD_ARGUMENT', `dependency list: ${message}`);
}

/**
 * Reads, checks and deletes the list `ref` names. Every refusal says what is wrong (a file outside
 * lists/, readable by others, too large, a line that is not a Dependency, a wrong count or sha256).
 */
export async function readDependencyList(
  stateDir: string,
  ref: DependencyListRef,
  recent?: RecentDependencyLists,
): Promise<Dependency[]> {
  const folder = resolve(listsDir(stateDir));
  const path = resolve(ref.path);
  if (dirname(path) !== folder || !basename(path).endsWith('.jsonl')) {
    refuse(`${ref.path} is not a .jsonl file in ${folder}, the only place the daemon reads lists from`);
  }
  const folderStat = await lstat(folder).catch(() => null);
  if (!folderStat?.isDirectory() || (process.getuid && folderStat.uid !== process.getuid())) {
    refuse(`${folder} is not this user's folder`);
  }
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') refuse(`${path} does not exist (was it already used?)`);
    refuse(`${path} cannot be opened (${code ?? String(error)}; a symbolic link is not followed)`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) refuse(`${path} is not a regular file`);
    if (process.platform !== 'win32') {
      if (process.getuid && info.uid !== process.getuid()) refuse(`${path} belongs to another user`);
      if (info.mode & 0o077)
        refuse(
          `${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); write it with mode 600`,
        );
    }
    if (info.size > LIMITS.maxDependencyListBytes)
      refuse(`${path} is ${info.size} bytes; at most ${LIMITS.maxDependencyListBytes} are read`);
    const data = await handle.readFile();
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (sha256 !== ref.sha256)
      refuse(`${path} has sha256 ${sha256}, not ${ref.sha256}: it changed after it was written`);
    const known = recent?.get(sha256);
    if (known && known.length === ref.count) {
      recent!.remember(sha256, known);
      return known;
    }
    const dependencies: Dependency[] = [];
    let start = 0;
    let line = 0;
    while (start < data.length) {
      let end = data.indexOf(10, start);
      if (end < 0) end = data.length;
      line++;
      const text = data.toString('utf8', start, end).trim();
      start = end + 1;
      if (text === '') continue;
      if (dependencies.length >= Math.min(ref.count, LIMITS.maxDependencies))
        refuse(`${path} holds more than the ${ref.count} dependencies the request announced`);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        refuse(`line ${line} of ${path} is not JSON: ${(error as Error).message}`);
      }
      const problem = checkDefinition('Dependency', value, `line ${line}`);
      if (problem) refuse(`${problem} (${path})`);
      dependencies.push(value as Dependency);
      // A long list is parsed in slices, so other clients are answered meanwhile.
      if (dependencies.length % 20_000 === 0) await yieldToLoop();
    }
    if (dependencies.length !== ref.count)
      refuse(`${path} holds ${dependencies.length} dependencies, the request announced ${ref.count}`);
    recent?.remember(sha256, dependencies);
    return dependencies;
  } finally {
    await handle.close();
    // Read once: a list is never used twice, and a refused one would only be refused again.
    await rm(path, { force: true });
  }
}

/** Lists older than `maxAgeMs` were written by clients that never sent them (or a daemon that died). */
export async function sweepDependencyLists(stateDir: string, maxAgeMs = 60 * 60 * 1000): Promise<number> {
  const folder = listsDir(stateDir);
  const names = await readdir(folder).catch(() => [] as string[]);
  let removed = 0;
  for (const name of names) {
    if (!name.endsWith('.jsonl')) continue;
    const file = join(folder, name);
    const info = await lstat(file).catch(() => null);
    if (info?.isFile() && Date.now() - info.mtimeMs > maxAgeMs) {
      await rm(file, { force: true });
      removed++;
    }
  }
  return removed;
}
