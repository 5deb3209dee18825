import { copyFile, mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Moves a file so that `dest` either does not exist or is complete (temp name + rename, even across devices). */
export async function moveFileAtomic(source: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  try {
    await rename(source, dest);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  const temp = join(dirname(dest), `${partialPrefix(dest)}${randomBytes(4).toString('hex')}.part`);
  try {
    await copyFile(source, temp);
    await rename(temp, dest);
  } finally {
    await rm(temp, { force: true });
  }
  await unlink(source);
}

function partialPrefix(dest: string): string {
  return `.${basename(dest)}.`;
}

/** Removes the temporary files an interrupted `moveFileAtomic(…, dest)` (a killed process) left beside `dest`. */
export async function removePartialMoves(dest: string): Promise<void> {
  const prefix = partialPrefix(dest);
  let names: string[];
  try {
    names = await readdir(dirname(dest));
  } catch {
    return;
  }
  const stale = names.filter(
    (name) => name.startsWith(prefix) && /^[0-9a-f]{8}\.part$/.test(name.slice(prefix.length)),
  );
  await Promise.all(stale.map((name) => rm(join(dirname(dest), name), { force: true })));
}
