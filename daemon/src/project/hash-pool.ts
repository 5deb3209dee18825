// SHA-256 of files on worker threads, so cold hashing uses more than one core (the main thread keeps
// serving the WebSocket). Workers read with plain blocking reads (nothing else runs on them), hash in
// 1 MiB steps, check between steps whether their job was canceled, and can hand the bytes of a small
// file back (transferred, not copied) for the upload to send. Idle workers do not keep the process
// alive, and stop after `idleMs` without work (each holds about 8 MiB of memory in an idle daemon).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync, fstatSync } = require('node:fs');
const CHUNK = 1 << 20;
let cancel;
parentPort.on('message', (message) => {
  if (message.cancel) { cancel = message.cancel; return; }
  const { id, path, keepMax } = message;
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
      const chunk = Buffer.allocUnsafeSlow(CHUNK);
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
    if (bytes) {
      // The upload checks S3's ETag (the MD5 of what it stored) against this.
      const md5 = createHash('md5').update(bytes).digest('hex');
      const copy = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      parentPort.postMessage({ id, sha256, md5, bytes: copy }, [copy.buffer]);
    } else parentPort.postMessage({ id, sha256 });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message), code: error && error.code });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

export interface HashResult {
  sha256: string;
  /** The file's bytes and their MD5, when it was small enough to keep. */
  bytes?: Buffer;
  md5?: string;
}

interface Job {
  id: number;
  path: string;
  keepMax: number;
  resolve: (result: HashResult) => void;
  reject: (error: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
  settled: boolean;
}

interface Slot {
  worker: Worker;
  cancel: Int32Array;
  job?: Job;
}

export class HashPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
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

  /** SHA-256 of a file; its bytes too when it is at most `keepMax` bytes long. */
  hash(path: string, options: { signal?: AbortSignal; keepMax?: number } = {}): Promise<HashResult> {
    if (this.closed) return Promise.reject(new Error('hash pool closed'));
    options.signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const job: Job = {
        id: this.nextId++,
        path,
        keepMax: options.keepMax ?? -1,
        resolve,
        reject,
        settled: false,
      };
      if (options.signal) {
        job.signal = options.signal;
        job.onAbort = () => this.abort(job);
        options.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.pump();
    });
  }

  private abort(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    const slot = this.slots.find((s) => s.job === job);
    if (slot) Atomics.store(slot.cancel, 0, job.id);
    this.settle(job, undefined, job.signal?.reason ?? new Error('hashing canceled'));
  }

  private settle(job: Job, result: HashResult | undefined, error?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
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
        md5?: string;
        bytes?: Uint8Array;
        error?: string;
        code?: string;
      }) => {
        const job = slot.job;
        slot.job = undefined;
        worker.unref();
        if (job && job.id === message.id) {
          if (message.error !== undefined) {
            this.settle(job, undefined, Object.assign(new Error(message.error), { code: message.code }));
          } else {
            const bytes = message.bytes
              ? Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.length)
              : undefined;
            this.settle(job, { sha256: message.sha256!, ...(bytes ? { bytes, md5: message.md5! } : {}) });
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
      slot.worker.postMessage({ id: job.id, path: job.path, keepMax: job.keepMax });
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
    for (const job of this.queue.splice(0)) this.settle(job, undefined, new Error('hash pool closed'));
    await Promise.all(this.slots.splice(0).map((slot) => slot.worker.terminate()));
  }
}
