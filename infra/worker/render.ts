// render: renders this child's chunk of frames with overwrite off (a retried chunk skips the frames a
// previous attempt finished), with the job's path remaps and, for GPU jobs, OptiX else CUDA (never a
// silent CPU fallback). Each finished or failed frame leaves a marker, and each finished frame a small
// preview, under jobs/<jobId>/progress/ for the daemon to follow; while a frame renders, the chunk's
// samples and rate go to progress/live/<chunk>.json at most every few seconds. Exits non-zero when a
// frame failed.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  efsPaths,
  jobKeys,
  renderChild,
  renderChildren,
  type ChunkLive,
  type FrameMarker,
  type PartMarker,
  type RenderChild,
  type WorkerJobDocument,
} from '../../daemon/src/batch/layout.js';
import { partSamples } from '../../daemon/src/split/plan.js';
import { previewSoFar, type SoFarPreview } from './split-preview.js';
import { claimMerge, frameOutput, mergeSplitFrame, partFiles } from './split-merge.js';
import { findBlender, renderChunk } from '../../daemon/src/render/blender.js';
import { FrameTracker } from '../../daemon/src/jobs/estimate.js';
import { loadJob } from './copy.js';
import type { WorkerContext } from './context.js';

export interface RenderOutcome {
  chunk: number;
  frames: number[];
  done: number[];
  skipped: number[];
  failed: Array<{ frame: number; message: string }>;
}

/** A chunk's live report is written at most this often (the first samples of a frame at once). */
export const LIVE_INTERVAL_MS = 5_000;

/**
 * Writes a chunk's live report: at most every `intervalMs` (or at once when urgent), one write at a
 * time, the newest state winning. A failed write is logged (once in a row) and tried again after the
 * interval; it never fails the chunk: progress is a nicety, frames are not.
 */
export class LiveReporter {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private lastWrite = -Infinity;
  private pending = false;
  private urgent = false;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly write: () => Promise<void>,
    private readonly log: (line: string) => void,
    private readonly intervalMs = LIVE_INTERVAL_MS,
  ) {}

  changed(urgent: boolean): void {
    if (this.stopped) return;
    this.pending = true;
    this.urgent ||= urgent;
    if (this.writing) return; // the write in flight looks again when it ends
    const wait = this.urgent ? 0 : Math.max(0, this.lastWrite + this.intervalMs - performance.now());
    if (wait === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.flush();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, wait);
    }
  }

  private flush(): void {
    if (!this.pending || this.stopped) return;
    this.pending = false;
    this.urgent = false;
    this.lastWrite = performance.now();
    this.writing = this.write()
      .then(() => {
        this.failures = 0;
      })
      .catch((error: unknown) => {
        // Tried again after the interval (Blender may not report again for a while).
        if (this.failures++ === 0)
          this.log(`render: live progress upload failed (retrying): ${(error as Error).message}`);
        this.pending = true;
      })
      .finally(() => {
        this.writing = undefined;
        if (this.pending) this.changed(false);
      });
  }

  /** No more writes; resolves when the one in flight has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.writing;
  }
}

/** The chunk of frames (and, in a split job, the part of them) this array child renders. */
export function chunkForIndex(job: WorkerJobDocument, arrayIndex: number | null): RenderChild {
  const children = renderChildren(job);
  const index = arrayIndex ?? 0;
  if (arrayIndex === null && children > 1) {
    throw new Error(`the job has ${children} chunks but AWS_BATCH_JOB_ARRAY_INDEX is not set`);
  }
  const child = renderChild(job, index);
  if (!child) throw new Error(`chunk ${index} does not exist: the job has ${children} chunks`);
  return child;
}

