// The AWS backend: uploads a job (job.json last), submits its three Batch jobs — copy on the transfer
// queue, render as an array job (one child per chunk) on the queue for its device and market, publish
// on the transfer queue — and follows them: one DescribeJobs per poll for up to 100 Batch jobs, the
// render's statusSummary for chunks, progress markers in the bucket for frames (with previews for
// Blender's "Show last frame"), result.json for the outcome, and the published frames downloaded into
// the output folder as they appear. Batch ids are stored the moment they exist; a restarted daemon
// re-attaches (by stored id, else by job name) and never submits a stage twice.
import { mkdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Job, JobState, Stages, StageState } from '../../../protocol/generated/protocol.js';
import { SkyfarmError, toErrorInfo } from '../errors.js';
import type { Notify } from '../notify.js';
import { FINISHED_STATES, type JobRepo } from '../jobs/job-repo.js';
import { estimateJob, inFlightFromReport } from '../jobs/estimate.js';
import type { JobLogs } from '../jobs/job-log.js';
import type { JobSpec } from '../jobs/job-spec.js';
import { formatFrameList } from '../render/frames.js';
import { SplitProgress } from './split-progress.js';
import { removePartialMoves } from '../util/files.js';
import type { IBucket } from './bucket.js';
import type { BatchJobInfo, IBatch } from './batch-api.js';
import type { ILogReader } from './logs-api.js';
import { renderQueue, type FarmSettings } from './farm.js';
import { AwsJobStore, type AwsJobRow, type TrackedStage } from './aws-store.js';
import {
  batchJobName,
  effectiveChunkSize,
  jobKeys,
  MAX_ARRAY_CHILDREN,
  renderChildren,
  type CancelRequest,
  type ChunkLive,
  type Device,
  type FrameMarker,
  type JobResult,
  type Market,
} from './layout.js';
import { stopAtBudget } from './budget-stop.js';
import {
  Backoff,
  CANCEL_PENDING_SUFFIX,
  cancelPendingMessage,
  formatSpan,
  isOutageMessage,
  isUnreachable,
  outageMessage,
  shortError,
} from './outage.js';
import { pathsText } from '../project/missing.js';
import { prepareJob, type PrepareRequest, type PrepareResult, type ProjectUploader } from './prepare.js';
import { chunkCounts, failureReason, isQueued, runnableExplanation, stageState, TERMINAL } from './status.js';

export interface FarmClients {
  bucket: IBucket;
  batch: IBatch;
  logs: ILogReader;
}

export interface AwsBackendDeps {
  repo: JobRepo;
  logs: JobLogs;
  store: AwsJobStore;
  notify: Notify;
  log: Logger;
  /** Where previews of finished frames are kept (state dir). */
  previewsDir: string;
  clients: (farm: FarmSettings) => FarmClients;
  /** Upload + job.json (default: prepareJob over the farm bucket). */
  prepare?: (request: PrepareRequest) => Promise<PrepareResult>;
  /** How the project gets into the bucket (default: uploadToBucket). */
  upload?: ProjectUploader;
  /** Poll period while something starts or runs (default 2 s) and while everything waits (default 15 s). */
  pollFastMs?: number;
  pollSlowMs?: number;
  /** After this long in RUNNABLE the message explains why (default 10 min). */
  runnableWarnMs?: number;
  /** How long to wait for the stack's publish-after-failure to write result.json (default 30 min). */
  failurePublishTimeoutMs?: number;
  /**
   * While AWS fails to answer, the wait between polls (and between upload/submission attempts) starts
   * at pollFastMs and doubles, with jitter, up to this (default 30 × pollFastMs, at most 60 s).
   */
  pollBackoffMaxMs?: number;
  /** How long AWS must have failed before a job's message says "AWS unreachable" (default 10 × pollFastMs, at most 20 s). */
  outageNoticeMs?: number;
  /** Before a job is on AWS (upload, submission), how long an outage is waited out before it fails (default 30 min). */
  outageGiveUpMs?: number;
  /**
   * How long `cancel` waits for AWS before it marks the job canceled anyway and returns, the Batch
   * jobs to be terminated when AWS answers (default 10 s).
   */
  cancelAnswerMs?: number;
  /** Clock and randomness (tests). */
  now?: () => number;
  random?: () => number;
}

export interface AwsSubmitOptions {
  farm: FarmSettings;
  device: Device;
  market: Market;
  blenderVersion: string;
  notifyEmail?: string;
  prepareOnly?: boolean;
  /** Budget in USD (--max-cost): the job is stopped when its spend reaches it. */
  maxCostUsd?: number;
}

interface Tracked {
  jobId: string;
  /** Last DescribeJobs answer per stage. */
  info: Partial<Record<TrackedStage, BatchJobInfo>>;
  markerEtags: Map<string, string>;
  /** The render chunks' live reports (progress/live/<chunk>.json) by key; readAt on the daemon's clock. */
  live: Map<string, { etag: string; readAt: number; report: ChunkLive | undefined }>;
  frameSeconds: Map<number, number>;
  frameFiles: Map<number, string>;
  lastPreviewAt: string;
  downloaded: Map<string, number>;
  runnableSince: Partial<Record<TrackedStage, number>>;
  renderFailedAt?: number;
  /** The render has ended and its markers were read after that. */
  markersFinal?: boolean;
  lastSnapshot?: string;
  /** AWS has not answered for this job since `since` (the first failure in a row). */
  outage?: { since: number; announced: boolean };
  /** The message the job had when an outage replaced it. */
  messageBeforeOutage?: string;
  /** Temporary files a killed daemon left in the output folder were removed (once per daemon). */
  swept?: boolean;
  /** A split job's parts (split-progress.ts). */
  split?: SplitProgress;
}

const WORKER = 'skyfarm-worker';
/** Live reports read per job and poll at most (the least recently read first): S3 GETs stay bounded. */
export const MAX_LIVE_READS_PER_POLL = 32;
/** A live report unchanged for this long is from a chunk that no longer reports: not counted. */
const LIVE_STALE_MS = 10 * 60_000;

/** All a stage gets from the daemon: the job id and bucket (and the region, so S3 is asked there). */
function stageEnvironment(jobId: string, farm: FarmSettings): Record<string, string> {
  return {
    SKYFARM_JOB_ID: jobId,
    SKYFARM_BUCKET: farm.bucket,
    ...(farm.region ? { AWS_REGION: farm.region } : {}),
  };
}
const CANCEL_REASON = 'canceled by the user (skyfarm cancel)';

