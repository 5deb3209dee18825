// publish, split jobs (issue #17): before the frames are uploaded, every frame whose parts are all
// in is merged (daemon/src/split/merge-frame.ts: the parts' sample-weighted mean, then the scene's
// denoiser, colour management, output format and file name, in Blender) into the working folder's
// output, where the ordinary publish finds it, and gets its frame marker. A frame with a failed part
// is marked failed with that part's reason; a frame with parts still missing is left missing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  efsPaths,
  frameFileName,
  jobKeys,
  type FrameMarker,
  type PartMarker,
  type WorkerJobDocument,
} from '../../daemon/src/batch/layout.js';
import { findBlender } from '../../daemon/src/render/blender.js';
import { mergeFrame } from '../../daemon/src/split/merge-frame.js';
import type { Manifest } from '../../daemon/src/project/manifest.js';
import type { WorkerContext } from './context.js';

async function readPartMarkers(ctx: WorkerContext, jobId: string): Promise<Map<number, PartMarker[]>> {
  const keys = jobKeys(jobId);
  const listed = (await ctx.bucket.list(keys.partsPrefix)).filter((o) => o.key.endsWith('.json'));
  const byFrame = new Map<number, PartMarker[]>();
  for (const object of listed) {
    const marker = await ctx.bucket.getJson<PartMarker>(object.key);
    if (!marker) continue;
    const list = byFrame.get(marker.frame) ?? [];
    list.push(marker);
    byFrame.set(marker.frame, list);
  }
  return byFrame;
}

export interface SplitMergeOutcome {
  merged: number[];
  failed: number[];
  incomplete: number[];
}

export async function mergeSplitFrames(
  ctx: WorkerContext,
  job: WorkerJobDocument,
): Promise<SplitMergeOutcome> {
  const outcome: SplitMergeOutcome = { merged: [], failed: [], incomplete: [] };
  const split = job.split;
  if (!split) return outcome;
  const keys = jobKeys(job.jobId);
  const paths = efsPaths(ctx.config.efsRoot, job.jobId);
  const markers = await readPartMarkers(ctx, job.jobId);
  const manifest = await ctx.bucket.getJson<Manifest>(job.manifestKey);
  const project = manifest ? join(paths.project, ...manifest.blend.split('/')) : null;
  let blender: string | undefined;
  const treeEnv = (manifest as { env?: Record<string, string> } | null)?.env ?? {};
  const env = {
    ...ctx.env,
    ...Object.fromEntries(Object.entries(treeEnv).map(([k, v]) => [k, join(paths.project, ...v.split('/'))])),
  };
  const frameMarker = (
    frame: number,
    fields: Pick<FrameMarker, 'state'> & Partial<FrameMarker>,
  ): FrameMarker => ({
    frame,
    chunk: 0,
    attempt: ctx.config.attempt,
    at: new Date().toISOString(),
    ...fields,
  });

  for (const frame of job.frames) {
    const file = frameFileName(job.filePattern, frame, job.fileExtension);
    const output = join(paths.output, file);
    if (existsSync(output)) continue; // merged by an earlier attempt of this stage
    const parts = Array.from({ length: split.parts }, (_, part) =>
      join(paths.parts, String(frame), `${part}.exr`),
    );
    const present = parts.filter((part) => existsSync(part)).length;
    if (present < split.parts) {
      const failed = (markers.get(frame) ?? []).filter(
        (m) => m.state === 'failed' && !existsSync(parts[m.part]!),
      );
      if (failed[0]) {
        const message = `part ${failed[0].part + 1} of ${split.parts} failed: ${failed[0].message ?? 'failed'}`;
        await ctx.bucket.putJson(keys.frame(frame), frameMarker(frame, { state: 'failed', message }));
        outcome.failed.push(frame);
      } else outcome.incomplete.push(frame);
      ctx.log(`publish: frame ${frame}: ${present} of ${split.parts} parts, not merged`);
      continue;
    }
    try {
      if (!project || !existsSync(project))
        throw new Error(`the scene ${project ?? '(no manifest)'} is not on EFS`);
      blender ??= (await findBlender(ctx.env)).path;
      const preview = join(paths.previews, 'merged', `${frame}.png`);
      const result = await mergeFrame({
        blender,
        blendFile: project,
        scene: job.scene,
        frame,
        parts,
        merged: join(paths.parts, String(frame), 'merged.exr'),
        output,
        preview,
        env,
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
        frameMarker(frame, { state: 'done', file, ...(previewKey ? { preview: previewKey } : {}) }),
      );
      ctx.log(
        `publish: frame ${frame}: merged ${split.parts} parts (${result.samples.join('+')} samples) in ` +
          `${(result.averageMs / 1000).toFixed(1)} s` +
          (result.denoised ? `, denoised (${result.denoised})` : '') +
          `, finished in ${(result.finishMs / 1000).toFixed(1)} s`,
      );
      outcome.merged.push(frame);
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`publish: ${message}`);
      await ctx.bucket.putJson(keys.frame(frame), frameMarker(frame, { state: 'failed', message }));
      outcome.failed.push(frame);
    }
  }
  return outcome;
}
