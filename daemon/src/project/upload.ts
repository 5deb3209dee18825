// Upload stage: puts the .blend and every file it depends on into the object store under their
// hashes, then writes the manifest (and job.json, by the caller) last, so a job never references a
// blob that is not there.
import { lstat, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { Dependency, EventMap } from '../../../protocol/generated/protocol.js';
import { SkyfarmError } from '../errors.js';
import type { IObjectStore } from '../store/object-store.js';
import { sha256File } from './hash.js';
import { assertSafeRelativePath, type Manifest } from './manifest.js';

export interface UploadRequest {
  jobId: string | null;
  /** The file whose bytes are uploaded as the scene. */
  blendFile: string;
  /** Where the scene lives for the user; its relative paths hang off this location. */
  sourceBlendFile: string;
  projectRoot: string;
  dependencies: Dependency[];
  strict: boolean;
  store: IObjectStore;
  signal?: AbortSignal;
  onProgress?: (progress: EventMap['upload.progress']) => void;
}

export interface UploadResult {
  files: number;
  missing: string[];
  bytesTotal: number;
  bytesUploaded: number;
  manifest: Manifest;
}

interface PlannedFile {
  source: string;
  relativePath: string;
  size: number;
  mode: number;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel);
}

/** Decides where each file goes in the project tree; files outside the root go under `_external/`. */
async function planFiles(request: UploadRequest): Promise<{ planned: PlannedFile[]; missing: string[]; remaps: Record<string, string> }> {
  const root = resolve(request.projectRoot);
  const planned: PlannedFile[] = [];
  const missing: string[] = [];
  const remaps: Record<string, string> = {};
  const taken = new Set<string>();
  const blendRel = isInside(root, resolve(request.sourceBlendFile))
    ? relative(root, resolve(request.sourceBlendFile))
    : basename(request.sourceBlendFile);
  const blendStat = await lstat(request.blendFile);
  planned.push({ source: request.blendFile, relativePath: assertSafeRelativePath(blendRel), size: blendStat.size, mode: 0o644 });
  taken.add(blendRel);

  let externalIndex = 0;
  for (const dependency of request.dependencies) {
    const absolute = resolve(dirname(request.sourceBlendFile), dependency.path);
    let stats;
    try {
      stats = await lstat(absolute);
      if (stats.isSymbolicLink()) {
        const target = await realpath(absolute);
        if (!isInside(root, target)) {
          throw new SkyfarmError('UNSAFE_PATH', `${absolute} is a symlink pointing outside the project (${target})`);
        }
        stats = await lstat(target);
      }
    } catch (error) {
      if (error instanceof SkyfarmError) throw error;
      missing.push(absolute);
      continue;
    }
    if (!stats.isFile()) {
      missing.push(absolute);
      continue;
    }
    let relativePath: string;
    if (isInside(root, absolute)) {
      relativePath = relative(root, absolute);
    } else {
      externalIndex += 1;
      relativePath = ['_external', String(externalIndex), basename(absolute)].join(sep);
      remaps[absolute] = relativePath;
    }
    if (taken.has(relativePath)) continue;
    taken.add(relativePath);
    planned.push({ source: absolute, relativePath: assertSafeRelativePath(relativePath), size: stats.size, mode: stats.mode & 0o777 });
  }
  return { planned, missing, remaps };
}

export async function uploadProject(request: UploadRequest): Promise<UploadResult> {
  const { planned, missing, remaps } = await planFiles(request);
  if (request.strict && missing.length > 0) {
    throw new SkyfarmError('MISSING_DEPENDENCIES', `missing files (--strict): ${missing.join(', ')}`);
  }
  const bytesTotal = planned.reduce((sum, file) => sum + file.size, 0);
  let bytesDone = 0;
  let bytesUploaded = 0;
  const started = Date.now();
  const files: Manifest['files'] = {};
  for (const [index, file] of planned.entries()) {
    request.signal?.throwIfAborted();
    const sha256 = await sha256File(file.source, request.signal);
    if (!(await request.store.hasBlob(sha256))) {
      await request.store.putBlobFromFile(sha256, file.source, request.signal);
      bytesUploaded += file.size;
    }
    files[file.relativePath.split(sep).join('/')] = { sha256, size: file.size, mode: file.mode };
    bytesDone += file.size;
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? bytesDone / elapsed : 0;
    request.onProgress?.({
      jobId: request.jobId,
      filesDone: index + 1,
      filesTotal: planned.length,
      bytesDone,
      bytesTotal,
      bytesPerSecond: rate,
      etaSeconds: rate > 0 ? (bytesTotal - bytesDone) / rate : null,
    });
  }
  const manifest: Manifest = {
    version: 1,
    blend: planned[0]!.relativePath.split(sep).join('/'),
    files,
    remaps,
  };
  return { files: planned.length, missing, bytesTotal, bytesUploaded, manifest };
}
