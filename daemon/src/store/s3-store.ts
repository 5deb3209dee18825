// The content-addressed store in an S3 bucket (DESIGN.md "Object layout"): `cas/<sha256>` blobs,
// `jobs/<jobId>/…` and `manifests/…` JSON documents. Small blobs go up in one PUT from memory (so the
// SDK can retry them), large ones multipart from a stream; S3 verifies every PUT and part against the
// SHA-256 sent with it (see s3.ts), and the streamed bytes are hashed on the way, so a file that
// changed after it was hashed is never stored under the wrong name.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashPool } from '../project/hash-pool.js';
import { Semaphore } from '../util/semaphore.js';
import {
  BlobChangedError,
  IntegrityError,
  blobKey,
  packKey,
  type BlobRef,
  type IObjectStore,
  type PackBlob,
  type PackedLocation,
  type PresenceCheck,
  type PresenceOptions,
  type PutBlobOptions,
} from './object-store.js';
import type { IS3 } from './s3.js';
import { withRetries } from './retry.js';

export interface S3StoreOptions {
  /** Multipart part size (default 8 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Files above this size go multipart (default 16 MiB). */
  multipartThreshold?: number;
  /** Parts in flight per multipart upload (default 4). */
  queueSize?: number;
  /** Multipart uploads at once (default 2): bounds memory to about 2 × queueSize × partSize. */
  maxMultipartUploads?: number;
  /** Whole-operation attempts on top of the SDK's per-request retries (default 4). */
  attempts?: number;
  /** Blobs up to this size go into packs (default 1 MiB; 0: every blob is its own object). */
  packBlobMax?: number;
  /** A pack is sent once it holds this many bytes (default 8 MiB). */
  packTarget?: number;
}

const MiB = 1024 * 1024;
/** What one LIST request costs next to one HEAD (S3 request pricing: about 12×). */
const LIST_COST = 12;

