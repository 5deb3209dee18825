// SHA-256 of files on worker threads, so cold hashing uses more than one core (the main thread keeps
// serving the WebSocket). Workers read with plain blocking reads (nothing else runs on them), hash in
// 1 MiB steps, check between steps whether their job was canceled, and can hand the bytes of a small
// file back (transferred, not copied) for the upload to send. The SHA-256 is the only hash: stores
// verify with it too (S3's x-amz-checksum-sha256). Idle workers do not keep the process alive, and
// stop after `idleMs` without work (each holds about 8 MiB of memory in an idle daemon). The workers
// also state paths in batches (`lstat`): a re-submit states every file of the project, and thousands
// of lstat promises cost the main thread more than the calls themselves.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { onAbort as whenAborted } from '../util/abort-fanout.js';
import { Fifo } from '../util/fifo.js';

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync, fstatSync, statSync, lstatSync } = require('node:fs');
const CHUNK = 1 << 20;
// One read buffer per worker for every file it streams (a fresh 1 MiB buffer per file fragmented
// the thread's malloc arena, which an idle daemon then kept).
let chunk;
let cancel;
parentPort.on('message', (message) => {
  if (message.cancel) { cancel = message.cancel; return; }
  if (message.paths) {
    // lstat, and stat behind a symlink; null for a path that cannot be stated.
    const stats = message.paths.map((path) => {
      try {
        let s = lstatSync(path, { bigint: true });
        const symlink = s.isSymbolicLink();
        if (symlink) s = statSync(path, { bigint: true });
        const kind = s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
        return { size: s.size, mtimeNs: s.mtimeNs, dev: s.dev, ino: s.ino, mode: s.mode, kind, symlink };
      } catch {
        return null;
      }
    });
    parentPort.postMessage({ id: message.id, stats });
    return;
  }
  const { id, path, keepMax, statAfter } = message;
  let fd;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const hash = createHash('sha256');
    let bytes;
    if (size <= keepMax) {
      bytes = Buffer.allocUnsafeSlow(size);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, bytes, done, size - done, done);
        if (n === 0) break;
        done += n;
      }
      bytes = bytes.subarray(0, done);
      hash.update(bytes);
    } else {
      chunk ??= Buffer.allocUnsafeSlow(CHUNK);
      let position = 0;
      for (;;) {
        if (cancel && Atomics.load(cancel, 0) === id) throw Object.assign(new Error('hashing canceled'), { code: 'ABORT_ERR' });
        const n = readSync(fd, chunk, 0, CHUNK, position);
        if (n === 0) break;
        hash.update(n === CHUNK ? chunk : chunk.subarray(0, n));
        position += n;
      }
    }
    const sha256 = hash.digest('hex');
    // The path's identity after reading, for the caller's "did it change meanwhile" check.
    let after;
    if (statAfter) {
      const s = statSync(path, { bigint: true });
      after = { size: s.size, mtimeNs: s.mtimeNs, dev: s.dev, ino: s.ino, mode: s.mode, file: s.isFile() };
    }
    if (bytes) {
      const copy = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      parentPort.postMessage({ id, sha256, after, bytes: copy }, [copy.buffer]);
    } else parentPort.postMessage({ id, sha256, after });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message), code: error && error.code });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

export interface HashResult {
  sha256: string;
  /** The file's bytes, when it was small enough to keep. */
  bytes?: Buffer;
  /** The path's stat taken after reading, when `statAfter` was asked for. */
  after?: StatAfter;
}

/** What a path is (behind a symlink: what it leads to). */
export interface PathStat {
  size: bigint;
  mtimeNs: bigint;
  dev: bigint;
  ino: bigint;
  mode: bigint;
  kind: 'file' | 'directory' | 'other';
  symlink: boolean;
}

export interface StatAfter {
  size: bigint;
  mtimeNs: bigint;
  dev: bigint;
  ino: bigint;
  mode: bigint;
  /** A regular file. */
  file: boolean;
}

/** What a job settles with: a hash, or the stats of a batch of paths. */
type JobResult = HashResult & { stats?: Array<PathStat | null> };

interface Job {
  id: number;
  path: string;
  /** Paths to state instead of a file to hash. */
  paths?: string[];
  keepMax: number;
  statAfter: boolean;
  resolve: (result: JobResult) => void;
  reject: (error: unknown) => void;
  signal?: AbortSignal;
  /** Stops watching `signal` for this job. */
  unwatch?: () => void;
  settled: boolean;
}

interface Slot {
  worker: Worker;
  cancel: Int32Array;
  job?: Job;
}

export class HashPool {
  private readonly slots: Slot[] = [];
  private readonly queue = new Fifo<Job>();
  private nextId = 1;
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  readonly size: number;

  constructor(
    size = Math.max(1, Math.min(4, availableParallelism())),
    readonly idleMs = 10_000,
  ) {
    this.size = size;
  }

  /** Workers alive right now (tests). */
  get workers(): number {
    return this.slots.length;
  }

