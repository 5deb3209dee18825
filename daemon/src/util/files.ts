import { copyFile, mkdir, rename, rm, unlink } from 'node:fs/promises';
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
  const temp = join(dirname(dest), `.${basename(dest)}.${randomBytes(4).toString('hex')}.part`);
  try {
    await copyFile(source, temp);
    await rename(temp, dest);
  } finally {
    await rm(temp, { force: true });
  }
  await unlink(source);
}
