// SHA-256 of project files, remembered in SQLite while a file's path, size, mtime and inode stay the
// same, so a re-submit hashes only what changed. A file modified within RACY_WINDOW of being hashed is
// not trusted from the cache (its next write could keep the same coarse mtime), and a file that changes
// while it is being hashed is hashed again. New hashes are written in batches (one transaction per
// burst), not one transaction per file. An upload reads the rows of all its files up front (`preload`:
// one statement per 1,000 paths), not one SELECT per file.
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Db } from '../db/database.js';
import { PreloadedRows } from '../db/preloaded-rows.js';
import { SkyfarmError } from '../errors.js';
import { hashPool } from './hash-pool.js';

export { hashPool };

export interface FileIdentity {
  size: number;
  mtimeNs: bigint;
  /** `<dev>:<ino>` */
  inode: string;
  mode: number;
}

export interface HashedFile extends FileIdentity {
  sha256: string;
  /** True when the hash came from the cache. */
  cached: boolean;
  /** The bytes that were hashed, when the caller asked to keep them (a small file read just now). */
  bytes?: Buffer;
}

const RACY_WINDOW_NS = 100_000_000n; // 100 ms, well above any file system's mtime granularity
const HASH_ATTEMPTS = 3;
/** Files up to this size can be read in one call and their bytes kept. */
const READ_WHOLE_MAX = 8 * 1024 * 1024;

export function identityOf(s: BigIntStats): FileIdentity {
  return {
    size: Number(s.size),
    mtimeNs: s.mtimeNs,
    inode: `${s.dev}:${s.ino}`,
    mode: Number(s.mode) & 0o777,
  };
}

export async function fileIdentity(path: string): Promise<FileIdentity> {
  const s = await stat(path, { bigint: true });
  if (!s.isFile()) throw new Error(`${path} is not a regular file`);
  return identityOf(s);
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.inode === b.inode;
}

/** The file's SHA-256; `size` (when known) lets it be hashed on the worker pool. */
export async function sha256Stream(path: string, signal?: AbortSignal, size?: number): Promise<string> {
  return (await sha256Read(path, signal, size, false)).sha256;
}

/**
 * Hashes a file: on the worker pool when its size is known (every read, hash and the stat after it
 * off the main thread, which stays free for the uploads and the WebSocket), else streamed here.
 * Returns its bytes too when `keep` and it is small enough to be read in one call, and, from the
 * pool, the path's identity after reading.
 */
export async function sha256Read(
  path: string,
  signal: AbortSignal | undefined,
  size: number | undefined,
  keep: boolean,
): Promise<{ sha256: string; bytes?: Buffer; after?: FileIdentity }> {
  if (size !== undefined) {
    const result = await hashPool().hash(path, {
      ...(signal ? { signal } : {}),
      keepMax: keep && size <= READ_WHOLE_MAX ? size : -1,
      statAfter: true,
    });
    const s = result.after;
    if (s && !s.file) throw new Error(`${path} is not a regular file`);
    return {
      sha256: result.sha256,
      ...(result.bytes ? { bytes: result.bytes } : {}),
      ...(s
        ? {
            after: {
              size: Number(s.size),
              mtimeNs: s.mtimeNs,
              inode: `${s.dev}:${s.ino}`,
              mode: Number(s.mode) & 0o777,
            },
          }
        : {}),
    };
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, {
    highWaterMark: 1 << 20,
    ...(signal ? { signal } : {}),
  })) {
    hash.update(chunk as Buffer);
  }
  return { sha256: hash.digest('hex') };
}

interface Row {
  size: number;
  mtime_ns: string;
  inode: string;
  sha256: string;
  hashed_at_ns: string;
}

export interface HashCacheStats {
  hits: number;
  misses: number;
  bytesHashed: number;
}

export class HashCache {
  private readonly select;
  private readonly upsert;
  private readonly remove;
  private readonly writeBatch;
  private readonly preloaded: PreloadedRows<Row>;
  private readonly inflight = new Map<string, Promise<HashedFile>>();
  private pending: Array<[string, number, string, string, string, string]> = [];
  private flushScheduled = false;
  readonly stats: HashCacheStats = { hits: 0, misses: 0, bytesHashed: 0 };

  /** `lingerMs`: how long an upload's rows stay in memory after it (the next re-submit's). */
  constructor(
    private readonly db: Db,
    options: { lingerMs?: number } = {},
  ) {
    this.select = db.prepare<[string], Row>(
      'SELECT size, mtime_ns, inode, sha256, hashed_at_ns FROM file_hashes WHERE path = ?',
    );
    this.upsert = db.prepare(
      `INSERT INTO file_hashes (path, size, mtime_ns, inode, sha256, hashed_at_ns) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
         inode = excluded.inode, sha256 = excluded.sha256, hashed_at_ns = excluded.hashed_at_ns`,
    );
    this.remove = db.prepare('DELETE FROM file_hashes WHERE path = ?');
    const selectMany = db.prepare<[string], Row & { path: string }>(
      `SELECT path, size, mtime_ns, inode, sha256, hashed_at_ns FROM file_hashes
       WHERE path IN (SELECT value FROM json_each(?))`,
    );
    this.preloaded = new PreloadedRows(
      (paths) => selectMany.all(JSON.stringify(paths)).map((row): [string, Row] => [row.path, row]),
      { lingerMs: options.lingerMs ?? 0 },
    );
    this.writeBatch = db.transaction((rows: Array<[string, number, string, string, string, string]>) => {
      for (const row of rows) this.upsert.run(...row);
    });
  }

