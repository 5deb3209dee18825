// The source the stack's CodeBuild project builds the worker image from: a zip of the files
// infra/Dockerfile copies (package manifests, tsconfigs, protocol/, daemon/src, daemon/blender with
// the add-on's dependencies.py that probe.py loads, infra/worker, infra/Dockerfile), taken from the
// installed skyfarm package (a clone, or the npm package, whose lock file `npm pack` keeps in
// dist/package-lock.json since npm never packs the root one). The zip is deterministic (sorted entries, fixed timestamps), so its
// SHA-256 names it in the bucket and an unchanged source is uploaded once.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { SkyfarmError } from '../errors.js';

const FILES = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'infra/Dockerfile',
  'blender-addon/skyfarm/dependencies.py',
];
const FOLDERS = ['protocol', 'daemon/src', 'daemon/blender', 'infra/worker'];
const SKIP = new Set(['node_modules', 'dist', '__pycache__', '.git']);
/** Where an installed package keeps a context file that npm leaves out of the package's root. */
const PACKED_AS: Record<string, string> = { 'package-lock.json': 'dist/package-lock.json' };

/** The file on disk that goes into the context as `name`. */
export function contextSource(root: string, name: string): string {
  const packed = PACKED_AS[name];
  if (packed && !existsSync(join(root, name)) && existsSync(join(root, packed))) return join(root, packed);
  return join(root, name);
}

async function walk(root: string, folder: string, out: string[]): Promise<void> {
  for (const entry of await readdir(join(root, folder), { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) await walk(root, path, out);
    else if (entry.isFile()) out.push(path);
  }
}

/** The repository-relative paths that go into the build context. */
export async function contextFiles(root: string): Promise<string[]> {
  const files = [...FILES];
  for (const name of FILES) {
    if (!existsSync(contextSource(root, name))) {
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        `cannot build the worker image from this installation: ${join(root, name)} is missing`,
      );
    }
  }
  for (const folder of FOLDERS) {
    try {
      await walk(root, folder, files);
    } catch (error) {
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        `cannot build the worker image from this installation: ${join(root, folder)} is missing ` +
          `(${(error as NodeJS.ErrnoException).code ?? String(error)}); reinstall skyfarm or run it from a clone`,
      );
    }
  }
  return files.map((f) => relative(root, join(root, f)).split(sep).join('/')).sort();
}

// DOS time/date of 1980-01-01 00:00: a fixed timestamp keeps the zip's bytes stable.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** A zip (deflate) of `files` under `root`. */
export async function zipFiles(root: string, files: string[]): Promise<Buffer> {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const name of files) {
    const data = await readFile(contextSource(root, name));
    const packed = deflateRawSync(data, { level: 9 });
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(0x0314, 4); // made by: Unix, 2.0
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(0x0800, 8);
    header.writeUInt16LE(8, 10);
    header.writeUInt16LE(DOS_TIME, 12);
    header.writeUInt16LE(DOS_DATE, 14);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(packed.length, 20);
    header.writeUInt32LE(data.length, 24);
    header.writeUInt16LE(nameBytes.length, 28);
    header.writeUInt32LE((0o100644 << 16) >>> 0, 38); // external attributes: a regular 0644 file
    header.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, packed);
    central.push(header, nameBytes);
    offset += local.length + nameBytes.length + packed.length;
  }
  const centralSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...central, end]);
}

/** The build context zip and the bucket key it goes to (`build/worker-<sha256 prefix>.zip`). */
export async function buildContext(root: string): Promise<{ zip: Buffer; key: string; files: number }> {
  const files = await contextFiles(root);
  const zip = await zipFiles(root, files);
  const sha = createHash('sha256').update(zip).digest('hex');
  return { zip, key: `build/worker-${sha.slice(0, 16)}.zip`, files: files.length };
}
