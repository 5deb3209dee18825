// Turns the dependency list (from Blender via probe.py, or from the add-on's submit message) into the
// files to upload: folders (fluid/ocean caches) expanded, tile tokens left by older clients expanded,
// the OCIO config and its LUTs added when $OCIO is set, duplicates dropped, and missing files listed.
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Dependency } from '../../../protocol/generated/protocol.js';
import { SkyfarmError } from '../errors.js';
import { hashPool, identityOf, type FileIdentity } from './hash-cache.js';
import type { PathStat } from './hash-pool.js';
import { resolveAbsolute, resolveIn } from '../util/plain-paths.js';

export interface CollectedFile {
  /** Absolute, normalised. */
  path: string;
  kind: string;
  /** Stored relative to the .blend/library that uses it (unknown counts as relative: see tree.ts). */
  relative: boolean;
  /** Size, mtime, inode and mode of the bytes (behind a symlink: of its target). */
  identity: FileIdentity;
  /** The path itself is a symlink. */
  symlink: boolean;
}

export interface Collection {
  files: CollectedFile[];
  /** Absolute paths of files the scene names that do not exist. */
  missing: string[];
  /** Environment the render stage needs, as absolute paths on this machine (OCIO). */
  env: Record<string, string>;
}

export interface CollectOptions {
  /** The folder of the user's .blend (`//` in a dependency path). */
  blendDir: string;
  env?: NodeJS.ProcessEnv;
  /** Files one folder dependency may expand to (default 100,000). */
  maxFolderFiles?: number;
}

/** Editor backups, temporary and hidden files are never part of a project. */
export function isIgnoredName(name: string): boolean {
  return (
    name.startsWith('.') ||
    /\.blend\d+$/.test(name) ||
    name.endsWith('~') ||
    /\.(tmp|part|swp|swx)$/i.test(name) ||
    (name.startsWith('#') && name.endsWith('#'))
  );
}

async function walk(folder: string, limit: number, into: string[]): Promise<void> {
  const entries = await readdir(folder, { withFileTypes: true });
  for (const entry of entries) {
    if (isIgnoredName(entry.name)) continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) await walk(path, limit, into);
    else if (entry.isFile() || entry.isSymbolicLink()) into.push(path);
    if (into.length > limit) {
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        `${folder} holds more than ${limit} files; is it really a cache folder?`,
      );
    }
  }
}

