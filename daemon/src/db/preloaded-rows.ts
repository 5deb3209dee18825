// Rows of one table read for many keys at once — one statement per chunk of keys (`IN (SELECT value
// FROM json_each(?))`) instead of one query per key — and kept in memory while someone holds them (an
// upload of 100,000 files asks about each file and each blob once: 200,000 single-row SELECTs cost
// seconds, a few hundred chunked ones a fraction of that). Writes made while rows are held go through
// `update`, so what is held never goes stale; when the last holder lets go, the rows are dropped.

/** Keys per statement: well under SQLite's limits, large enough that the statement count is small. */
export const PRELOAD_CHUNK = 1000;

export class PreloadedRows<R> {
  private rows = new Map<string, R | null>();
  private holders = 0;
  /** Every row there is was read (holdAll): a key not held has no row, no statement needed. */
  private complete = false;

  /** `fetch(keys)`: the rows found for these keys (at most PRELOAD_CHUNK of them), by key. */
  constructor(private readonly fetch: (keys: string[]) => Iterable<[string, R]>) {}

  /** Reads the rows of `keys` not held yet; returns the release. */
  hold(keys: Iterable<string>): () => void {
    this.holders += 1;
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
   * one statement instead of one per chunk, when those are not many more than the keys).
   */
  holdAll(keys: Iterable<string>, all: () => Iterable<[string, R]>): () => void {
    this.holders += 1;
    for (const [key, row] of all()) this.rows.set(key, row);
    for (const key of keys) if (!this.rows.has(key)) this.rows.set(key, null);
    this.complete = true;
    return this.release();
  }

  private release(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holders -= 1;
      if (this.holders === 0) {
        this.rows = new Map();
        this.complete = false;
      }
    };
  }

  /** The held row (null: held, and there is none), or undefined when the key is not held. */
  get(key: string): R | null | undefined {
    const row = this.rows.get(key);
    return row === undefined && this.complete ? null : row;
  }

  /** Keeps a held key in step with a write (a row written, or null when deleted). */
  update(key: string, row: R | null): void {
    if (this.holders > 0 && (this.complete || this.rows.has(key))) this.rows.set(key, row);
  }
}
