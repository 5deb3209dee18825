// Merging one split frame on the farm (issue #17): the frame's parts on EFS → the sample-weighted
// mean (daemon/src/split/merge.ts) → Blender's finishing (denoiser, compositor, colour management,
// output format, name; daemon/src/split/merge-frame.ts) → the frame in the job's output folder, its
// preview and its frame marker. The child that renders a frame's last part merges it (render.ts:
// in the job's Blender version, with render resources); publish merges any frame still left
// (split-publish.ts), e.g. when that child was stopped mid-merge.
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  efsPaths,
  frameFileName,
  jobKeys,
  type FrameMarker,
  type WorkerJobDocument,
} from '../../daemon/src/batch/layout.js';
import { mergeFrame } from '../../daemon/src/split/merge-frame.js';
import { partToMerge } from '../../daemon/src/split/plan.js';
import type { WorkerContext } from './context.js';

export interface MergeTools {
  blender: string;
  /** The job's .blend on EFS. */
  blendFile: string;
  env: NodeJS.ProcessEnv;
}

/** The files of `frame`'s parts, in part order. */
export function partFiles(ctx: WorkerContext, job: WorkerJobDocument, frame: number): string[] {
  const paths = efsPaths(ctx.config.efsRoot, job.jobId);
  return Array.from({ length: job.split!.parts }, (_, part) =>
    join(paths.parts, String(frame), `${part}.exr`),
  );
}

export function frameOutput(
  ctx: WorkerContext,
  job: WorkerJobDocument,
  frame: number,
): { file: string; path: string } {
  const file = frameFileName(job.filePattern, frame, job.fileExtension);
  return { file, path: join(efsPaths(ctx.config.efsRoot, job.jobId).output, file) };
}

/**
 * Claims the merge of `frame` for array child `child` (an exclusive file beside the parts): two
 * children finishing the frame's last parts at once merge it once. A retried child finds its own claim.
 */
export async function claimMerge(
  ctx: WorkerContext,
  job: WorkerJobDocument,
  frame: number,
  child: number,
): Promise<boolean> {
  const claim = join(efsPaths(ctx.config.efsRoot, job.jobId).parts, String(frame), '.merging');
  try {
    const handle = await open(claim, 'wx');
    await handle.writeFile(String(child));
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return (await readFile(claim, 'utf8').catch(() => '')) === String(child);
  }
}

/** Merges `frame` from its parts; writes its frame marker (done, or failed with the reason). */
export async function mergeSplitFrame(
  ctx: WorkerContext,
  job: WorkerJobDocument,
  frame: number,
  tools: MergeTools,
  chunk: number,
): Promise<boolean> {
  const keys = jobKeys(job.jobId);
  const paths = efsPaths(ctx.config.efsRoot, job.jobId);
  const { file, path: output } = frameOutput(ctx, job, frame);
  const marker = (fields: Pick<FrameMarker, 'state'> & Partial<FrameMarker>): FrameMarker => ({
    frame,
    chunk,
    attempt: ctx.config.attempt,
    at: new Date().toISOString(),
    ...fields,
  });
  try {
    const preview = join(paths.previews, 'merged', `${frame}.png`);
    const result = await mergeFrame({
      blender: tools.blender,
      blendFile: tools.blendFile,
      scene: job.scene,
      frame,
      parts: partFiles(ctx, job, frame).map((file, part) => partToMerge(job.split!, file, part)),
      samples: job.split!.samples,
      merged: join(paths.parts, String(frame), `merged-${process.pid}.exr`),
      output,
      preview,
      env: tools.env,
      signal: ctx.signal,
      onLine: (line) => ctx.log(line),
    });
    let previewKey: string | undefined;
    if (existsSync(preview)) {
      previewKey = keys.preview(frame);
      await ctx.bucket.putFile(previewKey, preview, { contentType: 'image/png' });
    }
    await ctx.bucket.putJson(
      keys.frame(frame),
      marker({ state: 'done', file, ...(previewKey ? { preview: previewKey } : {}) }),
    );
    ctx.log(
      `frame ${frame}: merged ${job.split!.parts} parts (${mergedWhat(result)}) in ` +
        `${(result.averageMs / 1000).toFixed(1)} s` +
        (result.denoised ? `, denoised (${result.denoised})` : '') +
        `, finished in ${(result.finishMs / 1000).toFixed(1)} s`,
    );
    return true;
  } catch (error) {
    if (ctx.signal.aborted) throw error; // stopped: unfinished, not failed
    const message = (error as Error).message;
    ctx.log(`frame ${frame}: ${message}`);
    await ctx.bucket.putJson(keys.frame(frame), marker({ state: 'failed', message }));
    return false;
  }
}

/** What the parts held: their samples, or for bands of rows (split_rules.py) their rows. */
function mergedWhat(result: { samples: number[]; rows?: number[] }): string {
  if (result.rows) return `bands of ${result.rows.join('+')} rows, ${result.samples[0]} samples each`;
  return `${result.samples.join('+')} samples`;
}
