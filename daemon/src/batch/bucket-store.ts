// IObjectStore over an S3 bucket (`cas/<sha256>` blobs, `jobs/…` documents), so the scene upload
// (daemon/src/project/upload.ts) can put a project where the Batch worker reads it. When the store
// module grows its own S3 implementation, the AWS backend can take that instead: both follow
// DESIGN.md's object layout.
import { rm } from 'node:fs/promises';
import type { IObjectStore } from '../store/object-store.js';
import { sha256File } from '../project/hash.js';
import { blobKey } from './layout.js';
import type { IBucket } from './bucket.js';

export class BucketObjectStore implements IObjectStore {
  constructor(readonly bucket: IBucket) {}

  hasBlob(sha256: string): Promise<boolean> {
    return this.bucket.exists(blobKey(sha256));
  }

  async putBlobFromFile(sha256: string, file: string, signal?: AbortSignal): Promise<void> {
    // Hash before and after would race a changing file either way; check the bytes we send.
    const actual = await sha256File(file, signal);
    if (actual !== sha256) throw new Error(`${file} changed while it was being stored`);
    await this.bucket.putFile(blobKey(sha256), file, signal ? { signal } : {});
  }

  async materializeBlob(sha256: string, dest: string, signal?: AbortSignal): Promise<void> {
    await this.bucket.download(blobKey(sha256), dest, signal);
    const actual = await sha256File(dest, signal);
    if (actual !== sha256) {
      await rm(dest, { force: true });
      throw new Error(`blob ${sha256} from s3://${this.bucket.name} hashes to ${actual}`);
    }
  }

  putJson(key: string, value: unknown): Promise<void> {
    return this.bucket.putJson(key, value);
  }

  getJson<T>(key: string): Promise<T | undefined> {
    return this.bucket.getJson<T>(key);
  }
}
