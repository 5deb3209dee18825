// Large generated project files, so an upload lasts long enough to be watched (and canceled) in a
// test without throttling or sleeping.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeScene } from './scenes.js';

const BLOCK = 8 * 1024 * 1024;

/**
 * Writes one file of `size` bytes at each path: a shared random block behind a per-file header, so
 * every file has its own hash without generating hundreds of MB of randomness.
 */
export async function writeBigFiles(paths: string[], size: number): Promise<void> {
  const block = randomBytes(BLOCK);
  for (const [index, file] of paths.entries()) {
    const header = Buffer.from(`skyfarm test file ${index} ${file}\n`);
    const chunks: Buffer[] = [header];
    for (let written = header.length; written < size; written += block.length) chunks.push(block);
    await writeFile(file, Buffer.concat(chunks).subarray(0, size));
  }
}

/**
 * A scene (makeScene, frames 1-2, `shot.blend` in `project`) whose material uses `textures/oak.png`,
 * the `missing` texture paths (not on disk), and `count` generated files of `fileSize` bytes
 * (`textures/scan_NN.png`): an upload that lasts long enough to watch and cancel.
 */
export async function makeBigUploadScene(
  project: string,
  options: { fileSize: number; count?: number; missing?: string[] },
): Promise<{ blendFile: string; bigFiles: string[] }> {
  const count = options.count ?? 10;
  const big = Array.from({ length: count }, (_, i) => `textures/scan_${String(i).padStart(2, '0')}.png`);
  const blendFile = await makeScene(project, {
    name: 'shot.blend',
    frames: [1, 2],
    textures: [
      { path: 'textures/oak.png' },
      ...(options.missing ?? []).map((file) => ({ path: file, create: false })),
      // Written below, after the scene: makeScene would write 4×4 PNGs there.
      ...big.map((file) => ({ path: file, create: false })),
    ],
  });
  const bigFiles = big.map((file) => path.join(project, file));
  await writeBigFiles(bigFiles, options.fileSize);
  return { blendFile, bigFiles };
}