export async function renderStage(ctx: WorkerContext): Promise<RenderOutcome> {
  const { job, manifest } = await loadJob(ctx);
  const { index, frames, part } = chunkForIndex(job, ctx.config.arrayIndex);
  const keys = jobKeys(job.jobId);
  const paths = efsPaths(ctx.config.efsRoot, job.jobId);
  const outcome: RenderOutcome = { chunk: index, frames, done: [], skipped: [], failed: [] };
  const attempt = ctx.config.attempt;

  // Uploads run in order beside Blender; a marker never overtakes its preview.
  let uploads: Promise<void> = Promise.resolve();
  let uploadError: unknown = null;
  const enqueue = (task: () => Promise<void>) => {
    uploads = uploads.then(task).catch((error: unknown) => {
      uploadError ??= error;
      ctx.log(`render: progress upload failed: ${(error as Error).message}`);
    });
  };
  const marker = (frame: number, fields: Partial<FrameMarker> & Pick<FrameMarker, 'state'>): FrameMarker => ({
    frame,
    chunk: index,
    attempt,
    at: new Date().toISOString(),
    ...fields,
  });
  const previewDir = join(paths.previews, String(index));
  // A split job's part: its marker under progress/parts/ (publish marks the frame once merged).
  const partMarker = (
    frame: number,
    fields: Pick<PartMarker, 'state'> & Partial<PartMarker>,
  ): PartMarker => ({
    frame,
    part: part!,
    child: index,
    attempt,
    at: new Date().toISOString(),
    ...fields,
  });
  const partSeconds = new Map<number, number>();
  const partDone = (frame: number, seconds: number | undefined, preview?: SoFarPreview) => {
    if (seconds !== undefined) partSeconds.set(frame, seconds);
    const took = partSeconds.get(frame);
    enqueue(() =>
      ctx.bucket.putJson(
        keys.part(frame, part!),
        partMarker(frame, {
          state: 'done',
          samples: partSamples(job.split!.samples, job.split!.parts, part!),
          ...(took !== undefined ? { seconds: took } : {}),
          ...(preview ? { preview: preview.key, mergedParts: preview.parts } : {}),
        }),
      ),
    );
  };
  const finished = (frame: number, path: string, seconds: number | undefined) =>
    part !== null
      ? partDone(frame, seconds)
      : enqueue(async () => {
          const preview = join(previewDir, `${frame}.png`);
          let previewKey: string | undefined;
          if (existsSync(preview)) {
            previewKey = keys.preview(frame);
            await ctx.bucket.putFile(previewKey, preview, { contentType: 'image/png' });
          }
          await ctx.bucket.putJson(
            keys.frame(frame),
            marker(frame, {
              state: 'done',
              file: basename(path),
              ...(seconds !== undefined ? { seconds } : {}),
              ...(previewKey ? { preview: previewKey } : {}),
            }),
          );
        });
  // A terminated attempt (cancel, spot interruption) leaves no failure markers: its frames are not
  // failed, they are unfinished, and a retry renders them.
  const lost = (frame: number, message: string) => {
    if (ctx.signal.aborted) return;
    enqueue(() =>
      part !== null
        ? ctx.bucket.putJson(keys.part(frame, part), partMarker(frame, { state: 'failed', message }))
        : ctx.bucket.putJson(keys.frame(frame), marker(frame, { state: 'failed', message })),
    );
  };

  // The frame Blender renders now and its samples, for the daemon's in-frame progress and ETA.
  const tracker = new FrameTracker();
  const live = new LiveReporter(async () => {
    const report = tracker.report(performance.now());
    if (!report) return; // between frames: the frame's marker says the rest
    const doc: ChunkLive = { version: 1, chunk: index, attempt, at: new Date().toISOString(), ...report };
    await ctx.bucket.putJson(keys.live(index), doc);
  }, ctx.log);

  const failedFrames = new Set<number>();
  try {
    const project = join(paths.project, ...manifest.blend.split('/'));
    if (!existsSync(project)) {
      throw new Error(`${project} does not exist: the copy stage did not run or the folder was removed`);
    }
    const blender = await findBlender(ctx.env);
    ctx.log(
      `render: chunk ${index} (frames ${frames.join(',')}` +
        (part !== null ? `, part ${part + 1} of ${job.split!.parts}` : '') +
        `), attempt ${attempt}, device ${job.device}, ` +
        `Blender ${blender.version.join('.')}`,
    );
    await mkdir(previewDir, { recursive: true });
    const remaps = Object.fromEntries(
      Object.entries(manifest.remaps).map(([from, to]) => [from, join(paths.project, ...to.split(/[\\/]/))]),
    );
    // Variables whose values are paths in the project tree (e.g. OCIO → the colour config uploaded with it).
    const treeEnv = (manifest as { env?: Record<string, string> }).env ?? {};
    const env = {
      ...ctx.env,
      ...Object.fromEntries(
        Object.entries(treeEnv).map(([k, v]) => [k, join(paths.project, ...v.split('/'))]),
      ),
    };
    const result = await renderChunk({
      blender: blender.path,
      blendFile: project,
      scene: job.scene,
      frames,
      outputDir: paths.output,
      filePattern: job.filePattern,
      remaps,
      device: job.device,
      ...(part !== null ? { split: { parts: job.split!.parts, part, dir: paths.parts } } : { previewDir }),
      signal: ctx.signal,
      env,
      onLine: (line) => ctx.log(line),
      onEvent: (event) => {
        if (event.type === 'frameStart') tracker.start(event.frame, performance.now());
        else if (event.type === 'samples') {
          if (event.frame !== null && event.frame !== tracker.frame) return;
          const seen = tracker.samples(event.done, event.total, performance.now());
          // The first samples with a rate give the daemon its first ETA: written at once.
          if (seen !== 'ignored') live.changed(seen === 'first-rate');
        } else if (event.type === 'frameDone') {
          tracker.end();
          finished(event.frame, event.path, event.seconds);
        } else if (event.type === 'frameSkipped') {
          tracker.end();
          finished(event.frame, event.path, undefined);
        } else if (event.type === 'frameFailed') {
          tracker.end();
          failedFrames.add(event.frame);
          lost(event.frame, event.message);
        }
      },
    });
    // Each part just rendered: the child of a frame's last part merges the frame (in the job's
    // Blender, with render resources); otherwise a preview of the parts merged so far, in its marker.
    if (part !== null) {
      for (const frame of result.done) {
        if (ctx.signal.aborted) break;
        const complete = partFiles(ctx, job, frame).every((file) => existsSync(file));
        if (
          complete &&
          !existsSync(frameOutput(ctx, job, frame).path) &&
          (await claimMerge(ctx, job, frame, index))
        ) {
          await mergeSplitFrame(ctx, job, frame, { blender: blender.path, blendFile: project, env }, index);
          continue;
        }
        const preview = await previewSoFar(ctx, job, {
          frame,
          part,
          child: index,
          blender: blender.path,
          blendFile: project,
          env,
        });
        if (preview) partDone(frame, undefined, preview);
      }
    }
    outcome.done = result.done;
    outcome.skipped = result.skipped;
    outcome.failed = result.failed;
    // Frames Blender never reported (it crashed or was killed) get their marker here.
    for (const failure of result.failed)
      if (!failedFrames.has(failure.frame)) lost(failure.frame, failure.message);
    if (result.failed.length === 0 && result.exitCode !== 0) {
      outcome.failed = [
        { frame: frames[0]!, message: `Blender exited with ${result.exitCode ?? result.signal}` },
      ];
    }
  } catch (error) {
    const message = (error as Error).message;
    outcome.failed = frames.map((frame) => ({ frame, message }));
    for (const frame of frames) lost(frame, message);
  }
  await live.stop();
  await uploads;
  if (uploadError && outcome.failed.length === 0) throw uploadError;
  ctx.log(
    `render: chunk ${index}: ${outcome.done.length} rendered, ${outcome.skipped.length} already there, ` +
      `${outcome.failed.length} failed` +
      (outcome.failed.length ? ` (${outcome.failed.map((f) => `${f.frame}: ${f.message}`).join('; ')})` : ''),
  );
  return outcome;
}
