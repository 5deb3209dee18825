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
import { SkyfarmError } from '../errors.js';
import { zipEntries, type ZipEntry } from '../util/zip.js';

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

/** A zip (deflate) of `files` under `root`. */
export async function zipFiles(root: string, files: string[]): Promise<Buffer> {
  const entries: ZipEntry[] = [];
  for (const name of files) entries.push({ name, data: await readFile(contextSource(root, name)) });
  return zipEntries(entries);
}

/** The build context zip and the bucket key it goes to (`build/worker-<sha256 prefix>.zip`). */
export async function buildContext(root: string): Promise<{ zip: Buffer; key: string; files: number }> {
  const files = await contextFiles(root);
  const zip = await zipFiles(root, files);
  const sha = createHash('sha256').update(zip).digest('hex');
  return { zip, key: `build/worker-${sha.slice(0, 16)}.zip`, files: files.length };
}
