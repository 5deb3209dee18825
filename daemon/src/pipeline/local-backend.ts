// The local backend: the three pipeline stages (copy → render → publish, after upload) as child
// processes on this machine. The "object store" is a folder under the state dir, the working folder
// another. Every state change is written to SQLite before it is announced or acted on, and every stage
// is idempotent, so a restarted daemon resumes a job where it stopped without re-rendering frames.
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import type { Job, JobState, Stages, StageState } from '../../../protocol/generated/protocol.js';
import { SkyfarmError, toErrorInfo } from '../errors.js';
import type { Notify } from '../notify.js';
import { FINISHED_STATES, type JobRepo, type LiveProgress } from '../jobs/job-repo.js';
import { estimateJob, FrameTracker, inFlightFromReport } from '../jobs/estimate.js';
import type { JobLogs } from '../jobs/job-log.js';
import type { JobSpec } from '../jobs/job-spec.js';
import type { IObjectStore } from '../store/object-store.js';
import { uploadProject, writeManifest, type UploadRequest, type UploadResult } from '../project/upload.js';
import { pathsText } from '../project/missing.js';
import { envInto, materializeProject, remapsInto } from '../project/materialize.js';
import { jobManifestKey, type Manifest } from '../project/manifest.js';
import { chunkFrames, formatFrameList } from '../render/frames.js';
import { renderChunk } from '../render/blender.js';
import type { WarmBlender } from '../render/warm-blender.js';
import type { BlenderEvent } from '../render/progress.js';
import type { Semaphore } from '../util/semaphore.js';
import { moveFileAtomic, removePartialMoves } from '../util/files.js';
import { unlink } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';

export interface LocalBackendDeps {
  repo: JobRepo;
  logs: JobLogs;
  store: IObjectStore;
  workDir: string;
  notify: Notify;
  log: Logger;
  renderSlots: Semaphore;
  findBlender: () => Promise<{ path: string }>;
  /** The upload stage with the daemon's hash cache and known-blob record (default: plain uploadProject). */
  uploadProject?: (request: UploadRequest) => Promise<UploadResult>;
  /** Blender started while a job is probed and uploaded, so its first chunk does not wait for a start. */
  warm?: WarmBlender;
  /** Monotonic clock in ms for in-frame progress (default performance.now). */
  now?: () => number;
  /**
   * While a frame renders, job.update goes out at most this often for its samples, and at least this
   * often while the estimate runs on between Blender's reports (default 1000 ms).
   */
  liveUpdateMs?: number;
}

export class LocalBackend {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  /** Submissions between prewarm() and submitEnded(): the warm Blender is kept for them. */
  private submitting = 0;

  constructor(private readonly deps: LocalBackendDeps) {}

  /** Starts (or resumes) a job in the background. */
  start(jobId: string): void {
    if (this.running.has(jobId)) return;
    const controller = new AbortController();
    const done = this.run(jobId, controller.signal)
      .catch((error: unknown) => this.deps.log.error({ err: error, jobId }, 'job runner crashed'))
      .finally(() => {
        this.running.delete(jobId);
        this.discardWarmIfIdle();
      });
    this.running.set(jobId, { controller, done });
  }

  /**
   * A local job is about to be submitted: start its Blender now, while the scene is probed and
   * uploaded. Never fails; the render starts a Blender itself when none is ready.
   */
  prewarm(): void {
    this.submitting++;
    const warm = this.deps.warm;
    if (!warm) return;
    this.deps.findBlender().then(
      (blender) => {
        if (this.submitting > 0 || this.running.size > 0) warm.prepare(blender.path);
      },
      () => undefined, // the submit reports a missing Blender itself
    );
  }

  /** The submission that called prewarm() was accepted (its job started) or refused. */
  submitEnded(): void {
    this.submitting = Math.max(0, this.submitting - 1);
    this.discardWarmIfIdle();
  }

  /** A Blender started ahead that nothing will take (no job running, none being submitted) stops. */
  private discardWarmIfIdle(): void {
    if (this.submitting === 0 && this.running.size === 0) this.deps.warm?.discard();
  }

  isRunning(jobId: string): boolean {
    return this.running.has(jobId);
  }

