// Where frames land and what they are called: what Blender itself says (probe.py output_names, from
// scene.render.frame_path), or --output for the folder.
import { access, mkdir, rm, writeFile, constants } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SkyfarmError } from '../errors.js';
import { assertFilePattern, type ProbeScene } from '../render/blender.js';

export interface SceneOutput {
  /** The folder Blender writes the scene's frames to. */
  dir: string;
  /** Blender's file name for a frame, the frame number as its `#`s (`shot_##_v2.png`, `####.png`). */
  pattern: string;
}

/**
 * The scene's output folder and frame file name as Blender resolves them. `probedBlend` is the file
 * Blender read (the add-on's temporary copy, say); `sourceBlend` the user's: a folder relative to the
 * one is moved to the other. A relative folder without `//` is taken relative to the .blend's folder
 * (Blender would use its own working folder, which means nothing here).
 */
export function sceneOutput(scene: ProbeScene, probedBlend: string, sourceBlend: string): SceneOutput {
  const output = scene.output;
  if (!output.pattern) {
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `scene "${scene.name}": Blender names frame ${scene.frameStart} ${basename(output.framePath)} ` +
        `(output path "${scene.outputPath}"), and skyfarm cannot tell which part is the frame number; ` +
        'put #### in the output file name',
    );
  }
  assertFilePattern(output.pattern);
  let dir = output.dir;
  const probedDir = dirname(resolve(probedBlend));
  const sourceDir = dirname(resolve(sourceBlend));
  if (!isAbsolute(dir)) dir = resolve(sourceDir, dir);
  else if (probedDir !== sourceDir) {
    const inside = relative(probedDir, dir);
    if (inside === '' || (!inside.startsWith('..' + sep) && inside !== '..' && !isAbsolute(inside)))
      dir = join(sourceDir, inside);
  }
  return { dir, pattern: output.pattern };
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
