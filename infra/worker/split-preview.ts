// render, split jobs (issue #17): once a part is finished, its child merges the parts of that frame
// present so far (daemon/src/split/merge-frame.ts, finished by Blender as the final merge is) into a
// small PNG, progress/previews/<frame>-part<k>.png, and names it in its part marker: Blender's
// last-frame preview becomes the merge so far while the other parts render. A preview is a nicety:
// when it cannot be made the part is still done.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { efsPaths, jobKeys, type WorkerJobDocument } from '../../daemon/src/batch/layout.js';
import { mergeFrame } from '../../daemon/src/split/merge-frame.js';
import { partToMerge } from '../../daemon/src/split/plan.js';
import type { WorkerContext } from './context.js';

export interface SoFarPreview {
  key: string;
  /** Parts merged into it. */
  parts: number;
}

export async function previewSoFar(
  ctx: WorkerContext,
  job: WorkerJobDocument,
  options: {
    frame: number;
    part: number;
    child: number;
    blender: string;
    blendFile: string;
    env: NodeJS.ProcessEnv;
  },
): Promise<SoFarPreview | null> {
  const paths = efsPaths(ctx.config.efsRoot, job.jobId);
  const partsDir = join(paths.parts, String(options.frame));
  const parts = (await readdir(partsDir).catch(() => [] as string[]))
    .filter((name) => /^\d+\.exr$/.test(name))
    .map((name) => partToMerge(job.split!, join(partsDir, name), Number.parseInt(name, 10)));
  if (parts.length === 0) return null;
  const dir = join(paths.previews, 'so-far', String(options.child));
  const preview = join(dir, `${options.frame}.png`);
  try {
    await mergeFrame({
      blender: options.blender,
      blendFile: options.blendFile,
      scene: job.scene,
      frame: options.frame,
      parts,
      samples: job.split!.samples,
      merged: join(dir, `${options.frame}.exr`),
      output: join(dir, `${options.frame}-frame`),
      preview,
      env: options.env,
      signal: ctx.signal,
      onLine: (line) => ctx.log(line),
    });
    const key = jobKeys(job.jobId).partPreview(options.frame, options.part);
    await ctx.bucket.putFile(key, preview, { contentType: 'image/png' });
    ctx.log(`render: frame ${options.frame}: preview of the ${parts.length} parts merged so far`);
    return { key, parts: parts.length };
  } catch (error) {
    ctx.log(`render: frame ${options.frame}: no preview of the merge so far: ${(error as Error).message}`);
    return null;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