  /**
   * Reads the cached rows of these files at once and keeps them until the returned release is
   * called; returns the hashes they name (what the files hold if they are unchanged).
   */
  preload(paths: string[]): { sha256s: string[]; release: () => void } {
    const release = this.preloaded.hold(paths);
    const sha256s = paths.flatMap((path) => {
      const row = this.preloaded.get(path);
      return row ? [row.sha256] : [];
    });
    return { sha256s, release };
  }

  /** The cached hash when the file is unchanged since it was hashed. */
  lookup(path: string, identity: FileIdentity): string | undefined {
    const queued = this.pending.length ? this.pending.findLast((row) => row[0] === path) : undefined;
    const held = queued ? undefined : this.preloaded.get(path);
    const row: Row | undefined = queued
      ? { size: queued[1], mtime_ns: queued[2], inode: queued[3], sha256: queued[4], hashed_at_ns: queued[5] }
      : held !== undefined
        ? (held ?? undefined)
        : this.select.get(path);
    if (!row) return undefined;
    if (
      row.size !== identity.size ||
      row.mtime_ns !== String(identity.mtimeNs) ||
      row.inode !== identity.inode
    ) {
      return undefined;
    }
    if (BigInt(row.hashed_at_ns) - identity.mtimeNs <= RACY_WINDOW_NS) return undefined;
    return row.sha256;
  }

  record(path: string, identity: FileIdentity, sha256: string, hashedAtNs: bigint): void {
    this.preloaded.update(path, {
      size: identity.size,
      mtime_ns: String(identity.mtimeNs),
      inode: identity.inode,
      sha256,
      hashed_at_ns: String(hashedAtNs),
    });
    this.pending.push([
      path,
      identity.size,
      String(identity.mtimeNs),
      identity.inode,
      sha256,
      String(hashedAtNs),
    ]);
    if (this.pending.length >= 256) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes queued hashes now (also before the database closes). */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || !this.db.open) return;
    const rows = this.pending;
    this.pending = [];
    this.writeBatch(rows);
  }

  forget(path: string): void {
    this.preloaded.update(path, null);
    this.pending = this.pending.filter((row) => row[0] !== path);
    this.remove.run(path);
  }

  /** The file from the cache, without waiting, when it is unchanged and no hash of it is running. */
  cached(path: string, identity: FileIdentity): HashedFile | undefined {
    const sha256 = this.cachedSha256(path, identity);
    return sha256 === undefined ? undefined : { ...identity, sha256, cached: true };
  }

  /** `cached`'s hash alone. */
  cachedSha256(path: string, identity: FileIdentity): string | undefined {
    if (this.inflight.has(path)) return undefined;
    const sha256 = this.lookup(path, identity);
    if (!sha256) return undefined;
    this.stats.hits += 1;
    return sha256;
  }

  /**
   * The file's SHA-256, from the cache when it is unchanged; concurrent calls for one path share the
   * work. `identity` is the caller's fresh stat of the file, when it has one (saves a stat).
   */
  hash(path: string, signal?: AbortSignal, identity?: FileIdentity, keepBytes = false): Promise<HashedFile> {
    const running = this.inflight.get(path);
    if (running) return running;
    const work = this.hashUncached(path, signal, identity, keepBytes).finally(() =>
      this.inflight.delete(path),
    );
    this.inflight.set(path, work);
    return work;
  }

  private async hashUncached(
    path: string,
    signal?: AbortSignal,
    identity?: FileIdentity,
    keepBytes = false,
  ): Promise<HashedFile> {
    let before = identity ?? (await fileIdentity(path));
    const cached = this.lookup(path, before);
    if (cached) {
      this.stats.hits += 1;
      return { ...before, sha256: cached, cached: true };
    }
    for (let attempt = 1; attempt <= HASH_ATTEMPTS; attempt++) {
      const startedNs = BigInt(Date.now()) * 1_000_000n;
      const read = await sha256Read(path, signal, before.size, keepBytes);
      const { sha256, bytes } = read;
      this.stats.bytesHashed += before.size;
      const after = read.after ?? (await fileIdentity(path));
      if (sameIdentity(before, after)) {
        this.stats.misses += 1;
        this.record(path, after, sha256, startedNs);
        return { ...after, sha256, cached: false, ...(bytes ? { bytes } : {}) };
      }
      before = after; // it changed while we read it (or since the caller looked): read it again
    }
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `${path} keeps changing while it is being read; save it and retry`,
    );
  }
}
