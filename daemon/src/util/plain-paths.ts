// Quick answers for paths that are already normalised, which is nearly every path of a project:
// `path.resolve` and `path.normalize` rebuild each string, and at 100,000 files per submit that adds
// up. Anything not plainly normalised goes the usual way.
import { resolve, sep } from 'node:path';

/**
 * A `/`-separated relative path that is plainly normalised: no empty, `.` or `..` segment, no
 * backslash, NUL or colon (a drive letter). Such a path is its own `posix.normalize`.
 */
export function isPlainRelative(path: string): boolean {
  return (
    path.length > 0 &&
    path.charCodeAt(0) !== 47 && // '/'
    !path.endsWith('/') &&
    !path.includes('//') &&
    !path.includes('\\') &&
    !path.includes('\0') &&
    !path.includes(':') &&
    !path.startsWith('./') &&
    !path.startsWith('../') &&
    !path.includes('/./') &&
    !path.includes('/../') &&
    !path.endsWith('/.') &&
    !path.endsWith('/..') &&
    path !== '.' &&
    path !== '..'
  );
}

/** `path.resolve(path)` for an absolute path, without rebuilding one that is normalised already. */
export function resolveAbsolute(path: string): string {
  return sep === '/' && path.length > 1 && path.charCodeAt(0) === 47 && isPlainRelative(path.slice(1))
    ? path
    : resolve(path);
}

/** `path.resolve(folder, relative)` where `folder` is absolute and normalised. */
export function resolveIn(folder: string, relative: string): string {
  if (sep === '/' && isPlainRelative(relative))
    return folder === '/' ? `/${relative}` : `${folder}/${relative}`;
  return resolve(folder, relative);
}
