// Cheap checks on a submitted .blend before Blender is started: it is a .blend, and which Blender
// saved it (its header), so a file no Blender here can open is refused with a clear message instead
// of a Blender crash.
import { open, stat } from 'node:fs/promises';
import { constants, gunzipSync } from 'node:zlib';
import { Decompress } from 'fzstd';
import { SkyfarmError } from '../errors.js';

const BLEND_MAGIC = Buffer.from('BLENDER');
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** How much of a compressed file is read to find its header (one zstd block is at most 128 KiB). */
const COMPRESSED_READ_LIMIT = 1024 * 1024;
const READ_STEP = 16 * 1024;

/** Major and minor version of the Blender that saved a file (the header has no patch number). */
export type BlendVersion = [number, number];

/**
 * The version in a .blend header (Blender's BLO_core_blend_header: `BLENDER-v304` (pointer size,
 * endianness, 3 digits) up to 4.x, `BLENDER17-01v0502` (header size, format version, 4 digits)
 * from 5.0), or null when `head` does not start with one.
 */
export function parseBlendHeader(head: Buffer): BlendVersion | null {
  const text = head.subarray(0, 17).toString('latin1');
  const legacy = /^BLENDER[-_][vV](\d)(\d\d)/.exec(text);
  if (legacy) return [Number(legacy[1]), Number(legacy[2])];
  const large = /^BLENDER(\d\d)-(\d\d)v(\d\d)(\d\d)/.exec(text);
  if (large) return [Number(large[3]), Number(large[4])];
  return null;
}

export function formatBlendVersion(version: BlendVersion): string {
  return `${version[0]}.${version[1]}`;
}

/** a < b: negative; same major.minor: 0 (patch releases of a series read each other's files). */
export function compareBlendVersions(a: readonly number[], b: readonly number[]): number {
  return a[0]! - b[0]! || a[1]! - b[1]!;
}

/** Decompresses the start of a zstd stream until `want` bytes came out (or the input ran out). */
async function zstdHead(read: (size: number) => Promise<Buffer>, want: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  const decoder = new Decompress((chunk) => {
    parts.push(Buffer.from(chunk));
    have += chunk.length;
  });
  for (let offset = 0; have < want && offset < COMPRESSED_READ_LIMIT;) {
    const chunk = await read(READ_STEP);
    if (chunk.length === 0) break;
    offset += chunk.length;
    try {
      decoder.push(chunk, false);
    } catch {
      break; // not zstd after all: judged by what came out
    }
  }
  return Buffer.concat(parts);
}

/**
 * Checks the file exists and starts like a .blend (plain, gzip-compressed (< 3.0) or zstd (3.0+)),
 * and returns the version of the Blender that saved it (null when its header is not one this code
 * knows: Blender itself then decides).
 */
export async function assertBlendFile(path: string): Promise<BlendVersion | null> {
  let stats;
  try {
    stats = await stat(path);
  } catch {
    throw new SkyfarmError('FILE_NOT_FOUND', `${path} does not exist`);
  }
  if (!stats.isFile()) throw new SkyfarmError('NOT_A_BLEND', `${path} is not a file`);
  const handle = await open(path, 'r');
  try {
    let position = 0;
    const read = async (size: number) => {
      const buffer = Buffer.alloc(size);
      const { bytesRead } = await handle.read(buffer, 0, size, position);
      position += bytesRead;
      return buffer.subarray(0, bytesRead);
    };
    const start = await read(32);
    let head: Buffer | null = null;
    if (start.subarray(0, 7).equals(BLEND_MAGIC)) head = start;
    else if (start.subarray(0, 4).equals(ZSTD_MAGIC)) {
      position = 0;
      head = await zstdHead(read, 32);
      if (head.length === 0) return null; // nothing decodable in the first MiB: Blender judges
    } else if (start.subarray(0, 2).equals(GZIP_MAGIC)) {
      position = 0;
      try {
        head = gunzipSync(await read(64 * 1024), { finishFlush: constants.Z_SYNC_FLUSH });
      } catch {
        head = null;
      }
    }
    // A compressed file of another kind (a .tar.gz renamed .blend) is not a .blend.
    if (head && !head.subarray(0, 7).equals(BLEND_MAGIC)) head = null;
    if (!head) {
      throw new SkyfarmError(
        'NOT_A_BLEND',
        `${path} is not a Blender file (it does not start with a .blend header)`,
      );
    }
    return parseBlendHeader(head);
  } finally {
    await handle.close();
  }
}

/**
 * Refuses (BLEND_TOO_NEW) a file saved by a newer Blender series than `blender`, the one that would
 * open it: an older Blender cannot read it (5.x files are not even recognised by 4.x) or crashes.
 * `which` names that Blender with its version ("the Blender skyfarm uses (…) is 3.4.1").
 */
export function assertReadableBy(
  file: string,
  saved: BlendVersion | null,
  blender: readonly number[],
  which: string,
  hint: string,
): void {
  if (!saved || compareBlendVersions(saved, blender) <= 0) return;
  throw new SkyfarmError(
    'BLEND_TOO_NEW',
    `${file} was saved by Blender ${formatBlendVersion(saved)}; ${which}, which cannot open it. ${hint}`,
  );
}

/**
 * Refuses (BLEND_TOO_NEW) a file that this machine's Blender (`blender`, as findBlender found it)
 * cannot open: the render and upload stages both read the scene with it.
 */
export function assertLocalBlenderReads(
  file: string,
  saved: BlendVersion | null,
  blender: { path: string; version?: readonly number[] },
): void {
  if (!blender.version) return;
  assertReadableBy(
    file,
    saved,
    blender.version,
    `the Blender skyfarm uses (${blender.path}) is ${blender.version.join('.')}`,
    'Set SKYFARM_BLENDER to a newer Blender (then `skyfarm daemon stop`, so the daemon starts again ' +
      'with it) or install a newer one.',
  );
}
