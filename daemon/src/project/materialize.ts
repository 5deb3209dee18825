// Copy stage: lays a job's manifest out as a project folder Blender can open.
import { join } from 'node:path';
import type { IObjectStore } from '../store/object-store.js';
import { assertSafeRelativePath, type Manifest } from './manifest.js';

export async function materializeProject(
  store: IObjectStore,
  manifest: Manifest,
  projectDir: string,
  signal?: AbortSignal,
): Promise<string> {
  for (const [relativePath, entry] of Object.entries(manifest.files)) {
    signal?.throwIfAborted();
    await store.materializeBlob(entry.sha256, join(projectDir, assertSafeRelativePath(relativePath)), signal);
  }
  return join(projectDir, assertSafeRelativePath(manifest.blend));
}
