// Folder-backed object store for the local backend. Blobs are read-only files named by their hash,
// written through a temporary name and verified (hash and size of the bytes written) before they
// appear under it.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import {
  BlobChangedError,
  SHA256_HEX,
  type BlobRef,
  type IObjectStore,
  type PresenceCheck,
  type PutBlobOptions,
} from './object-store.js';

export class LocalObjectStore implements IObjectStore {
  readonly id: string;
  /**
   * Small blobs are written from the bytes the upload read and hashed: one write, no second read and
   * no stream per file (a 100,000-file cache spent most of its upload opening streams).
   */
  readonly takesBytes = true;
  /** Blob folders known to exist (one mkdir per folder, not per blob). */
  private readonly folders = new Set<string>();

  constructor(private readonly root: string) {
    this.id = pathToFileURL(resolve(root)).href;
  }

  private blobPath(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.root, 'cas', sha256.slice(0, 2), sha256);
  }

  private keyPath(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '' || part === '.')) {
      throw new Error(`bad key ${key}`);
    }
    return join(this.root, key);
  }

  async hasBlob(sha256: string): Promise<boolean> {
    try {
      await stat(this.blobPath(sha256));
      return true;
    } catch {
      return false;
    }
  }

  presence(): PresenceCheck {
    let requests = 0;
    return {
      get requests() {
        return requests;
      },
      has: async (blob: BlobRef) => {
        requests += 1;
        try {
          return (await stat(this.blobPath(blob.sha256))).size === blob.size;
        } catch {
          return false;
        }
      },
    };
  }

  async putBlobFromFile(sha256: string, file: string, signal?: AbortSignal): Promise<void> {
    const size = (await stat(file)).size;
    await this.putBlob(sha256, file, { size, ...(signal ? { signal } : {}) });
  }

  private async folderFor(path: string): Promise<void> {
    const folder = dirname(path);
    if (this.folders.has(folder)) return;
    await mkdir(folder, { recursive: true });
    this.folders.add(folder);
  }

  async putBlob(sha256: string, file: string, options: PutBlobOptions): Promise<void> {
    const dest = this.blobPath(sha256);
    await this.folderFor(dest);
    const temp = `${dest}.${randomBytes(4).toString('hex')}.part`;
    if (options.data?.length === options.size) {
      // Bytes hashed by the caller are the blob by construction.
      options.signal?.throwIfAborted();
      try {
        await writeFile(temp, options.data, { mode: 0o444 });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        this.folders.delete(dirname(dest)); // the store's folder was removed meanwhile
        await this.folderFor(dest);
        await writeFile(temp, options.data, { mode: 0o444 });
      }
      try {
        await rename(temp, dest);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      options.onBytes?.(options.size);
      return;
    }
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        size += chunk.length;
        options.onBytes?.(chunk.length);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(
        // Reads sized to the file (a 1 MiB buffer per small file fragments the heap an idle daemon keeps).
        createReadStream(file, { highWaterMark: Math.min(1 << 20, Math.max(16 * 1024, options.size + 1)) }),
        meter,
        createWriteStream(temp, { mode: 0o600 }),
        ...(options.signal ? [{ signal: options.signal }] : []),
      );
      const actual = hash.digest('hex');
      if (actual !== sha256 || size !== options.size) throw new BlobChangedError(file, sha256, actual);
      await chmod(temp, 0o444);
      await rename(temp, dest);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async materializeBlob(sha256: string, dest: string, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const source = this.blobPath(sha256);
    await this.folderFor(dest);
    try {
      await link(source, dest);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') await rm(dest, { force: true });
      else if (code === 'ENOENT') {
        this.folders.delete(dirname(dest)); // the folder may have been removed meanwhile
        await this.folderFor(dest);
      }
    }
    try {
      await link(source, dest);
    } catch {
      await copyFile(source, dest); // another file system, or no hard links there
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    const dest = this.keyPath(key);
    await mkdir(dirname(dest), { recursive: true });
    const temp = `${dest}.${randomBytes(4).toString('hex')}.part`;
    await writeFile(temp, JSON.stringify(value, null, 2));
    await rename(temp, dest);
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(this.keyPath(key), 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** For tests and verification: the blob's bytes as a stream. */
  openBlob(sha256: string) {
    return createReadStream(this.blobPath(sha256));
  }
}
