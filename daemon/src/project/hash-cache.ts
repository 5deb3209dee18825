// SHA-256 of project files, remembered in SQLite while a file's path, size, mtime and inode stay the
// same, so a re-submit hashes only what changed. A file modified within RACY_WINDOW of being hashed is
// not trusted from the cache (its next write could keep the same coarse mtime), and a file that changes
// while it is being hashed is hashed again.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Db } from '../db/database.js';
import { SkyfarmError } from '../errors.js';

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
}

const RACY_WINDOW_NS = 100_000_000n; // 100 ms, well above any file system's mtime granularity
const HASH_ATTEMPTS = 3;

export async function fileIdentity(path: string): Promise<FileIdentity> {
  const s = await stat(path, { bigint: true });
  if (!s.isFile()) throw new Error(`${path} is not a regular file`);
  return {
    size: Number(s.size),
    mtimeNs: s.mtimeNs,
    inode: `${s.dev}:${s.ino}`,
    mode: Number(s.mode) & 0o777,
  };
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.inode === b.inode;
}

export async function sha256Stream(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, {
    highWaterMark: 1 << 20,
    ...(signal ? { signal } : {}),
  })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
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
  private readonly inflight = new Map<string, Promise<HashedFile>>();
  readonly stats: HashCacheStats = { hits: 0, misses: 0, bytesHashed: 0 };

  constructor(db: Db) {
    this.select = db.prepare<[string], Row>(
      'SELECT size, mtime_ns, inode, sha256, hashed_at_ns FROM file_hashes WHERE path = ?',
    );
    this.upsert = db.prepare(
      `INSERT INTO file_hashes (path, size, mtime_ns, inode, sha256, hashed_at_ns) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
         inode = excluded.inode, sha256 = excluded.sha256, hashed_at_ns = excluded.hashed_at_ns`,
    );
    this.remove = db.prepare('DELETE FROM file_hashes WHERE path = ?');
  }

  /** The cached hash when the file is unchanged since it was hashed. */
  lookup(path: string, identity: FileIdentity): string | undefined {
    const row = this.select.get(path);
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
    this.upsert.run(
      path,
      identity.size,
      String(identity.mtimeNs),
      identity.inode,
      sha256,
      String(hashedAtNs),
    );
  }

  forget(path: string): void {
    this.remove.run(path);
  }

  /** The file's SHA-256, from the cache when it is unchanged; concurrent calls for one path share the work. */
  hash(path: string, signal?: AbortSignal): Promise<HashedFile> {
    const running = this.inflight.get(path);
    if (running) return running;
    const work = this.hashUncached(path, signal).finally(() => this.inflight.delete(path));
    this.inflight.set(path, work);
    return work;
  }

  private async hashUncached(path: string, signal?: AbortSignal): Promise<HashedFile> {
    let before = await fileIdentity(path);
    const cached = this.lookup(path, before);
    if (cached) {
      this.stats.hits += 1;
      return { ...before, sha256: cached, cached: true };
    }
    for (let attempt = 1; attempt <= HASH_ATTEMPTS; attempt++) {
      const startedNs = BigInt(Date.now()) * 1_000_000n;
      const sha256 = await sha256Stream(path, signal);
      this.stats.bytesHashed += before.size;
      const after = await fileIdentity(path);
      if (sameIdentity(before, after)) {
        this.stats.misses += 1;
        this.record(path, after, sha256, startedNs);
        return { ...after, sha256, cached: false };
      }
      before = after; // it changed while we read it: read it again
    }
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `${path} keeps changing while it is being read; save it and retry`,
    );
  }
}
