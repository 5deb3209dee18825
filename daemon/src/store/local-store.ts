// Folder-backed object store for the local backend. Blobs are read-only files named by their hash.
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { IObjectStore } from './object-store.js';
import { sha256File } from '../project/hash.js';

const SHA256 = /^[0-9a-f]{64}$/;

export class LocalObjectStore implements IObjectStore {
  constructor(private readonly root: string) {}

  private blobPath(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.root, 'cas', sha256.slice(0, 2), sha256);
  }

  private keyPath(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '')) throw new Error(`bad key ${key}`);
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

  async putBlobFromFile(sha256: string, file: string): Promise<void> {
    const dest = this.blobPath(sha256);
    await mkdir(dirname(dest), { recursive: true });
    const temp = `${dest}.${randomBytes(4).toString('hex')}.part`;
    try {
      await copyFile(file, temp);
      const actual = await sha256File(temp);
      if (actual !== sha256) throw new Error(`${file} changed while it was being stored`);
      await chmod(temp, 0o444);
      await rename(temp, dest);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async materializeBlob(sha256: string, dest: string): Promise<void> {
    const source = this.blobPath(sha256);
    await mkdir(dirname(dest), { recursive: true });
    await rm(dest, { force: true });
    try {
      await link(source, dest);
    } catch {
      await copyFile(source, dest);
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
