// The daemon's record of blobs it has seen in each store. A blob seen within the trust window (default
// 10 minutes, SKYFARM_BLOB_TRUST_SECONDS) is taken as present without asking; any other is confirmed
// with the store itself (HEAD or a listing), and one that vanished (deleted by hand, a wiped bucket)
// is forgotten here and uploaded again. The record also sizes that confirmation: a store believed
// small is listed once instead of asked blob by blob.
//
// The record is bounded: entries not confirmed for `maxAgeMs` (default 30 days) are forgotten, and
// beyond `maxRows` (default 250,000, some 30 MB of SQLite) the least recently confirmed go first. A
// forgotten blob costs one presence check the next time it is needed, nothing else. Pruning runs with
// the first upload after the daemon starts and then at most once per `pruneEveryMs` (default 1 hour).
// An upload reads the rows of the blobs it expects at once (`preload`), not one SELECT per blob: all of
// the store's rows in one statement when the record holds not many more than that (a project's own
// bucket), else one statement per 1,000 blobs.
import type { Db } from '../db/database.js';
import { PRELOAD_CHUNK, PreloadedRows } from '../db/preloaded-rows.js';
import type { BlobRef, PackedLocation } from '../store/object-store.js';

/** A blob as stored: its own object, or inside a pack. */
export type StoredBlob = BlobRef & { pack?: string; offset?: number };

export interface KnownBlobsOptions {
  maxAgeMs?: number;
  maxRows?: number;
  pruneEveryMs?: number;
  /** How long an upload's rows stay in memory after it (the next re-submit's); 0 by default. */
  lingerMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

interface KnownRow {
  size: number;
  seen_at: number;
  pack: string | null;
  pack_offset: number | null;
}

export class KnownBlobs {
  readonly maxAgeMs: number;
  readonly maxRows: number;
  private readonly pruneEveryMs: number;
  private readonly lingerMs: number;
  private readonly now: () => number;
  private lastPrune = -Infinity;
  private readonly countAll;
  private readonly pruneOld;
  private readonly pruneOldest;
  private readonly countStmt;
  private readonly hasStmt;
  private readonly upsert;
  private readonly remove;
  private readonly kvGet;
  private readonly kvSet;
  private readonly selectMany;
  private readonly selectStore;
  /** Preloaded rows by store, keyed by sha256 (no key string built per blob). */
  private readonly preloaded = new Map<string, PreloadedRows<KnownRow>>();

