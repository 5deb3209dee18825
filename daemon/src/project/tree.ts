// Where each file goes in the job's project tree.
//
// The root is the deepest folder that holds the .blend's folder and every file the scene names with a
// relative (`//…`) path, so those paths resolve on the worker exactly as they do here
// (`//../pbr_node/lib.blend` from `scenes/shot.blend` keeps working). Files named by absolute paths
// outside the root are mirrored under `_external/<their absolute path>`, which keeps sequences, UDIM
// sets and an external library's own relative paths together; the render stage rewrites those paths
// (the `remaps`: source folder → folder in the tree). The root itself is remapped too, for absolute
// paths that point into it. Symlinks may not lead out of the root.
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, parse, relative, resolve, sep } from 'node:path';
import { SkyfarmError } from '../errors.js';
import type { CollectedFile } from './collect.js';
import type { FileIdentity } from './hash-cache.js';
import { assertSafeRelativePath, EXTERNAL_DIR } from './manifest.js';
import { resolveAbsolute } from '../util/plain-paths.js';

export interface TreeEntry {
  /** Absolute path of the bytes to upload. */
  source: string;
  /** Path in the project tree, `/`-separated. */
  path: string;
  size: number;
  mode: number;
  kind: string;
  /** The stat the collection took (dependencies only; the .blend is stated when it is hashed). */
  identity?: FileIdentity;
}

export interface ProjectTree {
  /** The project root on this machine. */
  root: string;
  /** The .blend's path in the tree. */
  blend: string;
  /** The .blend first, then every dependency. */
  entries: TreeEntry[];
  /** Absolute folder on this machine → folder in the tree (`.` is the root). */
  remaps: Record<string, string>;
  /** Environment for the render stage, paths in the tree. */
  env: Record<string, string>;
}

export interface TreeRequest {
  /** The file whose bytes are the scene (a temporary copy when submitted from Blender). */
  blendFile: string;
  /** Where the scene lives for the user. */
  sourceBlendFile: string;
  /** A folder the root must include (the add-on's project folder); default the .blend's folder. */
  rootHint?: string;
  /** Each path once (as collectFiles gives them). */
  files: CollectedFile[];
  env?: Record<string, string>;
}

export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel));
}

/**
 * `path` relative to `root` when it is inside it, else undefined. Both must be normalised absolute
 * paths (resolved, no `..`): then a prefix test answers most calls without path.relative, which
 * resolves both paths again (three times per file of a 100,000-file project adds up).
 */
function insideRelative(root: string, path: string): string | undefined {
  const prefix = root.endsWith(sep) ? root : root + sep;
  if (path.startsWith(prefix)) return path.slice(prefix.length);
  if (path === root) return '';
  return isInside(root, path) ? relative(root, path) : undefined;
}

export function commonAncestor(paths: string[]): string {
  let common = resolve(paths[0] ?? sep);
  for (let i = 1; i < paths.length; i++) {
    const absolute = resolveAbsolute(paths[i]!);
    while (insideRelative(common, absolute) === undefined) {
      const parent = dirname(common);
      if (parent === common) break;
      common = parent;
    }
  }
  return common;
}

function toPosix(path: string): string {
  return sep === '/' ? path : path.split(sep).join('/');
}

/** `/mnt/nas/tex/a.png` → `_external/mnt/nas/tex/a.png` (a drive letter becomes a folder: `C/…`). */
export function externalPath(absolute: string): string {
  const { root } = parse(absolute);
  const drive = root.replace(/[:\\/]/g, '');
  const rest = absolute.slice(root.length);
  return toPosix([EXTERNAL_DIR, ...(drive ? [drive] : []), rest].join(sep));
}

export async function planTree(request: TreeRequest): Promise<ProjectTree> {
  const source = resolve(request.sourceBlendFile);
  const blendDir = dirname(source);
  const anchors = [request.rootHint ? resolve(request.rootHint) : blendDir, blendDir];
  for (const file of request.files) if (file.relative) anchors.push(file.path);
  const root = commonAncestor(anchors);
  const realRoot = await realpath(root);

  const entries: TreeEntry[] = [];
  const taken = new Map<string, string>();
  const remaps: Record<string, string> = { [root]: '.' };
  // Distinct files inside the root have distinct tree paths (files come once each, from
  // collectFiles); only `_external/` can be claimed twice (a folder of that name inside the root).
  const externalPrefix = `${EXTERNAL_DIR}/`;
  const place = (entry: TreeEntry, inside: boolean) => {
    if (inside && !entry.path.startsWith(externalPrefix)) {
      entries.push(entry);
      return;
    }
    const other = taken.get(entry.path);
    if (other !== undefined) {
      if (other === entry.source) return;
      throw new SkyfarmError(
        'UNSAFE_PATH',
        `${entry.source} and ${other} would both be "${entry.path}" in the project tree`,
      );
    }
    taken.set(entry.path, entry.source);
    entries.push(entry);
  };

  const blendPath = toPosix(relative(root, source));
  assertSafeRelativePath(blendPath);
  const blendInfo = await stat(request.blendFile);
  place(
    {
      source: resolve(request.blendFile),
      path: blendPath,
      size: blendInfo.size,
      mode: 0o644,
      kind: 'blend',
    },
    false,
  );

  // Symlinks inside the tree: the real path of each folder once, of a file only when it is a link.
  // Each folder's real path is awaited once (a file of a folder already resolved costs no await).
  const realFolders = new Map<string, string>();
  const realFolder = async (folder: string) => {
    const real = realFolders.get(folder) ?? (await realpath(folder));
    realFolders.set(folder, real);
    return real;
  };
  for (const file of request.files) {
    if (file.path === source) continue; // the scene names itself (e.g. a self-referencing library)
    let path: string;
    const inside = insideRelative(root, file.path);
    if (inside !== undefined) {
      let real: string;
      if (file.symlink) real = await realpath(file.path);
      else {
        const folder = dirname(file.path);
        const realDir = realFolders.get(folder) ?? (await realFolder(folder));
        // What join gives for a real (normalised) folder and a file name, without normalising again.
        real = (realDir.endsWith(sep) ? realDir : realDir + sep) + basename(file.path);
      }
      if (insideRelative(realRoot, real) === undefined) {
        throw new SkyfarmError(
          'UNSAFE_PATH',
          `${file.path} is a symlink (or inside one) that leads out of the project folder ${root}, to ${real}`,
        );
      }
      path = toPosix(inside);
    } else {
      path = externalPath(file.path);
      remaps[dirname(file.path)] = toPosix(dirname(path));
    }
    assertSafeRelativePath(path);
    place(
      {
        source: file.path,
        path,
        size: file.identity.size,
        mode: file.identity.mode,
        kind: file.kind,
        identity: file.identity,
      },
      inside !== undefined,
    );
  }

  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.env ?? {})) {
    const entry = entries.find((e) => e.source === value);
    if (entry) env[name] = entry.path;
  }
  return { root, blend: blendPath, entries, remaps, env };
}