export function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class S3ObjectStore implements IObjectStore {
  readonly id: string;
  /** Small blobs go up from the bytes the upload read for hashing. */
  readonly takesBytes = true;
  private readonly partSize: number;
  private readonly threshold: number;
  private readonly queueSize: number;
  private readonly attempts: number;
  private readonly multipartSlots: Semaphore;
  readonly packBlobMax: number;
  readonly packTarget: number;

  constructor(
    readonly s3: IS3,
    options: S3StoreOptions = {},
  ) {
    this.id = s3.location;
    this.partSize = Math.max(5 * MiB, options.partSize ?? 8 * MiB);
    this.threshold = Math.max(this.partSize, options.multipartThreshold ?? 16 * MiB);
    this.queueSize = options.queueSize ?? 4;
    this.attempts = options.attempts ?? 4;
    this.multipartSlots = new Semaphore(options.maxMultipartUploads ?? 2);
    this.packBlobMax = options.packBlobMax ?? MiB;
    this.packTarget = Math.min(this.threshold, options.packTarget ?? 8 * MiB);
  }

  /** One PUT of the blobs' bytes back to back, named by their SHA-256 (which S3 verifies). */
  async putPack(blobs: PackBlob[], signal?: AbortSignal): Promise<string> {
    const body = Buffer.concat(blobs.map((blob) => blob.data));
    const sha256 = sha256Hex(body);
    await withRetries(
      () =>
        this.s3.put(packKey(sha256), body, {
          checksumSha256: hexToBase64(sha256),
          sha256Hex: sha256,
          ...(signal ? { signal } : {}),
        }),
      { attempts: this.attempts, ...(signal ? { signal } : {}) },
    );
    return sha256;
  }

  /** A packed blob: a ranged GET of its bytes in the pack, hashed on the way and checked. */
  async materializePacked(location: PackedLocation, dest: string, signal?: AbortSignal): Promise<void> {
    const key = packKey(location.pack);
    await mkdir(dirname(dest), { recursive: true });
    await withRetries(
      async () => {
        const temp = `${dest}.${randomBytes(4).toString('hex')}.part`;
        try {
          const body =
            location.size === 0
              ? undefined
              : await this.s3.get(key, signal, {
                  start: location.offset,
                  end: location.offset + location.size - 1,
                });
          const bytes = location.size === 0 ? Buffer.alloc(0) : body ? await readAll(body) : undefined;
          if (!bytes) throw new Error(`pack ${location.pack} is not in ${this.s3.location}`);
          const actual = sha256Hex(bytes);
          if (bytes.length !== location.size || actual !== location.sha256) {
            throw new IntegrityError(
              `${key} at ${location.offset}: read ${bytes.length} bytes hashing to ${actual}, ` +
                `expected ${location.size} bytes of ${location.sha256}`,
            );
          }
          await writeFile(temp, bytes);
          await rename(temp, dest);
        } finally {
          await rm(temp, { force: true });
        }
      },
      { attempts: this.attempts, ...(signal ? { signal } : {}) },
    );
  }

  async hasBlob(sha256: string): Promise<boolean> {
    return (
      (await withRetries(() => this.s3.head(blobKey(sha256)), { attempts: this.attempts })) !== undefined
    );
  }

  /**
   * Listing `cas/` costs one request per 1000 blobs in the bucket (and a LIST costs S3 about 12 times
   * a HEAD); a HEAD costs one request per blob. List when the bucket is believed small next to the
   * number of blobs to check, else HEAD each. A listing that runs longer than it was worth (the bucket
   * is bigger than believed: other users, other machines) stops, and the rest is asked blob by blob.
   */
  presence(count: number, options: PresenceOptions = {}): PresenceCheck {
    const s3 = this.s3;
    const attempts = this.attempts;
    const retry = { attempts, ...(options.signal ? { signal: options.signal } : {}) };
    const pages = Math.max(1, Math.ceil((options.sizeHint ?? 0) / 1000));
    const useListing = pages * LIST_COST < count;
    const maxPages = Math.max(pages, Math.floor(count / LIST_COST));
    let requests = 0;
    let listed: number | undefined;
    let complete = false;
    let listing: Promise<Map<string, number>> | undefined;
    const list = () =>
      (listing ??= withRetries(async () => {
        const sizes = new Map<string, number>();
        let page = 0;
        complete = true;
        for await (const { entries, more } of s3.list('cas/', options.signal)) {
          requests += 1;
          page += 1;
          for (const entry of entries) sizes.set(entry.key.slice('cas/'.length), entry.size);
          if (more && page >= maxPages) {
            complete = false;
            break;
          }
        }
        // A cut-short listing says "at least this many": the next upload goes straight to HEADs.
        listed = complete ? sizes.size : Math.max(sizes.size, (maxPages + 1) * 1000);
        return sizes;
      }, retry));
    let packs: Promise<Set<string>> | undefined;
    const listPacks = () =>
      (packs ??= withRetries(async () => {
        const found = new Set<string>();
        for await (const { entries } of s3.list('packs/', options.signal)) {
          requests += 1;
          for (const entry of entries) found.add(entry.key.slice('packs/'.length));
        }
        return found;
      }, retry));
    const head = async (blob: BlobRef) => {
      requests += 1;
      const found = await withRetries(() => s3.head(blobKey(blob.sha256), options.signal), retry);
      return found !== undefined && found.size === blob.size;
    };
    return {
      get requests() {
        return requests;
      },
      get listed() {
        return listed;
      },
      async hasPack(pack: string) {
        return (await listPacks()).has(pack);
      },
      async has(blob: BlobRef) {
        if (!useListing) return head(blob);
        const sizes = await list();
        if (sizes.get(blob.sha256) === blob.size) return true;
        return complete ? false : head(blob);
      },
    };
  }

  async putBlobFromFile(sha256: string, file: string, signal?: AbortSignal): Promise<void> {
    await this.putBlob(sha256, file, { size: (await stat(file)).size, ...(signal ? { signal } : {}) });
  }

  async putBlob(sha256: string, file: string, options: PutBlobOptions): Promise<void> {
    const key = blobKey(sha256);
    const retry = { attempts: this.attempts, ...(options.signal ? { signal: options.signal } : {}) };
    if (options.size <= this.threshold) {
      // Bytes the caller hashed are the blob by construction; bytes read here are hashed on the hash
      // workers (off the thread that drives the requests) and checked. The blob's own SHA-256 is all
      // S3 needs to verify what it stores (x-amz-checksum-sha256): no second hash of the bytes.
      const given = options.data?.length === options.size ? options.data : undefined;
      await withRetries(async () => {
        let body = given;
        if (!body) {
          const read = await hashPool().hash(file, {
            keepMax: options.size,
            ...(options.signal ? { signal: options.signal } : {}),
          });
          if (read.sha256 !== sha256 || read.bytes?.length !== options.size)
            throw new BlobChangedError(file, sha256, read.sha256);
          body = read.bytes;
        }
        await this.s3.put(key, body, {
          checksumSha256: hexToBase64(sha256),
          sha256Hex: sha256,
          ...(options.signal ? { signal: options.signal } : {}),
        });
      }, retry);
      options.onBytes?.(options.size);
      return;
    }
    const release = await this.multipartSlots.acquire(options.signal);
    try {
      await withRetries(async () => {
        let sent = 0;
        const hash = createHash('sha256');
        const hasher = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            callback(null, chunk);
          },
        });
        const source = createReadStream(file, { highWaterMark: MiB });
        const body = new PassThrough({ highWaterMark: MiB });
        const feeding = pipeline(source, hasher, body).catch(() => undefined);
        try {
          await this.s3.uploadMultipart(key, body, {
            size: options.size,
            partSize: this.partSize,
            queueSize: this.queueSize,
            ...(options.signal ? { signal: options.signal } : {}),
            onPart: (bytes) => {
              sent += bytes;
              options.onBytes?.(bytes);
            },
          });
        } catch (error) {
          if (sent) options.onBytes?.(-sent); // this attempt's bytes will be sent again
          source.destroy();
          throw error;
        } finally {
          await feeding;
        }
        const actual = hash.digest('hex');
        if (actual !== sha256) {
          await this.s3.delete(key).catch(() => undefined);
          throw new BlobChangedError(file, sha256, actual);
        }
        const head = await this.s3.head(key, options.signal);
        if (!head || head.size !== options.size) {
          throw new IntegrityError(
            `${key}: stored ${head?.size ?? 'nothing'}, expected ${options.size} bytes`,
          );
        }
      }, retry);
    } finally {
      release();
    }
  }

  async materializeBlob(sha256: string, dest: string, signal?: AbortSignal): Promise<void> {
    const key = blobKey(sha256);
    await mkdir(dirname(dest), { recursive: true });
    await withRetries(
      async () => {
        const temp = `${dest}.${randomBytes(4).toString('hex')}.part`;
        try {
          const body = await this.s3.get(key, signal);
          if (!body) throw new Error(`blob ${sha256} is not in ${this.s3.location}`);
          const hash = createHash('sha256');
          const hasher = new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              hash.update(chunk);
              callback(null, chunk);
            },
          });
          await pipeline(body, hasher, createWriteStream(temp), ...(signal ? [{ signal }] : []));
          const actual = hash.digest('hex');
          if (actual !== sha256) throw new IntegrityError(`${key} downloaded as ${actual}`);
          await rename(temp, dest);
        } finally {
          await rm(temp, { force: true });
        }
      },
      { attempts: this.attempts, ...(signal ? { signal } : {}) },
    );
  }

  async putJson(key: string, value: unknown): Promise<void> {
    const body = Buffer.from(JSON.stringify(value, null, 2));
    await withRetries(
      () =>
        this.s3.put(key, body, {
          contentType: 'application/json',
          checksumSha256: hexToBase64(sha256Hex(body)),
        }),
      { attempts: this.attempts },
    );
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    return withRetries(
      async () => {
        const body = await this.s3.get(key);
        return body ? (JSON.parse((await readAll(body)).toString('utf8')) as T) : undefined;
      },
      { attempts: this.attempts },
    );
  }
}
