// Jobs as clients see them: submit (validate everything first, then create and start), list, get,
// cancel, logs. Backends do the work; this file decides what a request means.
import { randomBytes } from 'node:crypto';
import { basename, dirname, extname, resolve } from 'node:path';
import {
  LIMITS,
  type Job,
  type JobsListParams,
  type JobsListResult,
  type RenderSubmitParams,
  type RenderSubmitResult,
} from '../../../protocol/generated/protocol.js';
import { SkyfarmError } from '../errors.js';
import { pathsText } from '../project/missing.js';
import type { Notify } from '../notify.js';
import { parseFrameSpec } from '../render/frames.js';
import type { BlenderVersion, ProbeResult } from '../render/blender.js';
import { assertBlendFile, assertLocalBlenderReads, type BlendVersion } from './validate-blend.js';
import { ensureWritableDir, sceneOutput } from './output-dir.js';
import { FINISHED_STATES, type JobRepo } from './job-repo.js';
import type { JobLogs } from './job-log.js';
import type { JobSpec } from './job-spec.js';
import type { LocalBackend } from '../pipeline/local-backend.js';
import type { AwsWiring } from '../batch/wiring.js';
import { awsChunkSize } from '../batch/aws-backend.js';
import { assertSplitBackend, assertSplittable } from '../split/plan.js';

/** Jobs per jobs.list page when the client does not say. */
export const DEFAULT_LIST_LIMIT = 200;
export const DEFAULT_LOCAL_CHUNK_SIZE = 10;

export interface JobServiceDeps {
  repo: JobRepo;
  logs: JobLogs;
  notify: Notify;
  local: LocalBackend;
  findBlender: () => Promise<{ path: string; version?: BlenderVersion }>;
  probeBlend: (
    blender: string,
    file: string,
    scene?: string,
    options?: { remember?: boolean },
  ) => Promise<ProbeResult>;
  /**
   * Where Blender is (no version check): lets the probe start while findBlender's `--version` run is
   * still going, instead of one Blender start after the other.
   */
  blenderPath?: () => Promise<string | null>;
  /** The AWS backend (daemon/src/batch/); without it `--backend aws` is refused. */
  aws?: AwsWiring;
}

export function newJobId(): string {
  return `j_${randomBytes(6).toString('hex')}`;
}

export class JobService {
  constructor(private readonly deps: JobServiceDeps) {}

  async submit(params: RenderSubmitParams): Promise<RenderSubmitResult> {
    const blendFile = resolve(params.blendFile);
    const sourceBlendFile = resolve(params.sourceBlendFile ?? blendFile);
    const savedBy = await assertBlendFile(blendFile);
    const backend = params.backend ?? 'local';
    assertSplitBackend(params.split, backend);
    const split = params.split !== undefined && params.split > 1 ? params.split : undefined;
    if (backend === 'aws' && !this.deps.aws) {
      throw new SkyfarmError(
        'BACKEND_UNAVAILABLE',
        'the AWS backend needs a deployed stack (`skyfarm deploy`); render with --backend local meanwhile',
      );
    }
    // AWS: the image is chosen (the artist's Blender series unless --blender-version says) and a file
    // newer than it refused before anything is uploaded.
    const awsOptions =
      backend === 'aws'
        ? await this.deps.aws!.options(params.aws, {
            blendFile,
            savedBy,
            localBlender: async () => (await this.deps.findBlender()).version,
          })
        : undefined;
    // Check the frame spec's syntax before starting Blender: a typo should fail fast.
    const explicitFrames =
      params.frames !== undefined && params.frames.trim() !== '' ? parseFrameSpec(params.frames) : null;
    if (params.output !== undefined && params.output.trim() === '') {
      throw new SkyfarmError('OUTPUT_NOT_WRITABLE', 'the output folder is empty');
    }
    // A local render's Blender starts now, while the scene is probed and uploaded.
    if (!awsOptions) this.deps.local.prewarm();
    try {
      // The add-on's temporary copy is probed once and removed after its upload: not remembered.
      const probe = await this.probe(blendFile, params.scene, { remember: !params.temporaryBlend }, savedBy);
      const scene = probe.scene;
      if (!scene.hasCamera) {
        throw new SkyfarmError(
          'NO_CAMERA',
          `scene "${scene.name}" has no camera: add one or set the active camera`,
        );
      }
      if (scene.isMovie) {
        throw new SkyfarmError(
          'BAD_ARGUMENT',
          `scene "${scene.name}" writes a movie (${scene.fileFormat}); choose an image format (PNG, EXR) to render frames`,
        );
      }
      const frames =
        explicitFrames ?? parseFrameSpec(`${scene.frameStart}-${scene.frameEnd}x${scene.frameStep}`);
      const output = sceneOutput(scene, blendFile, sourceBlendFile);
      const outputDir = params.output ? resolve(params.output) : output.dir;
      await ensureWritableDir(outputDir);

      const dependencies = params.dependencies ?? probe.dependencies;
      const missingFiles = dependencies.filter((d) => d.missing).map((d) => d.path);
      if (params.strict && missingFiles.length > 0) {
        throw new SkyfarmError(
          'MISSING_DEPENDENCIES',
          `${missingFiles.length} file(s) the scene needs are missing (--strict): ${pathsText(missingFiles)}`,
        );
      }

      // A split job's child renders one part of its chunk's frames: one frame each unless asked.
      const chunkSize = split
        ? (params.chunkSize ?? 1)
        : awsOptions
          ? awsChunkSize(frames.length, params.chunkSize ?? DEFAULT_LOCAL_CHUNK_SIZE)
          : (params.chunkSize ?? DEFAULT_LOCAL_CHUNK_SIZE);
      const splitSamples = split ? assertSplittable(scene, split, frames.length, chunkSize) : 0;

      const jobId = newJobId();
      const spec: JobSpec = {
        jobId,
        backend,
        blendFile,
        sourceBlendFile,
        projectRoot: resolve(params.projectRoot ?? dirname(sourceBlendFile)),
        temporaryBlend: params.temporaryBlend ?? false,
        scene: scene.name,
        frames,
        framesSpec:
          params.frames?.trim() ||
          `${scene.frameStart}-${scene.frameEnd}${scene.frameStep > 1 ? `x${scene.frameStep}` : ''}`,
        chunkSize,
        ...(split ? { split: { parts: split, samples: splitSamples } } : {}),
        outputDir,
        filePattern: output.pattern,
        // The pattern is Blender's whole name; the extension is for readers of older job documents.
        fileExtension: scene.useFileExtension ? scene.fileExtension : '',
        dependencies,
        ...(params.aws ? { aws: params.aws } : {}),
      };
      const name =
        params.name?.trim() || `${basename(sourceBlendFile, extname(sourceBlendFile))} · ${scene.name}`;
      const job = this.deps.repo.create(spec, name);
      this.deps.logs.append(
        jobId,
        `[skyfarm] submitted ${sourceBlendFile} scene "${scene.name}" frames ${spec.framesSpec}`,
      );
      if (awsOptions) {
        const note = awsOptions.note ? ` (${awsOptions.note})` : '';
        this.deps.logs.append(
          jobId,
          `[skyfarm] the farm renders with Blender ${awsOptions.blenderVersion}${note}`,
        );
      }
      this.deps.notify('job.update', job);
      if (awsOptions) this.deps.aws!.backend.submit(spec, awsOptions);
      else this.deps.local.start(jobId);
      const missing = spec.dependencies.filter((d) => d.missing).map((d) => d.path);
      return missing.length ? { job, missing } : { job };
    } finally {
      if (!awsOptions) this.deps.local.submitEnded();
    }
  }