  /**
   * Stops the job's Blender processes and marks it canceled; resolves once it has stopped. The cancel
   * is committed first: a daemon killed before the job is marked canceled finishes it on restart.
   */
  async cancel(jobId: string): Promise<void> {
    this.deps.repo.recordCancel(jobId);
    this.deps.logs.append(jobId, '[skyfarm] cancel recorded: stopping Blender');
    const entry = this.running.get(jobId);
    if (entry) {
      entry.controller.abort(new SkyfarmError('CANCELED', 'canceled by the user'));
      await entry.done;
    } else {
      await this.finishCanceled(jobId);
    }
  }

  /** Waits for every running job to stop (daemon shutdown: jobs are resumed on next start). */
  async stopAll(): Promise<void> {
    this.deps.warm?.discard();
    for (const entry of this.running.values()) entry.controller.abort(new Error('daemon shutting down'));
    await Promise.all([...this.running.values()].map((entry) => entry.done));
  }

  private emit(job: Job): Job {
    this.deps.notify('job.update', job);
    return job;
  }

  private transition(
    jobId: string,
    state: JobState,
    stage: [keyof Stages, StageState],
    message: string,
  ): void {
    this.deps.logs.append(jobId, `[skyfarm] ${message}`);
    this.emit(this.deps.repo.update(jobId, { state, stage, message }));
  }

  private jobDir(jobId: string): string {
    return join(this.deps.workDir, jobId);
  }

  private async run(jobId: string, signal: AbortSignal): Promise<void> {
    const { repo } = this.deps;
    const spec = repo.spec(jobId);
    const job = repo.get(jobId);
    if (!spec || !job) return;
    let stage: keyof Stages = 'upload';
    await this.stopLeftoverBlender(jobId);
    if (this.deps.repo.cancelRecorded(jobId)) {
      // Canceled by the user before the daemon stopped: finish the cancel, do not resume the render.
      await this.finishCanceled(jobId);
      return;
    }
    try {
      stage = 'upload';
      const manifest = await this.upload(spec, job.stages.upload === 'done', signal);
      stage = 'copy';
      const projectBlend = await this.copy(spec, manifest, signal);
      stage = 'render';
      await this.render(spec, projectBlend, manifest, signal);
      stage = 'publish';
      await this.publish(spec);
    } catch (error) {
      if (signal.aborted && signal.reason instanceof SkyfarmError && signal.reason.code === 'CANCELED') {
        await this.finishCanceled(jobId);
        return;
      }
      if (signal.aborted) return; // daemon shutting down: the job resumes on the next start
      const info = toErrorInfo(error);
      this.deps.logs.append(jobId, `[skyfarm] ${stage} failed: ${info.message}`);
      this.emit(
        repo.update(jobId, { state: 'failed', stage: [stage, 'failed'], message: info.message, error: info }),
      );
      await rm(this.jobDir(jobId), { recursive: true, force: true });
    }
  }

