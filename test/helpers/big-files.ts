// Large generated project files, so an upload lasts long enough to be watched (and canceled) in a
// test without throttling or sleeping.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

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