  constructor(
    private readonly db: Db,
    options: KnownBlobsOptions = {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? 30 * DAY_MS;
    this.maxRows = options.maxRows ?? 250_000;
    this.pruneEveryMs = options.pruneEveryMs ?? 60 * 60 * 1000;
    this.lingerMs = options.lingerMs ?? 0;
    this.now = options.now ?? Date.now;
    this.countAll = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM known_blobs');
    this.pruneOld = db.prepare('DELETE FROM known_blobs WHERE seen_at < ?');
    this.pruneOldest = db.prepare(
      `DELETE FROM known_blobs WHERE (store, sha256) IN
         (SELECT store, sha256 FROM known_blobs ORDER BY seen_at ASC LIMIT ?)`,
    );
    this.countStmt = db.prepare<[string], { n: number }>(
      'SELECT COUNT(*) AS n FROM known_blobs WHERE store = ?',
    );
    this.hasStmt = db.prepare<[string, string], KnownRow>(
      'SELECT size, seen_at, pack, pack_offset FROM known_blobs WHERE store = ? AND sha256 = ?',
    );
    this.upsert = db.prepare(
      `INSERT INTO known_blobs (store, sha256, size, seen_at, pack, pack_offset) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(store, sha256) DO UPDATE SET size = excluded.size, seen_at = excluded.seen_at,
         pack = excluded.pack, pack_offset = excluded.pack_offset`,
    );
    this.remove = db.prepare('DELETE FROM known_blobs WHERE store = ? AND sha256 = ?');
    this.selectStore = db.prepare<[string], KnownRow & { sha256: string }>(
      'SELECT sha256, size, seen_at, pack, pack_offset FROM known_blobs WHERE store = ?',
    );
    this.selectMany = db.prepare<[string, string], KnownRow & { sha256: string }>(
      `SELECT sha256, size, seen_at, pack, pack_offset FROM known_blobs
       WHERE store = ? AND sha256 IN (SELECT value FROM json_each(?))`,
    );
    this.kvGet = db.prepare<[string], { value: string }>('SELECT value FROM kv WHERE key = ?');
    this.kvSet = db.prepare(
      'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    );
  }

  count(store: string): number {
    return this.countStmt.get(store)?.n ?? 0;
  }

  /**
   * Reads the rows of these blobs at once and keeps them until the returned release is called.
   * `expected`: how many blobs the upload may ask about in all (its files; most of their hashes are
   * not known before hashing on a first upload).
   */
  preload(store: string, sha256s: string[], expected = sha256s.length): () => void {
    let rows = this.preloaded.get(store);
    if (!rows) {
      rows = new PreloadedRows(
        (shas) =>
          this.selectMany
            .all(store, JSON.stringify(shas))
            .map((row): [string, KnownRow] => [row.sha256, row]),
        { lingerMs: this.lingerMs },
      );
      this.preloaded.set(store, rows);
    }
    // A store the record holds not many more blobs of than wanted: all its rows in one statement.
    const wanted = Math.max(sha256s.length, expected);
    if (wanted >= PRELOAD_CHUNK && this.count(store) <= 2 * wanted) {
      return rows.holdAll(sha256s, () =>
        this.selectStore.all(store).map((row): [string, KnownRow] => [row.sha256, row]),
      );
    }
    return rows.hold(sha256s);
  }

  private row(store: string, sha256: string): KnownRow | undefined {
    const held = this.preloaded.get(store)?.get(sha256);
    return held !== undefined ? (held ?? undefined) : this.hasStmt.get(store, sha256);
  }

  has(store: string, blob: BlobRef): boolean {
    return this.row(store, blob.sha256)?.size === blob.size;
  }

  /** Seen in the store (confirmed or uploaded) within the last `withinMs`. */
  seenRecently(store: string, blob: BlobRef, withinMs: number): boolean {
    if (withinMs <= 0) return false;
    const row = this.row(store, blob.sha256);
    return row !== undefined && row.size === blob.size && row.seen_at >= this.now() - withinMs;
  }

  /**
   * The record's row for a blob seen within the last `withinMs` (the held row itself: a re-submit
   * asks this of every file, so nothing is allocated), else undefined.
   */
  recentRow(
    store: string,
    sha256: string,
    size: number,
    withinMs: number,
  ): Readonly<{ pack: string | null; pack_offset: number | null }> | undefined {
    if (withinMs <= 0) return undefined;
    const row = this.row(store, sha256);
    return row !== undefined && row.size === size && row.seen_at >= this.now() - withinMs ? row : undefined;
  }

  /** Where the record last saw the blob inside a pack (undefined: its own object, or unknown). */
  packed(store: string, blob: BlobRef): PackedLocation | undefined {
    const row = this.row(store, blob.sha256);
    if (!row || row.size !== blob.size || row.pack === null || row.pack_offset === null) return undefined;
    return { sha256: blob.sha256, size: blob.size, pack: row.pack, offset: row.pack_offset };
  }

  /** How many blobs the store is believed to hold (what we saw there, or its last full listing). */
  sizeHint(store: string): number {
    const listed = Number(this.kvGet.get(`known-blobs:listed:${store}`)?.value ?? 0);
    return Math.max(this.count(store), Number.isFinite(listed) ? listed : 0);
  }

  recordListing(store: string, count: number): void {
    this.kvSet.run(`known-blobs:listed:${store}`, String(count));
  }

  markPresent(store: string, blobs: StoredBlob[]): void {
    const now = this.now();
    this.db.transaction(() => {
      for (const blob of blobs)
        this.upsert.run(store, blob.sha256, blob.size, now, blob.pack ?? null, blob.offset ?? null);
    })();
    const rows = this.preloaded.get(store);
    if (rows)
      for (const blob of blobs)
        rows.update(blob.sha256, {
          size: blob.size,
          seen_at: now,
          pack: blob.pack ?? null,
          pack_offset: blob.offset ?? null,
        });
    if (now - this.lastPrune >= this.pruneEveryMs) this.prune();
  }

  /**
   * Forgets blobs not confirmed within `maxAgeMs`, then the least recently confirmed beyond
   * `maxRows`. Returns how many entries were forgotten.
   */
  prune(): number {
    const now = this.now();
    this.lastPrune = now;
    const forgotten = this.db.transaction(() => {
      let gone = this.pruneOld.run(now - this.maxAgeMs).changes;
      const over = (this.countAll.get()?.n ?? 0) - this.maxRows;
      if (over > 0) gone += this.pruneOldest.run(over).changes;
      return gone;
    })();
    // Rows deleted behind the held ones' back.
    if (forgotten > 0) for (const rows of this.preloaded.values()) rows.invalidate();
    return forgotten;
  }

  forget(store: string, shas: string[]): void {
    this.db.transaction(() => {
      for (const sha of shas) this.remove.run(store, sha);
    })();
    const rows = this.preloaded.get(store);
    if (rows) for (const sha of shas) rows.update(sha, null);
  }
}
