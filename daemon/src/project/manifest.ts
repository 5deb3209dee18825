// The project tree a job renders: relative path → blob. Relative paths are what Blender sees on the
// worker, so they must never escape the job folder.
import { createHash } from 'node:crypto';
import { isAbsolute, normalize, sep, posix } from 'node:path';
import { SkyfarmError } from '../errors.js';
import { SHA256_HEX } from '../store/object-store.js';
import { isPlainRelative } from '../util/plain-paths.js';

/** Files from outside the project root live under this folder of the tree. */
export const EXTERNAL_DIR = '_external';

export interface ManifestEntry {
  sha256: string;
  size: number;
  mode: number;
  /**
   * A small blob stored inside a pack (`packs/<pack>`, at byte `offset`) rather than as
   * `cas/<sha256>`: one request carries many small files (S3 charges and waits per request).
   */
  pack?: string;
  offset?: number;
}

export interface Manifest {
  version: 1;
  /** Path of the .blend to render, relative to the project root. */
  blend: string;
  files: Record<string, ManifestEntry>;
  /**
   * Absolute folders (or files) on the submitting machine → where they are in the tree (`.` is the
   * root). The render stage rewrites paths in Blender that point into them.
   */
  remaps: Record<string, string>;
  /** The project root on the submitting machine. */
  root?: string;
  /** Environment for the render stage whose values are paths in the tree (OCIO). */
  env?: Record<string, string>;
  /** Files the scene names that were not found when it was uploaded (rendered without them). */
  missing?: string[];
}

/** Checks a manifest path is relative, normalised and stays inside the project folder. */
export function assertSafeRelativePath(path: string): string {
  if (sep === '/' && isPlainRelative(path)) return path; // the quick answer for nearly every path
  const asPosix = path.split(sep).join('/');
  const normalised = posix.normalize(asPosix);
  if (
    asPosix.length === 0 ||
    asPosix.includes('\0') ||
    isAbsolute(path) ||
    posix.isAbsolute(asPosix) ||
    /^[A-Za-z]:/.test(asPosix) ||
    normalised === '..' ||
    normalised.startsWith('../') ||
    normalised !== asPosix ||
    asPosix.split('/').some((part) => part === '..' || part === '.' || part === '')
  ) {
    throw new SkyfarmError('UNSAFE_PATH', `path "${path}" escapes the project folder or is not normalised`);
  }
  return normalize(path);
}

/** Checks everything in a manifest that becomes a path in the job folder (a manifest may come from anywhere). */
export function assertSafeManifest(manifest: Manifest): void {
  if (manifest?.version !== 1 || typeof manifest.files !== 'object' || manifest.files === null) {
    throw new SkyfarmError('BAD_ARGUMENT', 'not a skyfarm manifest (version 1)');
  }
  assertSafeRelativePath(manifest.blend);
  if (!(manifest.blend in manifest.files)) {
    throw new SkyfarmError('BAD_ARGUMENT', `the manifest does not contain its .blend (${manifest.blend})`);
  }
  for (const [path, entry] of Object.entries(manifest.files)) {
    assertSafeRelativePath(path);
    if (!SHA256_HEX.test(entry.sha256) || !Number.isSafeInteger(entry.size) || entry.size < 0) {
      throw new SkyfarmError('BAD_ARGUMENT', `manifest entry "${path}" is malformed`);
    }
    if (
      (entry.pack !== undefined || entry.offset !== undefined) &&
      !(
        typeof entry.pack === 'string' &&
        SHA256_HEX.test(entry.pack) &&
        Number.isSafeInteger(entry.offset) &&
        entry.offset! >= 0
      )
    ) {
      throw new SkyfarmError('BAD_ARGUMENT', `manifest entry "${path}" has a malformed pack location`);
    }
  }
  for (const target of [...Object.values(manifest.remaps ?? {}), ...Object.values(manifest.env ?? {})]) {
    if (target !== '.') assertSafeRelativePath(target);
  }
}

/** The object with its keys in code-unit order (itself when they are in order already). */
export function sortedByKey<T>(object: Record<string, T>): Record<string, T> {
  const keys = Object.keys(object);
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1]! < keys[i]!;
  if (sorted) return object;
  const out: Record<string, T> = {};
  for (const key of keys.sort()) out[key] = object[key]!;
  return out;
}

/** The manifest's canonical bytes (sorted file list) and their SHA-256. */
export function serializeManifest(manifest: Manifest): { json: string; sha256: string } {
  const files = sortedByKey(manifest.files);
  const json = JSON.stringify(files === manifest.files ? manifest : { ...manifest, files });
  return { json, sha256: createHash('sha256').update(json).digest('hex') };
}

/** A manifest as an upload assembles it: its files as paths and entries in the project tree's order. */
export interface ManifestDraft {
  paths: string[];
  entries: ManifestEntry[];
  rest: Omit<Manifest, 'files'>;
}

/** The manifest with its files in canonical (sorted) order, and the SHA-256 of its bytes. */
export function canonicalManifest(draft: ManifestDraft): { manifest: Manifest; sha256: string } {
  const files: Manifest['files'] = {};
  for (let i = 0; i < draft.paths.length; i++) files[draft.paths[i]!] = draft.entries[i]!;
  const manifest: Manifest = { ...draft.rest, files: sortedByKey(files) };
  return { manifest, sha256: serializeManifest(manifest).sha256 };
}

export function jobManifestKey(jobId: string): string {
  return `jobs/${jobId}/manifest.json`;
}

export function uploadManifestKey(sha256: string): string {
  return `manifests/${sha256}.json`;
}