  /**
   * Checks Blender and probes the scene. A file whose header names the Blender that saved it is
   * refused (BLEND_TOO_NEW) before a Blender older than that starts on it; a file without a known
   * header is probed while Blender is checked, when Blender's path is known up front.
   */
  private async probe(
    blendFile: string,
    scene: string | undefined,
    options: { remember: boolean },
    savedBy: BlendVersion | null,
  ): Promise<ProbeResult> {
    const check = this.deps.findBlender();
    if (savedBy) {
      const blender = await check;
      assertLocalBlenderReads(blendFile, savedBy, blender);
      return this.deps.probeBlend(blender.path, blendFile, scene, options);
    }
    const early = this.deps.blenderPath ? await this.deps.blenderPath().catch(() => null) : null;
    if (!early) return this.deps.probeBlend((await check).path, blendFile, scene, options);
    const probing = this.deps.probeBlend(early, blendFile, scene, options);
    probing.catch(() => undefined); // the version check's error comes first
    const blender = await check;
    return blender.path === early ? probing : this.deps.probeBlend(blender.path, blendFile, scene, options);
  }

  list(params: JobsListParams = {}): JobsListResult {
    return this.deps.repo.list({
      limit: params.limit ?? DEFAULT_LIST_LIMIT,
      // Half the message limit leaves room for the envelope and for jobs near the size cap.
      maxBytes: LIMITS.maxMessageBytes / 2,
      before: params.before,
    });
  }

  get(jobId: string): Job {
    const job = this.deps.repo.get(jobId);
    if (!job) throw new SkyfarmError('JOB_NOT_FOUND', `no job ${jobId}`);
    return job;
  }

  async cancel(jobId: string): Promise<Job> {
    const job = this.get(jobId);
    if (FINISHED_STATES.has(job.state)) {
      throw new SkyfarmError('JOB_FINISHED', `job ${jobId} already ended (${job.state})`);
    }
    if (job.backend === 'aws' && this.deps.aws) await this.deps.aws.backend.cancel(jobId);
    else await this.deps.local.cancel(jobId);
    return this.get(jobId);
  }

  logs(jobId: string, tail?: number): string[] {
    this.get(jobId);
    return this.deps.logs.tail(jobId, tail);
  }

  /**
   * Restarts every job that was running when the daemon stopped; one whose cancel was recorded
   * finishes canceling instead. AWS jobs already shown canceled whose Batch jobs were not yet
   * terminated (AWS did not answer) are terminated now.
   */
  resumeUnfinished(): string[] {
    const ids = this.deps.repo.unfinishedIds();
    for (const id of ids) {
      this.deps.logs.append(id, '[skyfarm] daemon restarted: resuming');
      if (this.deps.aws?.backend.isAws(id)) this.deps.aws.backend.resume(id);
      else this.deps.local.start(id);
    }
    for (const id of this.deps.aws?.backend.pendingCancels() ?? []) {
      if (ids.includes(id)) continue;
      this.deps.logs.append(id, '[skyfarm] daemon restarted: terminating the Batch jobs of the canceled job');
      this.deps.aws!.backend.resume(id);
    }
    return ids;
  }
}