export class AwsBackend {
  private readonly tracked = new Map<string, Tracked>();
  private readonly starting = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly canceling = new Map<
    string,
    { controller: AbortController; done: Promise<void>; announced: Promise<void> }
  >();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  /** Whether the last poll failed (AWS did not answer); the next waits per `backoff`. */
  private pollFailed = false;
  private readonly backoff: Backoff;
  private stopped = false;

  constructor(private readonly deps: AwsBackendDeps) {
    this.backoff = this.newBackoff();
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** AWS failed the last status poll and the loop is backing off: other periodic calls wait too. */
  get backingOff(): boolean {
    return this.backoff.failures > 0;
  }

  private newBackoff(): Backoff {
    const fast = this.deps.pollFastMs ?? 2_000;
    return new Backoff({
      baseMs: fast,
      maxMs: this.deps.pollBackoffMaxMs ?? Math.max(fast, Math.min(60_000, 30 * fast)),
      ...(this.deps.random ? { random: this.deps.random } : {}),
    });
  }

  // -----------------------------------------------------------------------------------------------
  // Submit / resume

  /** Records the AWS side of a new job and starts it in the background. */
  submit(spec: JobSpec, options: AwsSubmitOptions): void {
    this.deps.store.insert({
      jobId: spec.jobId,
      farm: options.farm,
      device: options.device,
      market: options.market,
      blenderVersion: options.blenderVersion,
      notifyEmail: options.notifyEmail ?? null,
      prepareOnly: options.prepareOnly ?? false,
      maxCostUsd: options.maxCostUsd ?? null,
    });
    this.start(spec.jobId);
  }

  /**
   * Re-attaches to a job after a daemon restart: uploads/submits what is missing, then follows it. A
   * job whose cancel was recorded is not started again: its cancel is finished instead.
   */
  resume(jobId: string): void {
    if (this.deps.store.get(jobId)?.canceledAt) {
      void this.finishCancel(jobId);
      return;
    }
    this.start(jobId);
  }

  isAws(jobId: string): boolean {
    return this.deps.store.get(jobId) !== undefined;
  }

  private start(jobId: string): void {
    if (this.starting.has(jobId) || this.tracked.has(jobId)) return;
    const controller = new AbortController();
    const done = this.launchWithRetries(jobId, controller.signal)
      .catch((error: unknown) => {
        if (controller.signal.aborted) return;
        // Before job.json the upload failed; after it, submitting to Batch did.
        this.fail(jobId, this.deps.store.get(jobId)?.preparedAt ? 'copy' : 'upload', error);
      })
      .finally(() => this.starting.delete(jobId));
    this.starting.set(jobId, { controller, done });
  }

  private emit(job: Job): Job {
    this.deps.notify('job.update', job);
    return job;
  }

  private say(jobId: string, message: string): void {
    this.deps.logs.append(jobId, `[skyfarm] ${message}`);
  }

  private fail(jobId: string, stage: keyof Stages, error: unknown): void {
    const info = toErrorInfo(error);
    this.say(jobId, `${stage} failed: ${info.message}`);
    this.deps.store.setFinished(jobId);
    this.tracked.delete(jobId);
    this.deps.repo.setLive(jobId, undefined);
    this.emit(
      this.deps.repo.update(jobId, {
        state: 'failed',
        stage: [stage, 'failed'],
        message: info.message,
        error: info,
      }),
    );
  }

  /**
   * Upload and submission, tried again with back-off while AWS is unreachable (throttling, 5xx, network):
   * the job says "AWS unreachable since …; retrying" and fails only when the outage outlasts
   * outageGiveUpMs. Both steps are safe to repeat: blobs are content-addressed, job.json is written
   * last, and a stage is looked up by name before it is submitted.
   */
  private async launchWithRetries(jobId: string, signal: AbortSignal): Promise<void> {
    const backoff = this.newBackoff();
    let since: number | undefined;
    let message: string | undefined;
    for (;;) {
      try {
        await this.launch(jobId, signal, message);
        if (since !== undefined)
          this.say(jobId, `AWS answers again (it was unreachable for ${formatSpan(this.now() - since)})`);
        return;
      } catch (error) {
        if (signal.aborted || !isUnreachable(error)) throw error;
        const now = this.now();
        since ??= now;
        if (now - since >= (this.deps.outageGiveUpMs ?? 30 * 60_000)) throw error;
        const wait = backoff.fail();
        message = outageMessage(since, now, error);
        this.deps.log.warn({ jobId, error: shortError(error), retryInMs: wait }, 'AWS unreachable');
        if (backoff.failures === 1) this.say(jobId, message);
        const job = this.deps.repo.get(jobId);
        if (job && job.message !== message) this.emit(this.deps.repo.update(jobId, { message }));
        await sleep(wait, undefined, { signal, ref: false });
      }
    }
  }

  /** `outage`: the message of an outage being retried, kept until the upload or submission succeeds. */
  private async launch(jobId: string, signal: AbortSignal, outage?: string): Promise<void> {
    const { repo, store } = this.deps;
    const spec = repo.spec(jobId);
    let row = store.get(jobId);
    if (!spec) return;
    if (!row)
      throw new SkyfarmError('INTERNAL', 'the AWS settings of this job were not recorded; submit it again');
    if (row.canceledAt) return; // finishCancel's business
    const clients = this.deps.clients(row.farm);
    if (!row.preparedAt) {
      this.say(jobId, `uploading to s3://${row.farm.bucket}`);
      this.emit(
        repo.update(jobId, {
          state: 'uploading',
          stage: ['upload', 'running'],
          message: outage ?? 'uploading the scene and its files',
        }),
      );
      const prepare = this.deps.prepare ?? prepareJob;
      const result = await prepare({
        jobId,
        name: repo.get(jobId)?.name ?? jobId,
        blendFile: spec.blendFile,
        sourceBlendFile: spec.sourceBlendFile,
        projectRoot: spec.projectRoot,
        dependencies: spec.dependencies,
        scene: spec.scene,
        frames: spec.frames,
        chunkSize: spec.chunkSize,
        ...(spec.split ? { split: spec.split } : {}),
        filePattern: spec.filePattern,
        fileExtension: spec.fileExtension,
        device: row.device,
        market: row.market,
        blenderVersion: row.blenderVersion,
        ...(row.notifyEmail
          ? { notify: { to: row.notifyEmail, from: row.farm.notifyFrom ?? row.notifyEmail } }
          : {}),
        bucket: clients.bucket,
        ...(row.farm.region ? { region: row.farm.region } : {}),
        signal,
        onProgress: (progress) => this.deps.notify('upload.progress', progress),
        ...(this.deps.upload ? { upload: this.deps.upload } : {}),
      });
      signal.throwIfAborted();
      const chunks = renderChildren(result.job);
      store.setPrepared(jobId, renderQueue(row.farm, row.device, row.market), chunks);
      const upload = result.upload;
      if (upload?.bytesTotal !== undefined && upload.objectsStored !== undefined)
        store.setUploadStats(jobId, {
          bytesTotal: upload.bytesTotal,
          bytesUploaded: upload.bytesUploaded,
          objectsStored: upload.objectsStored,
          files: upload.files,
        });
      const missing = result.missing.length
        ? `; ${result.missing.length} missing: ${pathsText(result.missing, 3)}`
        : '';
      if (result.missing.length)
        this.deps.logs.append(jobId, result.missing.map((file) => `[skyfarm] missing ${file}`).join('\n'));
      this.say(
        jobId,
        `stored ${result.files} files (${result.bytesUploaded} new bytes)${missing}; wrote ${jobKeys(jobId).job}`,
      );
      row = store.get(jobId)!;
      if (row.prepareOnly) {
        store.setFinished(jobId);
        const message = `prepared only: s3://${row.farm.bucket}/${jobKeys(jobId).job} (run the worker by hand)`;
        this.say(jobId, message);
        for (const stage of ['copy', 'render', 'publish'] as const)
          repo.update(jobId, { stage: [stage, 'skipped'] });
        this.emit(repo.update(jobId, { state: 'done', stage: ['upload', 'done'], message }));
        return;
      }
      this.emit(
        repo.update(jobId, {
          state: 'copying',
          stage: ['upload', 'done'],
          message: 'submitting to AWS Batch',
        }),
      );
    }
    if (row.finishedAt && !row.prepareOnly && !FINISHED_STATES.has(repo.get(jobId)?.state ?? 'done')) {
      // Killed after the AWS side was recorded finished, before the job was: follow it to the end
      // again (result.json is there; finishing is idempotent).
      this.track(jobId);
      return;
    }
    if (row.canceledAt || row.finishedAt || row.prepareOnly) return;
    await this.submitStages(row, clients, signal);
    this.track(jobId);
  }

  /** copy → render (dependsOn copy) → publish (dependsOn render); each id stored as soon as it exists. */
  private async submitStages(row: AwsJobRow, clients: FarmClients, signal: AbortSignal): Promise<void> {
    const { jobId, farm } = row;
    const chunks = row.chunks ?? 1;
    if (chunks > MAX_ARRAY_CHILDREN)
      throw new SkyfarmError('BAD_ARGUMENT', `${chunks} chunks exceed ${MAX_ARRAY_CHILDREN}`);
    const queueFor = (stage: TrackedStage) => (stage === 'render' ? row.renderQueue! : farm.queues.transfer);
    const ids = { ...row.batchIds };
    const ensure = async (stage: 'copy' | 'render' | 'publish', dependsOn: string | undefined) => {
      if (ids[stage]) return ids[stage]!;
      signal.throwIfAborted();
      const name = batchJobName(jobId, stage);
      // A daemon that stopped between SubmitJob and storing the id finds the job by its name.
      const existing = await clients.batch.findByName(queueFor(stage), name);
      let batchId = existing[0]?.jobId;
      if (batchId) {
        this.say(jobId, `re-attached to ${stage} job ${batchId} (found by name ${name})`);
      } else {
        batchId = (
          await clients.batch.submit({
            name,
            queue: queueFor(stage),
            definition: stage === 'render' ? farm.jobDefinitions.render : farm.jobDefinitions.transfer,
            command: [WORKER, stage],
            environment: stageEnvironment(jobId, farm),
            parameters: { skyfarmJobId: jobId, skyfarmStage: stage },
            ...(dependsOn ? { dependsOn: [dependsOn] } : {}),
            ...(stage === 'render' && chunks >= 2 ? { arraySize: chunks } : {}),
            tags: { 'skyfarm:job': jobId, 'skyfarm:stage': stage },
          })
        ).jobId;
        this.say(jobId, `submitted ${stage} as Batch job ${batchId} on ${queueFor(stage)}`);
      }
      this.deps.store.setBatchId(jobId, stage, batchId);
      ids[stage] = batchId;
      return batchId;
    };
    const copy = await ensure('copy', undefined);
    const render = await ensure('render', copy);
    await ensure('publish', render);
  }

  // -----------------------------------------------------------------------------------------------
  // Following jobs

  private track(jobId: string): void {
    if (this.stopped || this.deps.store.get(jobId)?.canceledAt) return;
    this.tracked.set(jobId, {
      jobId,
      info: {},
      markerEtags: new Map(),
      live: new Map(),
      frameSeconds: new Map(),
      frameFiles: new Map(),
      lastPreviewAt: '',
      downloaded: new Map(),
      runnableSince: {},
    });
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.polling || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pollFailed = false;
      this.polling = this.pollOnce()
        .catch((error: unknown) => {
          this.pollFailed = true;
          this.deps.log.warn({ err: error }, 'AWS status poll failed');
        })
        .finally(() => {
          this.polling = undefined;
          if (this.tracked.size === 0) return;
          // After a failed poll: exponential back-off with jitter; after a success: the normal rhythm.
          if (this.pollFailed) this.schedule(this.backoff.fail());
          else {
            this.backoff.reset();
            this.schedule(this.nextDelay());
          }
        });
    }, delayMs);
    this.timer.unref?.();
  }

  /** Fast while anything starts, runs or is being published; slow while everything only waits. */
  private nextDelay(): number {
    const fast = this.deps.pollFastMs ?? 2_000;
    const slow = this.deps.pollSlowMs ?? 15_000;
    for (const t of this.tracked.values()) {
      const infos = Object.values(t.info);
      if (infos.length === 0) return fast;
      if (infos.some((i) => i && !TERMINAL.has(i.status) && !isQueued(i))) return fast;
      const render = t.info.render;
      if (
        render?.statusSummary &&
        ((render.statusSummary.RUNNING ?? 0) > 0 || (render.statusSummary.STARTING ?? 0) > 0)
      )
        return fast;
      if (infos.every((i) => i && TERMINAL.has(i.status))) return fast; // finishing: result and downloads
    }
    return slow;
  }

  /**
   * One poll: DescribeJobs for every tracked Batch job, at most 100 ids per call, then each job. When
   * AWS does not answer (for a farm, or for a job's S3 reads and downloads), the poll counts as failed
   * (the next one backs off) and the jobs concerned are marked; after outageNoticeMs they say so.
   */
  async pollOnce(): Promise<void> {
    const now = this.now();
    let failed = false;
    const byFarm = new Map<string, { clients: FarmClients; ids: string[]; jobs: Tracked[] }>();
    const rows = new Map<string, AwsJobRow>();
    for (const t of this.tracked.values()) {
      const row = this.deps.store.get(t.jobId);
      if (!row) continue;
      rows.set(t.jobId, row);
      const key = JSON.stringify(row.farm);
      let entry = byFarm.get(key);
      if (!entry) byFarm.set(key, (entry = { clients: this.deps.clients(row.farm), ids: [], jobs: [] }));
      entry.jobs.push(t);
      for (const [stage, id] of Object.entries(row.batchIds) as Array<[TrackedStage, string]>) {
        if (!t.info[stage] || !TERMINAL.has(t.info[stage]!.status)) entry.ids.push(id);
      }
    }
    const answers = new Map<string, BatchJobInfo>();
    const unanswered = new Map<Tracked, unknown>();
    for (const { clients, ids, jobs } of byFarm.values()) {
      try {
        for (let start = 0; start < ids.length; start += 100) {
          for (const info of await clients.batch.describe(ids.slice(start, start + 100), { poll: true }))
            answers.set(info.jobId, info);
        }
      } catch (error) {
        failed = true;
        this.deps.log.warn({ error: shortError(error) }, 'AWS status poll failed');
        for (const t of jobs) unanswered.set(t, error);
      }
    }
    for (const t of [...this.tracked.values()]) {
      const row = rows.get(t.jobId);
      if (!row) continue;
      if (unanswered.has(t)) {
        this.noteOutage(t, unanswered.get(t), now);
        continue;
      }
      for (const [stage, id] of Object.entries(row.batchIds) as Array<[TrackedStage, string]>) {
        const info = answers.get(id);
        if (info) t.info[stage] = info;
      }
      try {
        await this.update(t, row);
        this.endOutage(t);
      } catch (error) {
        this.deps.log.warn({ err: error, jobId: t.jobId }, 'AWS job update failed');
        if (isUnreachable(error)) {
          failed = true;
          this.noteOutage(t, error, now);
        }
      }
    }
    if (failed) this.pollFailed = true;
  }

  /** AWS did not answer for this job: after outageNoticeMs its message says so (once in its log). */
  private noteOutage(t: Tracked, error: unknown, now: number): void {
    if (!this.tracked.has(t.jobId)) return;
    const job = this.deps.repo.get(t.jobId);
    if (!job) return;
    t.outage ??= { since: now, announced: false };
    const fast = this.deps.pollFastMs ?? 2_000;
    if (now - t.outage.since < (this.deps.outageNoticeMs ?? Math.min(20_000, 10 * fast))) return;
    const message = outageMessage(t.outage.since, now, error);
    if (!t.outage.announced) {
      t.outage.announced = true;
      if (!isOutageMessage(job.message)) t.messageBeforeOutage = job.message;
      this.say(t.jobId, message);
    }
    if (job.message !== message) {
      const updated = this.deps.repo.update(t.jobId, { message });
      t.lastSnapshot = JSON.stringify({ ...updated, updatedAt: '' });
      this.emit(updated);
    }
  }

  /** AWS answered again: update() has already put the job's own message back. */
  private endOutage(t: Tracked): void {
    if (!t.outage) return;
    if (t.outage.announced)
      this.say(
        t.jobId,
        `AWS answers again (it was unreachable for ${formatSpan(this.now() - t.outage.since)})`,
      );
    t.outage = undefined;
    t.messageBeforeOutage = undefined;
  }

  private async update(t: Tracked, row: AwsJobRow): Promise<void> {
    const { repo } = this.deps;
    const job = repo.get(t.jobId);
    if (!job || row.canceledAt) {
      this.tracked.delete(t.jobId);
      return;
    }
    const clients = this.deps.clients(row.farm);
    const { copy, render, publish } = t.info;
    const chunks = row.chunks ?? 1;
    const counts = chunkCounts(render, chunks);
    const now = Date.now();
    for (const stage of ['copy', 'render', 'publish'] as const) {
      const info = t.info[stage];
      const waiting =
        info?.status === 'RUNNABLE' ||
        (stage === 'render' &&
          counts.queued > 0 &&
          counts.running === 0 &&
          info?.status === 'PENDING' &&
          copy?.status === 'SUCCEEDED');
      if (waiting) t.runnableSince[stage] ??= now;
      else delete t.runnableSince[stage];
    }

    // Frames: markers (and previews) once a chunk has started.
    if (
      render &&
      !t.markersFinal &&
      (counts.running > 0 || counts.done > 0 || counts.failed > 0 || TERMINAL.has(render.status))
    ) {
      // Once the render has ended, one more listing sees every marker; after that none can appear.
      const final = TERMINAL.has(render.status);
      await this.readMarkers(t, clients.bucket);
      const split = repo.spec(t.jobId)?.split;
      if (split) {
        t.split ??= new SplitProgress(split.parts, split.samples);
        await t.split.read(clients.bucket, t.jobId);
        // The preview of a frame's parts merged so far becomes the last frame until a newer one.
        const soFar = t.split.newestPreview(t.lastPreviewAt);
        if (soFar?.preview && this.tracked.get(t.jobId) === t) {
          const file = join(this.deps.previewsDir, t.jobId, `${soFar.frame}.png`);
          await clients.bucket.download(soFar.preview, file);
          t.lastPreviewAt = soFar.at;
          repo.update(t.jobId, { lastFrame: file });
        }
      }
      if (final) t.markersFinal = true;
      // Samples of the frames rendering now: only while chunks run.
      if (!final && counts.running > 0) await this.readLive(t, clients.bucket);
    }
    if (!render || TERMINAL.has(render.status) || counts.running === 0) t.live.clear();
    // Canceled meanwhile: nothing more is downloaded or written for it.
    const following = () => this.tracked.get(t.jobId) === t;
    if (!following()) return;
    // Results: downloaded as publish uploads them.
    const publishing = publish && (publish.status === 'RUNNING' || TERMINAL.has(publish.status));
    if (publishing || render?.status === 'FAILED' || copy?.status === 'FAILED') {
      await this.downloadOutputs(t, clients.bucket, job.output, following);
      if (!following()) return;
    }

    // Stages and state.
    const stages: Partial<Record<keyof Stages, StageState>> = {
      copy: stageState(copy),
      render: stageState(render, counts),
      publish: stageState(publish),
    };
    if (publish?.status === 'FAILED' && publish.statusReason === 'Dependent Job failed')
      stages.publish = 'skipped';
    if (render?.status === 'FAILED' && copy?.status === 'FAILED') stages.render = 'skipped';
    let state: JobState = 'copying';
    if (stages.publish === 'running') state = 'publishing';
    else if (stages.render === 'running' || stages.copy === 'done') state = 'rendering';
    let message: string;
    const framesDone = repo.frames(t.jobId).filter((f) => f.state === 'done').length;
    if (
      stages.render === 'running' ||
      (stages.copy === 'done' && !TERMINAL.has(render?.status ?? 'SUBMITTED'))
    ) {
      message =
        `chunks: ${counts.running} running, ${counts.queued} queued, ${counts.done} done` +
        (counts.failed ? `, ${counts.failed} failed` : '') +
        ` · frames ${framesDone}/${job.framesTotal}`;
      const parts = t.split?.text(
        repo
          .frames(t.jobId)
          .filter((f) => f.state === 'pending')
          .map((f) => f.frame),
        [...t.live.values()].flatMap((entry) => (entry.report ? [entry.report] : [])),
      );
      if (parts) message += ` · ${parts}`;
    } else if (stages.publish === 'running') {
      message = `publishing frames (${t.downloaded.size} downloaded)`;
    } else if (copy && copy.status !== 'SUCCEEDED' && copy.status !== 'FAILED') {
      message =
        copy.status === 'RUNNING' || copy.status === 'STARTING'
          ? 'copying the project to the farm'
          : `copy is ${copy.status}`;
    } else if (isOutageMessage(job.message)) {
      message = t.messageBeforeOutage ?? 'following the job on AWS Batch';
    } else {
      message = job.message;
    }
    for (const stage of ['copy', 'render', 'publish'] as const) {
      const since = t.runnableSince[stage];
      if (since !== undefined && now - since >= (this.deps.runnableWarnMs ?? 600_000)) {
        message = runnableExplanation(
          stage,
          stage === 'render' ? (row.renderQueue ?? '') : row.farm.queues.transfer,
          now - since,
        );
        break;
      }
    }

    // Progress and ETA from finished frame times and the samples of the frames rendering now (each
    // running on at its own rate until the next report), over the chunks rendering at once.
    const frameRows = repo.frames(t.jobId);
    const pendingFrames = new Set(frameRows.filter((f) => f.state === 'pending').map((f) => f.frame));
    const nowLive = this.now();
    const reports = [...t.live.values()].filter(
      (entry): entry is typeof entry & { report: ChunkLive } =>
        entry.report !== undefined &&
        pendingFrames.has(entry.report.frame) &&
        nowLive - entry.readAt <= LIVE_STALE_MS,
    );
    const frameSeconds = [...t.frameSeconds.values()];
    const framesFinished = frameRows.length - pendingFrames.size;
    repo.setLive(t.jobId, () => {
      const at = this.now();
      return estimateJob({
        framesTotal: job.framesTotal,
        framesFinished,
        frameSeconds,
        inFlight: reports.map((entry) => inFlightFromReport(entry.report, (at - entry.readAt) / 1000)),
        parallel: counts.running,
      });
    });

    // The end: publish finished, or a stage failed and the stack's rule published what there was.
    const failedStage =
      copy?.status === 'FAILED' ? 'copy' : render?.status === 'FAILED' ? 'render' : undefined;
    if (publish?.status === 'SUCCEEDED' || failedStage || publish?.status === 'FAILED') {
      const result = await clients.bucket.getJson<JobResult>(jobKeys(t.jobId).result);
      if (!following()) return;
      if (result && result.state !== 'canceled') {
        await this.downloadOutputs(t, clients.bucket, job.output, following);
        if (!following()) return;
        this.finish(t, row, result, { copy, render, publish });
        return;
      }
      t.renderFailedAt ??= now;
      const timeout = this.deps.failurePublishTimeoutMs ?? 30 * 60_000;
      if (
        publish?.status === 'SUCCEEDED' ||
        (publish?.status === 'FAILED' && !failedStage) ||
        now - t.renderFailedAt > timeout
      ) {
        this.finish(t, row, undefined, { copy, render, publish });
        return;
      }
      message = `${failedStage ?? 'publish'} failed: ${failureReason((failedStage ? t.info[failedStage] : publish)!)}; waiting for the farm to publish what was rendered`;
      state = 'publishing';
    }
    for (const [stage, value] of Object.entries(stages) as Array<[keyof Stages, StageState]>) {
      if (job.stages[stage] !== value) repo.update(t.jobId, { stage: [stage, value] });
    }
    const updated =
      job.state !== state || job.message !== message
        ? repo.update(t.jobId, { state, message })
        : repo.get(t.jobId)!;
    const snapshot = JSON.stringify({ ...updated, updatedAt: '' });
    if (snapshot !== t.lastSnapshot) {
      t.lastSnapshot = snapshot;
      if (job.message !== message) this.say(t.jobId, message);
      this.emit(updated);
    }
  }

  private async readMarkers(t: Tracked, bucket: IBucket): Promise<void> {
    const { repo } = this.deps;
    const keys = jobKeys(t.jobId);
    const listed = await bucket.list(keys.framesPrefix);
    let newest: FrameMarker | undefined;
    for (const object of listed) {
      if (t.markerEtags.get(object.key) === object.etag) continue;
      const marker = await bucket.getJson<FrameMarker>(object.key);
      t.markerEtags.set(object.key, object.etag);
      if (!marker) continue;
      if (marker.state === 'done') {
        if (marker.seconds !== undefined) t.frameSeconds.set(marker.frame, marker.seconds);
        if (marker.file) t.frameFiles.set(marker.frame, marker.file);
        repo.setFrame(
          t.jobId,
          marker.frame,
          'done',
          marker.seconds !== undefined ? { seconds: marker.seconds } : {},
        );
        if (marker.preview && marker.at > t.lastPreviewAt && (!newest || marker.at > newest.at))
          newest = marker;
      } else {
        repo.setFrame(t.jobId, marker.frame, 'failed', { message: marker.message ?? 'failed' });
        this.say(t.jobId, `frame ${marker.frame} failed (chunk ${marker.chunk}): ${marker.message ?? ''}`);
      }
    }
    if (newest?.preview && this.tracked.get(t.jobId) === t) {
      const file = join(this.deps.previewsDir, t.jobId, `${newest.frame}.png`);
      await bucket.download(newest.preview, file);
      t.lastPreviewAt = newest.at;
      repo.update(t.jobId, { lastFrame: file });
    }
  }

  /**
   * The chunks' live reports: one listing of progress/live/, then the reports that changed (by ETag),
   * at most MAX_LIVE_READS_PER_POLL, those read longest ago first.
   */
  private async readLive(t: Tracked, bucket: IBucket): Promise<void> {
    const listed = await bucket.list(jobKeys(t.jobId).livePrefix);
    const present = new Set(listed.map((object) => object.key));
    for (const key of t.live.keys()) if (!present.has(key)) t.live.delete(key);
    const lastRead = (key: string) => t.live.get(key)?.readAt ?? -Infinity;
    const changed = listed
      .filter((object) => t.live.get(object.key)?.etag !== object.etag)
      .sort((a, b) => lastRead(a.key) - lastRead(b.key))
      .slice(0, MAX_LIVE_READS_PER_POLL);
    for (const object of changed) {
      if (this.tracked.get(t.jobId) !== t) return; // canceled meanwhile
      const report = await bucket.getJson<ChunkLive>(object.key);
      t.live.set(object.key, {
        etag: object.etag,
        readAt: this.now(),
        report: report?.version === 1 ? report : undefined,
      });
    }
  }

  /** Downloads every published frame not yet in the output folder (temporary name, then rename). */
  private async downloadOutputs(
    t: Tracked,
    bucket: IBucket,
    outputDir: string,
    wanted: () => boolean = () => true,
  ): Promise<{ downloaded: number; bytes: number }> {
    const keys = jobKeys(t.jobId);
    let downloaded = 0;
    let bytes = 0;
    const objects = await bucket.list(keys.outputPrefix);
    if (!t.swept) {
      // A daemon killed mid-download left `.NAME.xxxxxxxx.part` beside NAME; nothing of this daemon
      // downloads into the folder yet, so whatever matches is stale.
      for (const object of objects) {
        const file = basename(object.key);
        if (!file.startsWith('.')) await removePartialMoves(join(outputDir, file));
      }
      t.swept = true;
    }
    for (const object of objects) {
      if (!wanted()) break; // canceled meanwhile
      if (t.downloaded.get(object.key) === object.size) continue;
      const file = basename(object.key);
      if (file.startsWith('.')) continue;
      const dest = join(outputDir, file);
      const present = await stat(dest).then(
        (s) => s.size,
        () => -1,
      );
      if (present !== object.size) {
        await bucket.download(object.key, dest);
        downloaded += 1;
        bytes += object.size;
      }
      t.downloaded.set(object.key, object.size);
      const frame = [...t.frameFiles.entries()].find(([, name]) => name === file)?.[0];
      if (frame !== undefined) {
        this.deps.repo.setFrame(t.jobId, frame, 'done', { path: dest });
        this.deps.repo.update(t.jobId, { lastFrame: dest });
      }
    }
    return { downloaded, bytes };
  }

  private finish(
    t: Tracked,
    row: AwsJobRow,
    result: JobResult | undefined,
    info: Partial<Record<'copy' | 'render' | 'publish', BatchJobInfo>>,
  ): void {
    const { repo } = this.deps;
    if (this.deps.store.get(t.jobId)?.canceledAt) return; // the cancel won: finishCancel ends it
    const job = repo.get(t.jobId)!;
    const outputDir = job.output;
    for (const ok of result?.ok ?? []) {
      repo.setFrame(t.jobId, ok.frame, 'done', { path: join(outputDir, ok.file) });
    }
    for (const failed of result?.failed ?? [])
      repo.setFrame(t.jobId, failed.frame, 'failed', { message: failed.message });
    for (const frame of result?.missing ?? [])
      repo.setFrame(t.jobId, frame, 'failed', { message: 'not rendered' });
    const lastOk = result?.ok.at(-1);
    if (lastOk) repo.update(t.jobId, { lastFrame: join(outputDir, lastOk.file) });
    // After a failure the stack's rule published: its job is the job's publish from now on, so its
    // cost is counted and its log is the publish stage's.
    const publishedBy = result?.publishBatchJobId;
    if (publishedBy && publishedBy !== row.batchIds.publish)
      this.deps.store.setBatchId(t.jobId, 'publish', publishedBy);
    repo.setLive(t.jobId, undefined);
    this.deps.store.setFinished(t.jobId);
    this.tracked.delete(t.jobId);
    void rm(join(this.deps.previewsDir, t.jobId), { recursive: true, force: true });

    const stageStates: Array<[keyof Stages, StageState]> = [
      ['copy', stageState(info.copy)],
      ['render', info.copy?.status === 'FAILED' ? 'skipped' : stageState(info.render)],
      ['publish', result ? 'done' : 'failed'],
    ];
    for (const stage of stageStates) repo.update(t.jobId, { stage });
    const mailNote = result?.mail?.error ? `; the notification mail failed: ${result.mail.error}` : '';
    if (result?.stopped) {
      const message =
        `stopped: ${result.stopped}; the ${result.ok.length} finished of ${job.framesTotal} frames ` +
        `were published to ${outputDir}${mailNote}`;
      this.say(t.jobId, message);
      this.emit(
        repo.update(t.jobId, { state: 'failed', message, error: { code: 'BUDGET_REACHED', message } }),
      );
      return;
    }
    if (result?.state === 'succeeded') {
      const message = `${result.ok.length} frames in ${outputDir}${mailNote}`;
      this.say(t.jobId, `done: ${message}`);
      this.emit(repo.update(t.jobId, { state: 'done', message, error: null }));
      return;
    }
    let message: string;
    let code: 'FRAMES_FAILED' | 'AWS_ERROR' = 'FRAMES_FAILED';
    if (info.copy?.status === 'FAILED') {
      message = `copy failed: ${failureReason(info.copy)} (see skyfarm logs ${t.jobId})`;
      code = 'AWS_ERROR';
    } else if (result) {
      const bad = [...result.failed.map((f) => f.frame), ...result.missing];
      message =
        `${bad.length} of ${job.framesTotal} frames failed (${formatFrameList(bad, { maxParts: 10 })})` +
        (result.reason ? `: ${result.reason}` : '');
    } else if (info.render?.status === 'FAILED') {
      message = `render failed: ${failureReason(info.render)}; no result was published (is the stack's publish-after-failure rule deployed?)`;
    } else if (info.publish?.status === 'SUCCEEDED') {
      // Publish exited 0 yet left no result (written elsewhere, or removed): say what is missing,
      // what is known, and where publish's own output is.
      const downloaded = repo.frames(t.jobId).filter((f) => f.state === 'done').length;
      message =
        `publish succeeded but its result is missing: s3://${row.farm.bucket}/${jobKeys(t.jobId).result} ` +
        `does not exist, so which frames were published is unknown (${downloaded} of ${job.framesTotal} ` +
        `frames are in ${outputDir}). See \`skyfarm logs ${t.jobId}\` and the publish job's log ` +
        `(${publishLog(row.farm.logGroup, info.publish)})`;
      code = 'AWS_ERROR';
    } else {
      message =
        `publish failed: ${info.publish ? failureReason(info.publish) : 'unknown'}` +
        ` (see \`skyfarm logs ${t.jobId}\`` +
        (info.publish ? ` and the publish job's log: ${publishLog(row.farm.logGroup, info.publish)})` : ')');
      code = 'AWS_ERROR';
    }
    message += mailNote;
    this.say(t.jobId, message);
    this.emit(repo.update(t.jobId, { state: 'failed', message, error: { code, message } }));
  }

  // -----------------------------------------------------------------------------------------------
  // Cancel, download, logs

  /**
   * Cancels. The cancel is committed first (aws_jobs.canceled_at), then acted on by finishCancel —
   * the same step a restarted daemon runs for a job whose cancel was recorded but not finished. While
   * AWS does not answer, the job is marked canceled at once ("canceled; AWS unreachable … — the Batch
   * jobs will be terminated when it answers"), nothing more is downloaded, and the Batch jobs are
   * terminated once AWS answers (also by the next daemon, if this one stops first).
   */
  async cancel(jobId: string): Promise<void> {
    const { store } = this.deps;
    const row = store.get(jobId);
    if (!row) return;
    if (!row.canceledAt) {
      store.setCanceled(jobId);
      this.say(jobId, 'cancel recorded: stopping the job on AWS');
    }
    this.tracked.delete(jobId); // no more polls, markers or downloads for it
    const starting = this.starting.get(jobId);
    if (starting) {
      starting.controller.abort(new SkyfarmError('CANCELED', 'canceled'));
      await starting.done;
    }
    this.tracked.delete(jobId);
    await this.finishCancel(jobId).announced;
  }

  /** Stops a job at its budget (budget-stop.ts): its finished frames are published, then it fails. */
  async stopForBudget(jobId: string, reason: string): Promise<void> {
    const row = this.deps.store.get(jobId);
    if (!row) return;
    await stopAtBudget(row, this.deps.clients(row.farm), reason, (line) => this.say(jobId, line));
  }

  /** AWS jobs whose cancel was recorded but not yet carried out on AWS (a restarted daemon finishes them). */
  pendingCancels(): string[] {
    return this.deps.store.pendingCancels();
  }

  /**
   * Carries out a recorded cancel: cancel.json, TerminateJob for every unfinished stage, a cleanup
   * publish when the stack's rule will not run one, then the job ends `canceled` (once). Every step is
   * safe to repeat. Retried with back-off while AWS is unreachable; `announced` resolves once the job
   * shows canceled (at the end, or as soon as AWS failed to answer or took longer than cancelAnswerMs).
   * One run per job at a time: a second call joins the first.
   */
  private finishCancel(jobId: string): { done: Promise<void>; announced: Promise<void> } {
    const existing = this.canceling.get(jobId);
    if (existing) return existing;
    let announce: () => void = () => undefined;
    const announced = new Promise<void>((resolve) => (announce = resolve));
    const controller = new AbortController();
    const done = this.cancelLoop(jobId, controller.signal, announce)
      .catch((error: unknown) => this.deps.log.error({ err: error, jobId }, 'finishing a cancel failed'))
      .finally(() => {
        this.canceling.delete(jobId);
        announce();
      });
    const entry = { controller, done, announced };
    this.canceling.set(jobId, entry);
    return entry;
  }

  private async cancelLoop(jobId: string, signal: AbortSignal, announce: () => void): Promise<void> {
    const { store } = this.deps;
    const backoff = this.newBackoff();
    let since: number | undefined;
    const answerMs = this.deps.cancelAnswerMs ?? 10_000;
    // AWS neither answers nor fails (a stalled connection): the user is not kept waiting.
    const slow = setTimeout(() => {
      this.markCanceled(jobId, `AWS has not answered for ${formatSpan(answerMs)}; ${CANCEL_PENDING_SUFFIX}`);
      announce();
    }, answerMs);
    slow.unref?.();
    // A request that hangs must not keep a shutting-down daemon waiting.
    const aborted = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
    );
    aborted.catch(() => undefined);
    try {
      for (;;) {
        try {
          await Promise.race([this.actOnCancel(jobId, signal), aborted]);
          break;
        } catch (error) {
          if (signal.aborted) return; // daemon shutting down: the next one finishes the cancel
          if (!isUnreachable(error)) {
            const message = `the Batch jobs could not be stopped: ${shortError(error)} (stop them in the AWS console)`;
            this.deps.log.warn({ jobId, error: shortError(error) }, 'cancel: AWS refused');
            if (!this.markCanceled(jobId, message)) this.say(jobId, message);
            store.setFinished(jobId);
            return;
          }
          since ??= this.now();
          const wait = backoff.fail();
          this.deps.log.warn({ jobId, error: shortError(error), retryInMs: wait }, 'cancel: AWS unreachable');
          if (backoff.failures === 1) {
            clearTimeout(slow);
            this.markCanceled(jobId, cancelPendingMessage(since, error));
            announce();
          }
          try {
            await sleep(wait, undefined, { signal, ref: false });
          } catch {
            return; // shutting down
          }
        }
      }
    } finally {
      clearTimeout(slow);
    }
    if (since !== undefined)
      this.say(jobId, `AWS answers again (it was unreachable for ${formatSpan(this.now() - since)})`);
    this.markCanceled(jobId, 'canceled');
    store.setFinished(jobId);
  }

  /** What a cancel does on AWS; each step is idempotent. */
  private async actOnCancel(jobId: string, signal: AbortSignal): Promise<void> {
    const { store } = this.deps;
    let row = store.get(jobId);
    if (!row) return;
    const clients = this.deps.clients(row.farm);
    if (row.preparedAt) {
      const request: CancelRequest = { jobId, reason: CANCEL_REASON, at: new Date().toISOString() };
      await clients.bucket.putJson(jobKeys(jobId).cancel, request);
      // A stage submitted but never stored (a kill between SubmitJob and the store, or a submission the
      // cancel cut short) is found by its name, so it is terminated too.
      for (const stage of ['copy', 'render', 'publish'] as const) {
        if (row.batchIds[stage] || row.prepareOnly) continue;
        signal.throwIfAborted();
        const queue = stage === 'render' ? row.renderQueue : row.farm.queues.transfer;
        if (!queue) continue;
        const found = (await clients.batch.findByName(queue, batchJobName(jobId, stage)))[0]?.jobId;
        if (found) store.setBatchId(jobId, stage, found);
      }
      row = store.get(jobId)!;
    }
    signal.throwIfAborted();
    const ids = Object.entries(row.batchIds) as Array<[TrackedStage, string]>;
    const infos = new Map(
      ids.length ? (await clients.batch.describe(ids.map(([, id]) => id))).map((i) => [i.jobId, i]) : [],
    );
    for (const [stage, id] of ids) {
      const info = infos.get(id);
      if (info && !TERMINAL.has(info.status)) {
        signal.throwIfAborted();
        await clients.batch.terminate(id, CANCEL_REASON);
        this.say(jobId, `terminated ${stage} job ${id}`);
      }
    }
    const render = row.batchIds.render ? infos.get(row.batchIds.render) : undefined;
    const ruleWillPublish = render !== undefined && render.status !== 'SUCCEEDED';
    if (row.batchIds.copy && !ruleWillPublish && !row.batchIds.cleanup) {
      signal.throwIfAborted();
      const name = batchJobName(jobId, 'cleanup');
      let cleanupId = (await clients.batch.findByName(row.farm.queues.transfer, name))[0]?.jobId;
      if (!cleanupId) {
        cleanupId = (
          await clients.batch.submit({
            name,
            queue: row.farm.queues.transfer,
            definition: row.farm.jobDefinitions.transfer,
            command: [WORKER, 'publish'],
            environment: stageEnvironment(jobId, row.farm),
            parameters: { skyfarmJobId: jobId, skyfarmStage: 'cleanup' },
            tags: { 'skyfarm:job': jobId, 'skyfarm:stage': 'cleanup' },
          })
        ).jobId;
        this.say(
          jobId,
          `submitted cleanup ${cleanupId} (publishes what exists and removes the working folder)`,
        );
      }
      store.setBatchId(jobId, 'cleanup', cleanupId);
    }
  }

  /**
   * The job ends `canceled` with `message` — once: a later call (AWS answered after all) only updates
   * the message. A job that had already ended otherwise is left alone. Returns whether it logged.
   */
  private markCanceled(jobId: string, message: string): boolean {
    const { repo } = this.deps;
    const job = repo.get(jobId);
    if (!job) return false;
    if (job.state === 'canceled') {
      if (job.message !== message) this.emit(repo.update(jobId, { message }));
      return false;
    }
    if (FINISHED_STATES.has(job.state)) return false;
    for (const stage of ['upload', 'copy', 'render', 'publish'] as const) {
      if (job.stages[stage] === 'running' || job.stages[stage] === 'pending')
        repo.update(jobId, { stage: [stage, 'canceled'] });
    }
    repo.setLive(jobId, undefined);
    void rm(join(this.deps.previewsDir, jobId), { recursive: true, force: true });
    this.say(jobId, message === 'canceled' ? message : `canceled: ${message}`);
    this.emit(repo.update(jobId, { state: 'canceled', message }));
    return true;
  }

  /** `skyfarm download`: every published frame not yet in `output` (default: the job's output folder). */
  async download(
    jobId: string,
    output?: string,
  ): Promise<{ output: string; downloaded: number; present: number; bytes: number }> {
    const row = this.deps.store.get(jobId);
    const job = this.deps.repo.get(jobId);
    if (!row || !job)
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        `${jobId} is not an AWS job: its frames are already in ${job?.output ?? 'its output folder'}`,
      );
    const dir = output ?? job.output;
    await mkdir(dir, { recursive: true });
    const t: Tracked = this.tracked.get(jobId) ?? {
      jobId,
      info: {},
      markerEtags: new Map(),
      live: new Map(),
      frameSeconds: new Map(),
      frameFiles: new Map(),
      lastPreviewAt: '',
      downloaded: new Map(),
      runnableSince: {},
    };
    // No sweep of temporary files here: the poll may be downloading into the same folder right now.
    const scratch = { ...t, downloaded: new Map<string, number>(), swept: true };
    const { downloaded, bytes } = await this.downloadOutputs(
      scratch,
      this.deps.clients(row.farm).bucket,
      dir,
    );
    return { output: dir, downloaded, present: scratch.downloaded.size, bytes };
  }

  /** The CloudWatch log of one render chunk (its latest attempt). */
  async chunkLogs(jobId: string, chunk: number, tail = 1000): Promise<string[]> {
    const row = this.deps.store.get(jobId);
    if (!row)
      throw new SkyfarmError('BAD_ARGUMENT', `${jobId} is not an AWS job; --chunk applies to AWS jobs`);
    const renderId = row.batchIds.render;
    if (!renderId) throw new SkyfarmError('BAD_ARGUMENT', `${jobId} has no render job yet`);
    const chunks = row.chunks ?? 1;
    if (chunk >= chunks)
      throw new SkyfarmError('BAD_ARGUMENT', `${jobId} has ${chunks} chunks (0–${chunks - 1})`);
    const clients = this.deps.clients(row.farm);
    const id = chunks >= 2 ? `${renderId}:${chunk}` : renderId;
    const [info] = await clients.batch.describe([id]);
    const stream =
      [...(info?.attempts ?? [])].reverse().find((a) => a.logStreamName)?.logStreamName ??
      info?.logStreamName;
    if (!info || !stream) {
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        `chunk ${chunk} has not started yet (${info?.status ?? 'unknown'}): no log`,
      );
    }
    return clients.logs.read(row.farm.logGroup, stream, tail);
  }

  /** Stops following (daemon shutdown); Batch keeps running and the next daemon re-attaches. */
  async stopAll(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const entry of [...this.starting.values(), ...this.canceling.values()])
      entry.controller.abort(new Error('daemon shutting down'));
    await Promise.all([...this.starting.values(), ...this.canceling.values()].map((e) => e.done));
    await this.polling;
    this.tracked.clear();
  }
}

/** Chunk size for AWS: the requested one, raised so the array stays within 10,000 children. */
export function awsChunkSize(frames: number, requested: number): number {
  return effectiveChunkSize(frames, requested);
}

/** Where a Batch job's output is: its CloudWatch log stream (or its name and id when Batch gave none). */
function publishLog(logGroup: string, info: BatchJobInfo): string {
  const stream = info.attempts.at(-1)?.logStreamName ?? info.logStreamName;
  return stream
    ? `CloudWatch ${logGroup}, stream ${stream}`
    : `Batch job ${info.name} (${info.jobId}) in CloudWatch ${logGroup}`;
}
