// s3rver 3.7 writes an object in place: it truncates the file, then writes it, and for a body in
// memory it answers the PUT before the bytes are on disk. A GET meanwhile reads an empty or partial
// object. S3 never shows that: a PUT is atomic, and a GET after it returns all of the new object
// ("strong read-after-write consistency", S3 User Guide). A test reading result.json while the
// publish stage writes it saw `Unexpected end of JSON input`. This makes s3rver's filesystem store
// write a temporary file (a name its listings skip: no `._S3rver_object` suffix), wait until it is
// complete, and rename it over the object.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

interface S3rverObject {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: unknown;
}

interface FilesystemStoreLike {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
}

let temporaries = 0;

export function makeS3rverPutsAtomic(): void {
  const store = createRequire(import.meta.url)('s3rver/lib/stores/filesystem.js') as {
    prototype: Record<string, unknown>;
  };
  if (store.prototype['skyfarmAtomicPuts']) return;
  store.prototype['skyfarmAtomicPuts'] = true;
  store.prototype['putObject'] = async function putObject(
    this: FilesystemStoreLike,
    object: S3rverObject,
  ): Promise<{ size: number; md5: string }> {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(path.dirname(objectPath), { recursive: true });
    const temporary = `${objectPath}.${process.pid}.${++temporaries}.partial`;
    const md5 = createHash('md5');
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      const source = Buffer.isBuffer(object.content) ? [object.content] : object.content;
      await pipeline(source, counted, createWriteStream(temporary));
      await rename(temporary, objectPath);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    const digest = md5.digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
