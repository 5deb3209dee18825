// Where frames land: the scene's own output path resolved as Blender does, or --output.
import { access, mkdir, rm, writeFile, constants } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SkyfarmError } from '../errors.js';

/** Splits Blender's output path (`//render/shot_####`) into a folder and a file pattern. */
export function resolveSceneOutput(rawPath: string, blendFile: string): { dir: string; pattern: string } {
  let path = rawPath || '//';
  if (path.startsWith('//')) path = join(dirname(blendFile), path.slice(2));
  else if (!isAbsolute(path)) path = resolve(dirname(blendFile), path);
  if (path.endsWith('/') || path.endsWith('\\'))
    return { dir: path.replace(/[\\/]+$/, '') || '/', pattern: '' };
  return { dir: dirname(path), pattern: basename(path) };
}

/** Creates the folder if needed and proves it can be written; removes what it created on failure. */
export async function ensureWritableDir(dir: string): Promise<void> {
  let firstCreated: string | undefined;
  try {
    firstCreated = await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
    const probe = join(dir, `.skyfarm-write-test-${randomBytes(4).toString('hex')}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (error) {
    if (firstCreated) await rm(firstCreated, { recursive: true, force: true }).catch(() => undefined);
    throw new SkyfarmError(
      'OUTPUT_NOT_WRITABLE',
      `cannot write to the output folder ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}
