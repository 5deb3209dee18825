// The project tree a job renders: relative path → blob. Relative paths are what Blender sees on the
// worker, so they must never escape the job folder.
import { isAbsolute, normalize, sep, posix } from 'node:path';
import { SkyfarmError } from '../errors.js';

export interface ManifestEntry {
  sha256: string;
  size: number;
  mode: number;
}

export interface Manifest {
  version: 1;
  /** Path of the .blend to render, relative to the project root. */
  blend: string;
  files: Record<string, ManifestEntry>;
  /** Absolute paths on the submitting machine that were mapped into the tree → their relative path. */
  remaps: Record<string, string>;
}

/** Checks a manifest path is relative, normalised and stays inside the project folder. */
export function assertSafeRelativePath(path: string): string {
  const asPosix = path.split(sep).join('/');
  const normalised = posix.normalize(asPosix);
  if (
    asPosix.length === 0 ||
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