/** `<UDIM>` (1001…) and `<UVTILE>` (u1_v1…) name every tile beside them. */
async function expandTiles(path: string): Promise<string[]> {
  const folder = dirname(path);
  const name = basename(path);
  const token = name.includes('<UDIM>') ? '<UDIM>' : '<UVTILE>';
  const [head = '', tail = ''] = name.split(token);
  const digits = token === '<UDIM>' ? '\\d{4}' : 'u\\d+_v\\d+';
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escape(head)}${digits}${escape(tail)}$`);
  try {
    return (await readdir(folder))
      .filter((n) => pattern.test(n))
      .sort()
      .map((n) => join(folder, n));
  } catch {
    return [];
  }
}

/** The OCIO config and the LUT folders its `search_path` names. */
async function ocioFiles(config: string, limit: number): Promise<string[]> {
  const files = [config];
  let searchPath: unknown;
  try {
    const document = parseYaml(await readFile(config, 'utf8'), { uniqueKeys: false }) as Record<
      string,
      unknown
    >;
    searchPath = document?.['search_path'];
  } catch {
    return files; // a config we cannot read is uploaded as it is
  }
  const entries = Array.isArray(searchPath)
    ? searchPath.map(String)
    : typeof searchPath === 'string'
      ? searchPath.split(':')
      : [];
  for (const entry of entries) {
    if (!entry || entry.includes('$')) continue; // environment-dependent paths cannot be resolved here
    const folder = resolve(dirname(config), entry);
    try {
      if ((await stat(folder)).isDirectory()) await walk(folder, limit, files);
    } catch {
      // a search path entry that does not exist: OCIO tolerates it too
    }
  }
  return files;
}

interface Probed {
  identity: FileIdentity;
  symlink: boolean;
  directory: boolean;
  file: boolean;
}

/** lstat, and stat behind a symlink: what the path is, and the identity of the bytes it leads to. */
async function probe(path: string): Promise<Probed | undefined> {
  try {
    let info = await lstat(path, { bigint: true });
    const symlink = info.isSymbolicLink();
    if (symlink) info = await stat(path, { bigint: true });
    return { identity: identityOf(info), symlink, directory: info.isDirectory(), file: info.isFile() };
  } catch {
    return undefined;
  }
}

/** Paths per batch stated on a worker: one message each way per 1,000 files. */
const STAT_BATCH = 1000;

function probed(s: PathStat | null): Probed | undefined {
  if (!s) return undefined;
  return {
    identity: {
      size: Number(s.size),
      mtimeNs: s.mtimeNs,
      inode: `${s.dev}:${s.ino}`,
      mode: Number(s.mode) & 0o777,
    },
    symlink: s.symlink,
    directory: s.kind === 'directory',
    file: s.kind === 'file',
  };
}

/**
 * `probe` of many paths, in batches on the hash workers (in parallel, at most one batch per worker),
 * so the main thread does not pay for a promise per path. The results are in the order of `paths`.
 */
async function probeMany(paths: string[]): Promise<Array<Probed | undefined>> {
  const batches: string[][] = [];
  for (let start = 0; start < paths.length; start += STAT_BATCH)
    batches.push(paths.slice(start, start + STAT_BATCH));
  const results = await Promise.all(batches.map((batch) => hashPool().lstat(batch)));
  const out = new Array<Probed | undefined>(paths.length);
  let i = 0;
  for (const batch of results) for (const s of batch) out[i++] = probed(s ?? null);
  return out;
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping the order of the results. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export async function collectFiles(dependencies: Dependency[], options: CollectOptions): Promise<Collection> {
  const limit = options.maxFolderFiles ?? 100_000;
  // Every path once, in the order first named (that naming decides its kind), with what it is.
  const found: Array<{ path: string; kind: string; relative: boolean; info?: Probed | undefined }> = [];
  const byPath = new Map<string, number>();
  const missing = new Set<string>();
  const add = (path: string, kind: string, relative: boolean, info?: Probed) => {
    const index = byPath.get(path);
    if (index !== undefined) found[index]!.relative ||= relative;
    else {
      byPath.set(path, found.length);
      found.push({ path, kind, relative, info });
    }
  };

  const blendDir = resolve(options.blendDir);
  const wanted = dependencies.map((dependency) => {
    const raw = dependency.path;
    const path = raw.startsWith('//')
      ? resolveIn(blendDir, raw.slice(2))
      : isAbsolute(raw)
        ? resolveAbsolute(raw)
        : resolveIn(blendDir, raw);
    return { path, kind: dependency.kind ?? 'file', relative: dependency.relative ?? true };
  });
  const tiled = (path: string) => path.includes('<UDIM>') || path.includes('<UVTILE>');
  const plain = wanted.filter(({ path }) => !tiled(path));
  const first = await probeMany(plain.map(({ path }) => path));
  const firstOf = new Map<string, Probed | undefined>();
  // Plain files in one pass (no promise per file); tile sets and folders are read from disk.
  const expand: typeof wanted = [];
  let p = 0;
  for (const item of wanted) {
    const info = tiled(item.path) ? undefined : first[p++];
    if (info?.file) add(item.path, item.kind, item.relative, info);
    else {
      expand.push(item);
      firstOf.set(item.path, info);
    }
  }
  // In the order given, so the first naming of a path decides its kind as before.
  const expanded = await mapLimit(expand, 64, async ({ path }): Promise<string[] | undefined> => {
    if (tiled(path)) return expandTiles(path);
    if (!firstOf.get(path)?.directory) return undefined;
    const inside: string[] = [];
    await walk(path, limit, inside);
    return inside;
  });
  expand.forEach(({ path, kind, relative }, i) => {
    const files = expanded[i];
    if (files === undefined || (tiled(path) && files.length === 0)) {
      missing.add(path); // absent, or a device or socket: nothing a render can use
    }
    for (const file of files ?? []) add(file, kind, relative);
  });

  const env: Record<string, string> = {};
  const ocio = options.env?.['OCIO'];
  if (ocio) {
    const config = resolve(ocio);
    if ((await probe(config))?.file) {
      for (const file of await ocioFiles(config, limit)) add(file, 'ocio', false);
      env['OCIO'] = config;
    } else {
      missing.add(config);
    }
  }

  const unprobed = found.filter((item) => item.info === undefined);
  const more = await probeMany(unprobed.map(({ path }) => path));
  unprobed.forEach((item, i) => (item.info = more[i]));
  const files: CollectedFile[] = [];
  for (const { path, kind, relative, info } of found) {
    if (info?.file) {
      files.push({ path, kind, relative, identity: info.identity, symlink: info.symlink });
      if (missing.size > 0) missing.delete(path);
    } else {
      missing.add(path); // vanished while we looked, or a symlink to nothing
    }
  }
  return { files, missing: [...missing].sort(), env };
}
