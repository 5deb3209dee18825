// Rows of one table read for many keys at once — one statement per chunk of keys (`IN (SELECT value
// FROM json_each(?))`) instead of one query per key — and kept in memory while someone holds them (an
// upload of 100,000 files asks about each file and each blob once: 200,000 single-row SELECTs cost
// seconds, a few hundred chunked ones a fraction of that). Writes go through `update`, so what is held
// never goes stale. When the last holder lets go, the rows linger for `lingerMs` (the next re-submit
// of the same project, minutes later, finds them without reading 100,000 rows again), then are
// dropped. A write that bypasses `update` (pruning) must call `invalidate`.

/** Keys per statement: well under SQLite's limits, large enough that the statement count is small. */
export const PRELOAD_CHUNK = 1000;

export interface PreloadedRowsOptions {
  /** How long rows stay after the last release (0: dropped at once). */
  lingerMs?: number;
}

export class PreloadedRows<R> {
  private rows = new Map<string, R | null>();
  private holders = 0;
  /** Every row there is was read (holdAll): a key not held has no row, no statement needed. */
  private complete = false;
  private lingering: NodeJS.Timeout | undefined;
  /** Rows may be stale (invalidated while held): not kept past the last release. */
  private stale = false;
  private readonly lingerMs: number;

  /** `fetch(keys)`: the rows found for these keys (at most PRELOAD_CHUNK of them), by key. */
  constructor(
    private readonly fetch: (keys: string[]) => Iterable<[string, R]>,
    options: PreloadedRowsOptions = {},
  ) {
    this.lingerMs = options.lingerMs ?? 0;
  }

  private acquire(): void {
    this.holders += 1;
    if (this.lingering) clearTimeout(this.lingering);
    this.lingering = undefined;
  }

  /** Reads the rows of `keys` not held yet; returns the release. */
  hold(keys: Iterable<string>): () => void {
    this.acquire();
    if (this.complete) {
      for (const key of keys) if (!this.rows.has(key)) this.rows.set(key, null);
      return this.release();
    }
    let chunk: string[] = [];
    const read = () => {
      for (const [key, row] of this.fetch(chunk)) this.rows.set(key, row);
      chunk = [];
    };
    for (const key of keys) {
      if (this.rows.has(key)) continue; // held already, or named twice
      this.rows.set(key, null);
      chunk.push(key);
      if (chunk.length === PRELOAD_CHUNK) read();
    }
    if (chunk.length > 0) read();
    return this.release();
  }

  /**
   * Holds `keys` from one read of every row they can be among (`all`: e.g. all of one store's rows,
   * one statement instead of one per chunk, when those are not many more than the keys). Rows that
   * are all held already (kept in step since) are not read again.
   */
  holdAll(keys: Iterable<string>, all: () => Iterable<[string, R]>): () => void {
    this.acquire();
    if (!this.complete) {
      for (const [key, row] of all()) this.rows.set(key, row);
      this.complete = true;
    }
    for (const key of keys) if (!this.rows.has(key)) this.rows.set(key, null);
    return this.release();
  }

  /** How many keys are held or lingering. */
  get size(): number {
    return this.rows.size;
  }

  private release(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holders -= 1;
      if (this.holders > 0) return;
      if (this.lingerMs > 0 && !this.stale) {
        this.lingering = setTimeout(() => this.drop(), this.lingerMs);
        this.lingering.unref();
      } else this.drop();
    };
  }

  private drop(): void {
    this.lingering = undefined;
    this.rows = new Map();
    this.complete = false;
    this.stale = false;
  }

  /** The table changed without `update` (e.g. pruned): what lingers is dropped, what is held is not kept. */
  invalidate(): void {
    if (this.holders > 0) this.stale = true;
    else {
      if (this.lingering) clearTimeout(this.lingering);
      this.drop();
    }
  }

  /** The held row (null: held, and there is none), or undefined when the key is not held. */
  get(key: string): R | null | undefined {
    const row = this.rows.get(key);
    return row === undefined && this.complete ? null : row;
  }

  /** Keeps a held (or lingering) key in step with a write (a row written, or null when deleted). */
  update(key: string, row: R | null): void {
    if (this.complete || this.rows.has(key)) this.rows.set(key, row);
  }
}
