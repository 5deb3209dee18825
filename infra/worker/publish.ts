// publish: uploads the rendered frames (skipping ones already in the bucket), writes
// jobs/<jobId>/result.json (frames ok / failed / missing), sends the mail and removes the job's EFS
// folder. It runs after a successful render (dependsOn), after a failed one (submitted by the stack's
// EventBridge rule, `--after-failure`), and after a cancel: partial results are always published.
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  efsPaths,
  frameFileName,
  jobKeys,
  type CancelRequest,
  type CostNote,
  type StopRequest,
  type FrameMarker,
  type JobResult,
  type ResultState,
  type WorkerJobDocument,
} from '../../daemon/src/batch/layout.js';
import { composeMail } from './mail.js';
import { mergeSplitFrames } from './split-publish.js';
import type { WorkerContext } from './context.js';

const PARALLEL = 4;

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await fn(items[index]!);
      }
    }),
  );
  return results;
}

async function listFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function contentType(file: string): string | undefined {
  const ext = file.slice(file.lastIndexOf('.') + 1).toLowerCase();
  return { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', exr: 'image/x-exr', tif: 'image/tiff' }[
    ext
  ];
}

export async function readMarkers(ctx: WorkerContext, jobId: string): Promise<Map<number, FrameMarker>> {
  const keys = jobKeys(jobId);
  const listed = (await ctx.bucket.list(keys.framesPrefix)).filter((o) => o.key.endsWith('.json'));
  const markers = await mapLimit(listed, 8, (o) => ctx.bucket.getJson<FrameMarker>(o.key));
  const byFrame = new Map<number, FrameMarker>();
  for (const marker of markers) if (marker) byFrame.set(marker.frame, marker);
  return byFrame;
}

export async function publishStage(ctx: WorkerContext): Promise<JobResult> {
  const { jobId } = ctx.config;
  const keys = jobKeys(jobId);
  const paths = efsPaths(ctx.config.efsRoot, jobId);
  const job = await ctx.bucket.getJson<WorkerJobDocument>(keys.job);
  if (!job) {
    await rm(paths.job, { recursive: true, force: true });
    throw new Error(`s3://${ctx.bucket.name}/${keys.job} does not exist; removed ${paths.job}`);
  }
  const cancel = await ctx.bucket.getJson<CancelRequest>(keys.cancel);
  // The daemon stopped the job at its budget, and its last cost estimate (both only for the mail/result).
  const stop = await ctx.bucket.getJson<StopRequest>(keys.stop);
  const cost = await ctx.bucket.getJson<CostNote>(keys.cost);

  // 0. A split job's frames are merged from their parts first (not after a cancel: the user stopped it).
  if (job.split && !cancel) {
    const merged = await mergeSplitFrames(ctx, job);
    ctx.log(
      `publish: split frames: ${merged.merged.length} merged, ${merged.failed.length} failed, ` +
        `${merged.incomplete.length} with parts missing`,
    );
  }

  // 1. Frames from the working folder to the bucket, skipping what is already there.
  const local = await listFiles(paths.output);
  const remote = new Map((await ctx.bucket.list(keys.outputPrefix)).map((o) => [o.key, o.size]));
  let uploaded = 0;
  await mapLimit(local, PARALLEL, async (file) => {
    const key = keys.output(file);
    const size = (await stat(join(paths.output, file))).size;
    if (remote.get(key) === size) return;
    const type = contentType(file);
    await ctx.bucket.putFile(key, join(paths.output, file), type ? { contentType: type } : {});
    remote.set(key, size);
    uploaded += 1;
  });
  ctx.log(`publish: ${uploaded} frames uploaded, ${local.length - uploaded} were already in the bucket`);

  // 2. What became of every frame.
  const markers = await readMarkers(ctx, jobId);
  const ok: JobResult['ok'] = [];
  const failed: JobResult['failed'] = [];
  const missing: number[] = [];
  for (const frame of job.frames) {
    const marker = markers.get(frame);
    const file = marker?.file ?? frameFileName(job.filePattern, frame, job.fileExtension);
    if (remote.has(keys.output(file))) ok.push({ frame, key: keys.output(file), file });
    else if (marker?.state === 'failed') failed.push({ frame, message: marker.message ?? 'failed' });
    else missing.push(frame);
  }
  let state: ResultState;
  if (cancel) state = 'canceled';
  else if (failed.length === 0 && missing.length === 0) state = 'succeeded';
  else if (ok.length > 0) state = 'partial';
  else state = 'failed';
  let reason: string | undefined;
  if (cancel) reason = cancel.reason;
  else if (stop) reason = stop.reason;
  else if (failed[0]) reason = failed[0].message;
  else if (ctx.config.reason) reason = `the render job failed: ${ctx.config.reason}`;
  else if (state !== 'succeeded') reason = `${missing.length} frames were not rendered`;
  const result: JobResult = {
    version: 1,
    jobId,
    state,
    ok,
    failed,
    missing,
    ...(reason ? { reason } : {}),
    ...(stop && !cancel ? { stopped: stop.reason } : {}),
    ...(cost?.text ? { cost: cost.text } : {}),
    ...(ctx.config.batchJobId ? { publishBatchJobId: ctx.config.batchJobId } : {}),
    publishedAt: new Date().toISOString(),
  };

  // 3. Mail (its failure is recorded and makes the stage fail, after everything else is done).
  let mailError: Error | null = null;
  const previous = await ctx.bucket.getJson<JobResult>(keys.result);
  if (job.notify && previous?.mail?.messageId && previous.state === state) {
    // A retried publish: the same news was already mailed.
    result.mail = previous.mail;
    ctx.log(`publish: ${job.notify.to} was already mailed (${previous.mail.messageId})`);
  } else if (job.notify) {
    try {
      const sent = await ctx.sendMail(job.notify.from, job.notify.to, composeMail(job, result));
      result.mail = { to: job.notify.to, ...sent };
      ctx.log(`publish: mailed ${job.notify.to} (${state})`);
    } catch (error) {
      mailError = error as Error;
      result.mail = { to: job.notify.to, error: mailError.message };
      ctx.log(`publish: mail to ${job.notify.to} failed: ${mailError.message}`);
    }
  }
  // 4. The working folder goes, whatever happened; result.json comes last, so whoever sees it knows
  //    the job is completely over.
  await rm(paths.job, { recursive: true, force: true });
  await ctx.bucket.putJson(keys.result, result);
  ctx.log(
    `publish: ${state}: ${ok.length} ok, ${failed.length} failed, ${missing.length} missing; removed ${paths.job}`,
  );
  if (mailError) throw new Error(`the result is published but the mail failed: ${mailError.message}`);
  return result;
}
