// The AWS pipeline's shared vocabulary: where things live in the bucket and on EFS, what job.json
// holds, how frames are split into array-job children, and what the stages report back. Both the
// daemon (daemon/src/batch/) and the container worker (infra/worker/) use this file, so the two
// sides cannot drift apart.
import { posix } from 'node:path';
import { chunkFrames } from '../render/frames.js';
import type { FrameReport } from '../jobs/estimate.js';

/** AWS Batch limits an array job to 10,000 children. */
export const MAX_ARRAY_CHILDREN = 10_000;

export type Device = 'cpu' | 'gpu';
export type Market = 'spot' | 'on-demand';
export type Stage = 'copy' | 'render' | 'publish';

/** `jobs/<jobId>/job.json`: everything a stage needs beyond its environment. */
export interface WorkerJobDocument {
  version: 1;
  jobId: string;
  name: string;
  /** The user's .blend, for messages only. */
  sourceBlendFile: string;
  scene: string;
  frames: number[];
  chunkSize: number;
  /**
   * Every frame renders as `parts` parts, each its share of the frame's `samples` (issue #17): the
   * array has a child per chunk and part, and publish merges a frame's parts.
   */
  split?: { parts: number; samples: number };
  /**
   * Blender's own file name for a frame with the frame number as `#`s (`####.png`, `shot_##_v2.png`;
   * the daemon's probe reads it from `scene.render.frame_path`).
   */
  filePattern: string;
  /**
   * The extension Blender puts on frames (`.png`; '' with File Extensions off). Already part of
   * filePattern; appended only to a pattern without it (job documents of earlier versions).
   */
  fileExtension: string;
  /** Key of the manifest (relative path → blob) written by the upload. */
  manifestKey: string;
  device: Device;
  market: Market;
  blenderVersion: string;
  /** Mail sent by publish; absent: no mail. */
  notify?: { to: string; from: string };
  /** For the "how to fetch the results" line of the mail. */
  bucket: string;
  region?: string;
  createdAt: string;
}

/** `jobs/<jobId>/progress/frames/<frame>.json`, written by a render chunk for each frame it finished or lost. */
export interface FrameMarker {
  frame: number;
  state: 'done' | 'failed';
  chunk: number;
  attempt: number;
  /** Output file name (done frames). */
  file?: string;
  seconds?: number;
  /** Key of the preview PNG (done frames, when Blender could write one). */
  preview?: string;
  message?: string;
  at: string;
}

/**
 * `jobs/<jobId>/progress/live/<chunk>.json`: the frame a render chunk is rendering and its samples
 * (jobs/estimate.ts FrameTracker, seconds since that frame started on the worker's clock), overwritten
 * at most every few seconds. The daemon lists the folder once per poll while chunks run.
 */
export interface ChunkLive extends FrameReport {
  version: 1;
  chunk: number;
  attempt: number;
  at: string;
}

/**
 * `jobs/<jobId>/progress/parts/<frame>/<part>.json`, written by a render child for each part of a
 * split frame it finished (or lost); publish writes the frame's marker once the parts are merged.
 */
export interface PartMarker {
  frame: number;
  part: number;
  state: 'done' | 'failed';
  /** The array child (AWS_BATCH_JOB_ARRAY_INDEX) that rendered it: `skyfarm logs JOB --chunk K`. */
  child: number;
  attempt: number;
  /** Samples this part holds (done parts). */
  samples?: number;
  seconds?: number;
  /** Key of a preview of the frame's parts merged so far (render/split-preview.ts), and how many. */
  preview?: string;
  mergedParts?: number;
  message?: string;
  at: string;
}

export type ResultState = 'succeeded' | 'partial' | 'failed' | 'canceled';

/** `jobs/<jobId>/result.json`, written by publish. */
export interface JobResult {
  version: 1;
  jobId: string;
  state: ResultState;
  ok: Array<{ frame: number; key: string; file: string }>;
  failed: Array<{ frame: number; message: string }>;
  missing: number[];
  /** Why the job did not fully succeed (render/copy failure reason, cancel, budget stop). */
  reason?: string;
  /** The daemon stopped the job at its budget (stop.json's reason). */
  stopped?: string;
  /** The daemon's last cost estimate (cost.json), for the mail. */
  cost?: string;
  /**
   * The Batch job that published (its AWS_BATCH_JOB_ID): after a failure, the stack's
   * publish-after-failure, which the daemon did not submit and so learns of here (its cost counts).
   */
  publishBatchJobId?: string;
  mail?: { to: string; messageId?: string; error?: string };
  publishedAt: string;
}

/** `jobs/<jobId>/cancel.json`, written by the daemon before it terminates a job's Batch jobs. */
/** jobs/<id>/cost.json: the estimate as the daemon last made it (texts as the CLI shows them). */
export interface CostNote {
  /** "≈ $0.42 (c6i.xlarge spot ×3)" or "cost unknown: …". */
  text: string;
  at: string;
}

/** jobs/<id>/stop.json: why the daemon stopped the job before it finished (its budget). */
export interface StopRequest {
  jobId: string;
  reason: string;
  at: string;
}