  /**
   * Blender runs in its own process group, so it outlives a daemon that was killed. Before resuming a
   * job, stop what the previous daemon started for it, so no frame renders twice at once.
   */
  private async stopLeftoverBlender(jobId: string): Promise<void> {
    const alive = ({ pid, mark }: { pid: number; mark: string }) => {
      try {
        process.kill(pid, 0);
      } catch {
        return false;
      }
      // Where /proc exists, make sure the pid still belongs to this job's Blender (pids get reused).
      if (!existsSync('/proc')) return true;
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(mark);
      } catch {
        return false;
      }
    };
    const leftovers = this.deps.repo.processes(jobId).filter(alive);
    for (const { pid } of leftovers) {
      this.deps.logs.append(jobId, `[skyfarm] stopping Blender ${pid} left over from the previous daemon`);
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 5000;
    while (leftovers.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.deps.repo.forgetProcesses(jobId);
  }

  /**
   * Ends a canceled job (Blender has stopped): the working folder goes first, then the job is marked
   * canceled, once. Safe to repeat after a kill at any point.
   */
  private async finishCanceled(jobId: string): Promise<void> {
    await rm(this.jobDir(jobId), { recursive: true, force: true });
    const job = this.deps.repo.get(jobId);
    if (!job) return;
    if (!FINISHED_STATES.has(job.state)) {
      for (const stage of ['upload', 'copy', 'render', 'publish'] as const) {
        if (job.stages[stage] === 'running' || job.stages[stage] === 'pending') {
          this.deps.repo.update(jobId, { stage: [stage, 'canceled'] });
        }
      }
      this.deps.repo.setLive(jobId, undefined);
      this.deps.logs.append(jobId, '[skyfarm] canceled');
      this.emit(this.deps.repo.update(jobId, { state: 'canceled', message: 'canceled' }));
    }
    this.deps.repo.forgetCancel(jobId);
  }

  private async upload(spec: JobSpec, alreadyDone: boolean, signal: AbortSignal): Promise<Manifest> {
    const manifestKey = jobManifestKey(spec.jobId);
    if (alreadyDone) {
      const manifest = await this.deps.store.getJson<Manifest>(manifestKey);
      if (manifest) return manifest;
    }
    this.transition(spec.jobId, 'uploading', ['upload', 'running'], 'collecting the scene and its files');
    const upload = this.deps.uploadProject ?? uploadProject;
    const result = await upload({
      jobId: spec.jobId,
      blendFile: spec.blendFile,
      sourceBlendFile: spec.sourceBlendFile,
      projectRoot: spec.projectRoot,
      dependencies: spec.dependencies,
      strict: false,
      store: this.deps.store,
      signal,
      onProgress: (progress) => this.deps.notify('upload.progress', progress),
    });
    // Manifest and job.json last: a job never references a blob that is not in the store.
    await writeManifest(this.deps.store, result, spec.jobId);
    await this.deps.store.putJson(`jobs/${spec.jobId}/job.json`, { ...spec, manifest: manifestKey });
    if (spec.temporaryBlend) await unlink(spec.blendFile).catch(() => undefined);
    const missingNote = result.missing.length
      ? `; ${result.missing.length} missing: ${pathsText(result.missing, 3)}`
      : '';
    // The job's message names the first few; the log names every one (a single write for 100,000).
    if (result.missing.length)
      this.deps.logs.append(spec.jobId, result.missing.map((file) => `[skyfarm] missing ${file}`).join('\n'));
    for (const [from, to] of Object.entries(result.manifest.remaps)) {
      this.deps.logs.append(spec.jobId, `[skyfarm] remap ${from} → ${to === '.' ? '(project root)' : to}`);
    }
    this.transition(
      spec.jobId,
      'copying',
      ['upload', 'done'],
      `stored ${result.files} files (${result.bytesUploaded} new bytes)${missingNote}`,
    );
    return result.manifest;
  }

  private async copy(spec: JobSpec, manifest: Manifest, signal: AbortSignal): Promise<string> {
    this.transition(spec.jobId, 'copying', ['copy', 'running'], 'preparing the working folder');
    const projectDir = join(this.jobDir(spec.jobId), 'project');
    const blend = await materializeProject(this.deps.store, manifest, projectDir, signal);
    await mkdir(join(this.jobDir(spec.jobId), 'output'), { recursive: true });
    this.emit(this.deps.repo.update(spec.jobId, { stage: ['copy', 'done'] }));
    return blend;
  }

  private async render(
    spec: JobSpec,
    projectBlend: string,
    manifest: Manifest,
    signal: AbortSignal,
  ): Promise<void> {
    const { repo, logs } = this.deps;
    const outputDir = join(this.jobDir(spec.jobId), 'output');
    await this.settleInterruptedMoves(spec.jobId, outputDir);
    const pending = repo
      .frames(spec.jobId)
      .filter((f) => f.state === 'pending')
      .map((f) => f.frame);
    this.transition(spec.jobId, 'rendering', ['render', 'running'], `rendering ${pending.length} frames`);
    const blender = await this.deps.findBlender();
    const projectDir = join(this.jobDir(spec.jobId), 'project');
    const remaps = remapsInto(manifest, projectDir);
    const renderEnv = envInto(manifest, projectDir);
    const frameTimes: number[] = repo
      .frames(spec.jobId)
      .flatMap((f) => (f.state === 'done' && f.seconds !== null ? [f.seconds] : []));

    // In-frame progress: one tracker per chunk holding a render slot (its Blender renders one frame
    // at a time); the estimate is taken whenever a snapshot of the job is.
    const now = this.deps.now ?? (() => performance.now());
    const liveUpdateMs = this.deps.liveUpdateMs ?? 1000;
    const trackers = new Set<FrameTracker>();
    const estimate = (): LiveProgress => {
      const frames = repo.frames(spec.jobId);
      const at = now();
      return estimateJob({
        framesTotal: frames.length,
        framesFinished: frames.filter((f) => f.state !== 'pending').length,
        frameSeconds: frameTimes,
        inFlight: [...trackers].flatMap((tracker) => {
          const report = tracker.report(at);
          return report ? [inFlightFromReport(report)] : [];
        }),
        parallel: trackers.size,
      });
    };
    repo.setLive(spec.jobId, estimate);
    // What the last job.update showed (to 0.1 % and whole seconds), and when.
    const fingerprint = (job: Job) =>
      JSON.stringify([
        job.framesDone,
        job.framesFailed,
        Math.round(job.progress * 1000),
        job.etaSeconds === null ? null : Math.round(job.etaSeconds),
        job.live,
        job.message,
        job.lastFrame,
      ]);
    let sent = { at: -Infinity, text: '' };
    const send = (job: Job) => {
      sent = { at: now(), text: fingerprint(job) };
      this.emit(job);
    };
    /** job.update with the current estimate: at once (`force`), else when it changed and not too often. */
    const announce = (force: boolean) => {
      const job = repo.get(spec.jobId)!;
      if (!force && (now() - sent.at < liveUpdateMs || fingerprint(job) === sent.text)) return;
      send(job);
    };
    // Blender reports samples in bursts (Cycles in the background about every 30 s): the estimate runs
    // on between them, and Blender and the CLI see it move.
    const ticker = setInterval(() => {
      if ([...trackers].some((tracker) => tracker.frame !== null)) announce(false);
    }, liveUpdateMs);
    ticker.unref();

    const publishFrame = async (
      tracker: FrameTracker,
      frame: number,
      renderedPath: string,
      seconds: number | null,
    ) => {
      const finalPath = join(spec.outputDir, basename(renderedPath));
      // Where the frame goes is committed before it moves: a daemon killed between the move and the
      // commit below finds it there on resume (settleInterruptedMoves) instead of rendering it again.
      repo.setFrame(spec.jobId, frame, 'pending', { path: finalPath });
      await moveFileAtomic(renderedPath, finalPath);
      repo.setFrame(spec.jobId, frame, 'done', { path: finalPath, ...(seconds !== null ? { seconds } : {}) });
      if (seconds !== null) frameTimes.push(seconds);
      if (tracker.frame === frame) tracker.end();
      send(repo.update(spec.jobId, { lastFrame: finalPath, message: `frame ${frame} done` }));
    };

    const onEvent = (tracker: FrameTracker, event: BlenderEvent): Promise<void> | void => {
      switch (event.type) {
        case 'frameStart':
          tracker.start(event.frame, now());
          send(repo.update(spec.jobId, { message: `rendering frame ${event.frame}` }));
          return;
        case 'samples': {
          if (event.frame !== null && event.frame !== tracker.frame) return;
          const seen = tracker.samples(event.done, event.total, now());
          // The first samples with a rate give the first ETA: announced at once.
          if (seen !== 'ignored') announce(seen === 'first-rate');
          return;
        }
        case 'frameDone':
          return publishFrame(tracker, event.frame, event.path, event.seconds);
        case 'frameSkipped':
          return publishFrame(tracker, event.frame, event.path, null);
        case 'frameFailed':
          repo.setFrame(spec.jobId, event.frame, 'failed', { message: event.message });
          if (tracker.frame === event.frame) tracker.end();
          logs.append(spec.jobId, `[skyfarm] frame ${event.frame} failed: ${event.message}`);
          send(repo.update(spec.jobId, { message: `frame ${event.frame} failed: ${event.message}` }));
          return;
        default:
          return;
      }
    };

    const chunks = chunkFrames(pending, spec.chunkSize);
    await Promise.all(
      chunks.map(async (frames) => {
        const release = await this.deps.renderSlots.acquire(signal);
        const tracker = new FrameTracker();
        trackers.add(tracker);
        try {
          // Frame events are applied in order; publishing a frame (a file move) finishes before the next event.
          let queue: Promise<void> = Promise.resolve();
          const result = await renderChunk({
            blender: blender.path,
            blendFile: projectBlend,
            scene: spec.scene,
            frames,
            outputDir,
            filePattern: spec.filePattern,
            remaps,
            ...(Object.keys(renderEnv).length ? { env: { ...process.env, ...renderEnv } } : {}),
            signal,
            ...(this.deps.warm ? { warm: this.deps.warm } : {}),
            onEvent: (event) => {
              queue = queue.then(() => onEvent(tracker, event));
            },
            onLine: (line) => logs.append(spec.jobId, line),
            onSpawn: (pid, mark) => repo.recordProcess(spec.jobId, pid, mark),
          });
          await queue;
          signal.throwIfAborted();
          for (const failure of result.failed) {
            const row = repo.frames(spec.jobId).find((f) => f.frame === failure.frame);
            if (row?.state === 'pending')
              repo.setFrame(spec.jobId, failure.frame, 'failed', { message: failure.message });
          }
        } finally {
          trackers.delete(tracker);
          release();
        }
      }),
    ).finally(() => {
      clearInterval(ticker);
      repo.setLive(spec.jobId, undefined);
    });
    const failed = repo.frames(spec.jobId).filter((f) => f.state === 'failed');
    this.emit(repo.update(spec.jobId, { stage: ['render', failed.length ? 'failed' : 'done'] }));
  }

  /**
   * Frames a killed daemon was moving into the output folder (their destination is recorded, they are
   * not done yet): one that is there and no longer in the working folder did arrive, so it is done;
   * one still in the working folder is skipped by Blender and moved again. A copy across file systems
   * cut short leaves a temporary file beside the destination: removed.
   */
  private async settleInterruptedMoves(jobId: string, workOutput: string): Promise<void> {
    for (const frame of this.deps.repo.frames(jobId)) {
      if (frame.state !== 'pending' || frame.path === null) continue;
      await removePartialMoves(frame.path);
      if (!existsSync(join(workOutput, basename(frame.path))) && existsSync(frame.path)) {
        this.deps.repo.setFrame(jobId, frame.frame, 'done', { path: frame.path });
        this.deps.logs.append(jobId, `[skyfarm] frame ${frame.frame} was published before the restart`);
      }
    }
  }

  private async publish(spec: JobSpec): Promise<void> {
    const { repo } = this.deps;
    this.transition(spec.jobId, 'publishing', ['publish', 'running'], 'publishing frames');
    const frames = repo.frames(spec.jobId);
    const ok = frames.filter((f) => f.state === 'done');
    const failed = frames.filter((f) => f.state === 'failed');
    const missing = frames.filter((f) => f.state === 'pending');
    for (const frame of missing)
      repo.setFrame(spec.jobId, frame.frame, 'failed', { message: 'Blender did not render it' });
    await this.deps.store.putJson(`jobs/${spec.jobId}/result.json`, {
      jobId: spec.jobId,
      ok: ok.map((f) => ({ frame: f.frame, path: f.path })),
      failed: failed.map((f) => ({ frame: f.frame, message: f.message })),
      missing: missing.map((f) => f.frame),
    });
    await rm(this.jobDir(spec.jobId), { recursive: true, force: true });
    const bad = [...failed, ...missing];
    if (bad.length === 0) {
      this.deps.logs.append(spec.jobId, `[skyfarm] done: ${ok.length} frames in ${spec.outputDir}`);
      this.emit(
        repo.update(spec.jobId, {
          state: 'done',
          stage: ['publish', 'done'],
          message: `${ok.length} frames in ${spec.outputDir}`,
        }),
      );
      return;
    }
    const reason = failed[0]?.message ?? 'Blender did not render it';
    const message = `${bad.length} of ${frames.length} frames failed (${formatFrameList(bad.map((f) => f.frame))}): ${reason}`;
    this.deps.logs.append(spec.jobId, `[skyfarm] ${message}`);
    this.emit(
      repo.update(spec.jobId, {
        state: 'failed',
        stage: ['publish', 'done'],
        message,
        error: { code: 'FRAMES_FAILED', message },
      }),
    );
  }
}
