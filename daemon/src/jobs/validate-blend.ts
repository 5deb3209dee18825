// Cheap checks on a submitted .blend before Blender is started.
import { open, stat } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { SkyfarmError } from '../errors.js';

const BLEND_MAGIC = Buffer.from('BLENDER');
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Checks the file exists and starts like a .blend: plain, gzip-compressed (< 3.0) or zstd (3.0+). */
export async function assertBlendFile(path: string): Promise<void> {
  let stats;
  try {
    stats = await stat(path);
  } catch {
    throw new SkyfarmError('FILE_NOT_FOUND', `${path} does not exist`);
  }
  if (!stats.isFile()) throw new SkyfarmError('NOT_A_BLEND', `${path} is not a file`);
  const handle = await open(path, 'r');
  const head = Buffer.alloc(4096);
  let length = 0;
  try {
    length = (await handle.read(head, 0, head.length, 0)).bytesRead;
  } finally {
    await handle.close();
  }
  const start = head.subarray(0, length);
  if (start.subarray(0, 7).equals(BLEND_MAGIC)) return;
  if (start.subarray(0, 4).equals(ZSTD_MAGIC)) return;
  if (start.subarray(0, 2).equals(GZIP_MAGIC)) {
    try {
      const inflated = gunzipSync(start, { finishFlush: 2 /* Z_SYNC_FLUSH: a prefix is enough */ });
      if (inflated.subarray(0, 7).equals(BLEND_MAGIC)) return;
    } catch {
      // fall through to the error below
    }
  }
  throw new SkyfarmError(
    'NOT_A_BLEND',
    `${path} is not a Blender file (it does not start with a .blend header)`,
  );
}