export interface CancelRequest {
  jobId: string;
  reason: string;
  at: string;
}

export { blobKey, packKey } from '../store/object-store.js';

export function jobKeys(jobId: string) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(jobId)) throw new Error(`bad job id ${JSON.stringify(jobId)}`);
  const root = `jobs/${jobId}/`;
  return {
    root,
    job: `${root}job.json`,
    manifest: `${root}manifest.json`,
    result: `${root}result.json`,
    cancel: `${root}cancel.json`,
    /** The daemon's latest cost estimate (publish puts it in the mail). */
    cost: `${root}cost.json`,
    /** The daemon stopped the job at its budget (publish says so). */
    stop: `${root}stop.json`,
    framesPrefix: `${root}progress/frames/`,
    frame: (frame: number) => `${root}progress/frames/${frame}.json`,
    previewsPrefix: `${root}progress/previews/`,
    preview: (frame: number) => `${root}progress/previews/${frame}.png`,
    partsPrefix: `${root}progress/parts/`,
    part: (frame: number, part: number) => `${root}progress/parts/${frame}/${part}.json`,
    /** A split frame's preview of the parts merged so far, made by the child of `part`. */
    partPreview: (frame: number, part: number) => `${root}progress/previews/${frame}-part${part}.png`,
    livePrefix: `${root}progress/live/`,
    live: (chunk: number) => `${root}progress/live/${chunk}.json`,
    outputPrefix: `${root}output/`,
    output: (file: string) => `${root}output/${safeFileName(file)}`,
  };
}

/** The job's folder on EFS and its parts. */
export function efsPaths(efsRoot: string, jobId: string) {
  jobKeys(jobId); // validates the id
  const job = posix.join(efsRoot, 'jobs', jobId);
  return {
    cache: posix.join(efsRoot, 'cas'),
    job,
    project: posix.join(job, 'project'),
    output: posix.join(job, 'output'),
    previews: posix.join(job, 'previews'),
    /** Split frames' parts: `<parts>/<frame>/<part>.exr`. */
    parts: posix.join(job, 'parts'),
    copied: posix.join(job, '.copied'),
  };
}

export function safeFileName(file: string): string {
  if (
    !file ||
    file.includes('/') ||
    file.includes('\\') ||
    file === '.' ||
    file === '..' ||
    file.includes('\0')
  ) {
    throw new Error(`not a plain file name: ${JSON.stringify(file)}`);
  }
  return file;
}

/** The smallest chunk size ≥ `requested` that keeps the array within 10,000 children. */
export function effectiveChunkSize(frameCount: number, requested: number): number {
  const minimum = Math.ceil(frameCount / MAX_ARRAY_CHILDREN);
  return Math.max(requested, minimum, 1);
}

export function chunksOf(job: Pick<WorkerJobDocument, 'frames' | 'chunkSize'>): number[][] {
  return chunkFrames(job.frames, job.chunkSize);
}

/** A render array child: its chunk of frames and, in a split job, the part of them it renders. */
export interface RenderChild {
  index: number;
  chunk: number;
  frames: number[];
  part: number | null;
}

/** The render array's size: a child per chunk, per part in a split job. */
export function renderChildren(job: Pick<WorkerJobDocument, 'frames' | 'chunkSize' | 'split'>): number {
  return chunksOf(job).length * (job.split?.parts ?? 1);
}

/** Child `index` of the render array (chunk-major: a chunk's parts are consecutive children). */
export function renderChild(
  job: Pick<WorkerJobDocument, 'frames' | 'chunkSize' | 'split'>,
  index: number,
): RenderChild | undefined {
  const parts = job.split?.parts ?? 1;
  const chunk = Math.floor(index / parts);
  const frames = chunksOf(job)[chunk];
  if (!frames || index < 0) return undefined;
  return { index, chunk, frames, part: job.split ? index % parts : null };
}

/** The chunk that holds `frame`. */
export function chunkOfFrame(job: Pick<WorkerJobDocument, 'frames' | 'chunkSize'>, frame: number): number {
  const index = job.frames.indexOf(frame);
  return index < 0 ? -1 : Math.floor(index / job.chunkSize);
}

/**
 * The file Blender writes for `frame` (as `scene.render.frame_path` does): the last group of `#`
 * becomes the frame number, zero-padded to its width (a negative frame gets a `-` before the padded
 * digits: `-0003`), or four digits are appended when there is none.
 */
export function frameFileName(filePattern: string, frame: number, extension: string): string {
  const pattern = filePattern || 'frame_####';
  const match = /#+(?!.*#)/.exec(pattern);
  const digits = (width: number) => (frame < 0 ? '-' : '') + String(Math.abs(frame)).padStart(width, '0');
  const name = match
    ? pattern.slice(0, match.index) + digits(match[0].length) + pattern.slice(match.index + match[0].length)
    : pattern + digits(4);
  return extension && !name.toLowerCase().endsWith(extension.toLowerCase()) ? name + extension : name;
}

export function batchJobName(jobId: string, stage: Stage | 'cleanup'): string {
  return `skyfarm-${jobId}-${stage}`;
}
