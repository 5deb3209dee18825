// Copy stage: lays a job's manifest out as a project folder Blender can open. Every path is checked
// before anything is written (a manifest may come from anywhere), and nothing is written through a
// symlink: the folder is new and only this code creates entries in it.
import { setMaxListeners } from 'node:events';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SkyfarmError } from '../errors.js';
import type { IObjectStore } from '../store/object-store.js';
import { Semaphore } from '../util/semaphore.js';
import { assertSafeManifest, assertSafeRelativePath, type Manifest } from './manifest.js';

export interface MaterializeOptions {
  signal?: AbortSignal;
  /** Blobs fetched at once (default 8). */
  concurrency?: number;
}

/** Where the manifest's remaps point inside a materialised project folder (for the render stage). */
export function remapsInto(manifest: Manifest, projectDir: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(manifest.remaps ?? {}).map(([from, to]) => [
      from,
      to === '.' ? projectDir : join(projectDir, to),
    ]),
  );
}

/** The manifest's render environment (OCIO) as absolute paths inside a materialised project folder. */
export function envInto(manifest: Manifest, projectDir: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(manifest.env ?? {}).map(([name, to]) => [name, join(projectDir, to)]),
  );
}

export async function materializeProject(
  store: IObjectStore,
  manifest: Manifest,
  projectDir: string,
  signalOrOptions?: AbortSignal | MaterializeOptions,
): Promise<string> {
  const options: MaterializeOptions =
    signalOrOptions instanceof AbortSignal ? { signal: signalOrOptions } : (signalOrOptions ?? {});
  const signal = options.signal;
  assertSafeManifest(manifest);
  await mkdir(projectDir, { recursive: true });
  const rootInfo = await lstat(projectDir);
  if (!rootInfo.isDirectory()) throw new SkyfarmError('UNSAFE_PATH', `${projectDir} is not a folder`);
  const slots = new Semaphore(options.concurrency ?? 8);
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const outcomes = await Promise.allSettled(
    Object.entries(manifest.files).map(async ([relativePath, entry]) => {
      const release = await slots.acquire(controller.signal);
      try {
        const dest = join(projectDir, assertSafeRelativePath(relativePath));
        if (entry.pack !== undefined) {
          if (!store.materializePacked) {
            throw new SkyfarmError('BAD_ARGUMENT', `this store cannot read packed blobs (${relativePath})`);
          }
          await store.materializePacked(
            { sha256: entry.sha256, size: entry.size, pack: entry.pack, offset: entry.offset ?? 0 },
            dest,
            controller.signal,
          );
        } else {
          await store.materializeBlob(entry.sha256, dest, controller.signal);
        }
      } catch (error) {
        if (!controller.signal.aborted) controller.abort(error);
        throw error;
      } finally {
        release();
      }
    }),
  );
  signal?.removeEventListener('abort', onAbort);
  signal?.throwIfAborted();
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw controller.signal.reason ?? failure.reason;
  return join(projectDir, assertSafeRelativePath(manifest.blend));
}
