// publish, split jobs (issue #17): before the frames are uploaded, every frame whose parts are all
// in and that the child of its last part did not merge (split-merge.ts) is merged (daemon/src/split/merge-frame.ts: the parts' sample-weighted mean, then the scene's
// denoiser, colour management, output format and file name, in Blender) into the working folder's
// output, where the ordinary publish finds it, and gets its frame marker. A frame with a failed part
// is marked failed with that part's reason; a frame with parts still missing is left missing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  efsPaths,
  jobKeys,
  type FrameMarker,
  type PartMarker,
  type WorkerJobDocument,
} from '../../daemon/src/batch/layout.js';
import { findBlender } from '../../daemon/src/render/blender.js';
import type { Manifest } from '../../daemon/src/project/manifest.js';
import type { WorkerContext } from './context.js';
import { readMarkers } from './publish.js';
import { frameOutput, mergeSplitFrame, partFiles } from './split-merge.js';

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

  const frameMarkers = await readMarkers(ctx, job.jobId);
  for (const frame of job.frames) {
    const { path: output } = frameOutput(ctx, job, frame);
    if (existsSync(output)) continue; // merged by the child of its last part, or an earlier attempt
    if (frameMarkers.get(frame)?.state === 'failed') {
      outcome.failed.push(frame); // its merge failed already, with the reason in its marker
      continue;
    }
    const parts = partFiles(ctx, job, frame);
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
    if (!project || !existsSync(project)) {
      const message = `the scene ${project ?? '(no manifest)'} is not on EFS`;
      await ctx.bucket.putJson(keys.frame(frame), frameMarker(frame, { state: 'failed', message }));
      outcome.failed.push(frame);
      continue;
    }
    blender ??= (await findBlender(ctx.env)).path;
    const merged = await mergeSplitFrame(ctx, job, frame, { blender, blendFile: project, env }, 0);
    (merged ? outcome.merged : outcome.failed).push(frame);
  }
  return outcome;
}