  /**
   * SHA-256 of a file; its bytes too when it is at most `keepMax` bytes long, and the path's stat
   * after reading when `statAfter` is set.
   */
  hash(
    path: string,
    options: { signal?: AbortSignal; keepMax?: number; statAfter?: boolean } = {},
  ): Promise<HashResult> {
    return this.submit(
      { path, keepMax: options.keepMax ?? -1, statAfter: options.statAfter ?? false },
      options.signal,
    );
  }

  /** lstat (and stat behind a symlink) of each path, null where it cannot be stated; in one job. */
  async lstat(paths: string[], signal?: AbortSignal): Promise<Array<PathStat | null>> {
    const result = await this.submit({ path: '', paths, keepMax: -1, statAfter: false }, signal);
    return result.stats ?? [];
  }

  private submit(
    what: Pick<Job, 'path' | 'paths' | 'keepMax' | 'statAfter'>,
    signal?: AbortSignal,
  ): Promise<JobResult> {
    if (this.closed) return Promise.reject(new Error('hash pool closed'));
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const job: Job = {
        id: this.nextId++,
        ...what,
        resolve,
        reject,
        settled: false,
      };
      if (signal) {
        job.signal = signal;
        // Queued files share one listener on their signal (an upload queues thousands).
        job.unwatch = whenAborted(signal, () => this.abort(job));
      }
      this.queue.push(job);
      this.pump();
    });
  }

  private abort(job: Job): void {
    this.queue.remove(job);
    const slot = this.slots.find((s) => s.job === job);
    if (slot) Atomics.store(slot.cancel, 0, job.id);
    this.settle(job, undefined, job.signal?.reason ?? new Error('hashing canceled'));
  }

  private settle(job: Job, result: JobResult | undefined, error?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.unwatch?.();
    if (error !== undefined) job.reject(error);
    else if (result) job.resolve(result);
  }

  private spawn(): Slot {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.postMessage({ cancel });
    const slot: Slot = { worker, cancel };
    worker.on(
      'message',
      (message: {
        id: number;
        sha256?: string;
        after?: StatAfter;
        bytes?: Uint8Array;
        stats?: Array<PathStat | null>;
        error?: string;
        code?: string;
      }) => {
        if (this.closed) return; // close() settled the job; an unref here would let it exit early
        const job = slot.job;
        slot.job = undefined;
        worker.unref();
        if (job && job.id === message.id) {
          if (message.error !== undefined) {
            this.settle(job, undefined, Object.assign(new Error(message.error), { code: message.code }));
          } else if (message.stats) {
            this.settle(job, { sha256: '', stats: message.stats });
          } else {
            const bytes = message.bytes
              ? Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.length)
              : undefined;
            this.settle(job, {
              sha256: message.sha256 ?? '',
              ...(bytes ? { bytes } : {}),
              ...(message.after ? { after: message.after } : {}),
            });
          }
        } else if (job) {
          this.settle(job, undefined, new Error('hash worker answered another job'));
        }
        this.pump();
      },
    );
    worker.on('error', (error) => {
      const job = slot.job;
      slot.job = undefined;
      this.slots.splice(this.slots.indexOf(slot), 1);
      if (job) this.settle(job, undefined, error);
      this.pump();
    });
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      const job = this.queue.shift()!;
      if (job.settled) continue; // canceled while queued
      slot.job = job;
      Atomics.store(slot.cancel, 0, 0);
      slot.worker.ref();
      slot.worker.postMessage(
        job.paths
          ? { id: job.id, paths: job.paths }
          : { id: job.id, path: job.path, keepMax: job.keepMax, statAfter: job.statAfter },
      );
    }
    if (!this.closed && this.slots.length > 0 && this.slots.every((s) => !s.job)) {
      this.idleTimer = setTimeout(() => this.retire(), this.idleMs);
      this.idleTimer.unref();
    }
  }

  /** Stops the workers after a quiet spell; the next hash starts them again. */
  private retire(): void {
    this.idleTimer = undefined;
    if (this.queue.length > 0 || this.slots.some((s) => s.job)) return;
    for (const slot of this.slots.splice(0)) void slot.worker.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const closing = new Error('hash pool closed');
    for (const job of this.queue.drain()) this.settle(job, undefined, closing);
    // Workers are kept referenced until they are gone: an idle (unref'd) worker's terminate() does not
    // hold the event loop, so a caller awaiting close() with nothing else pending saw its process end
    // first (tap on Node 24: "test unfinished").
    await Promise.all(
      this.slots.splice(0).map((slot) => {
        if (slot.job) this.settle(slot.job, undefined, closing);
        slot.job = undefined;
        slot.worker.ref();
        return slot.worker.terminate();
      }),
    );
  }
}

let sharedPool: HashPool | undefined;

/** The process's hash workers (created on first use; idle workers do not keep the process alive). */
export function hashPool(): HashPool {
  return (sharedPool ??= new HashPool());
}
