// Worker images per Blender version: which versions the farm's ECR repository holds (tag = Blender
// version), building one with the stack's CodeBuild project (following its phases until it ends, with
// a time limit), and the check that refuses an AWS render whose Blender version has no image. The
// listing is cached briefly per repository, so a burst of submits asks ECR once and nothing is asked
// per frame.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  ImageBuild,
  ImagesBuildParams,
  ImagesBuildResult,
  ImagesListParams,
  ImagesListResult,
  WorkerImage,
} from '../../../protocol/generated/protocol.js';
import { awsErrorCode, mapAwsError } from '../aws/errors.js';
import type { IBucket } from '../batch/bucket.js';
import { SkyfarmError } from '../errors.js';
import type { Notify } from '../notify.js';
import type { BuildInfo, ICodeBuild } from './codebuild-api.js';
import type { IEcr } from './ecr-api.js';
import { renderDefinitionFor, type IJobDefinitions } from './job-definitions.js';

/** Blender versions as image tags: 4.2 or 4.2.3. */
export const BLENDER_VERSION_PATTERN = /^\d+\.\d+(\.\d+)?$/;

export function checkBlenderVersion(version: string): string {
  if (!BLENDER_VERSION_PATTERN.test(version)) {
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `--blender-version must look like 4.2 or 4.2.3 (a Blender release), not "${version}"`,
    );
  }
  return version;
}

/** Where a farm keeps its worker images and how it builds them. */
export interface ImageTarget {
  repository: string;
  buildProject: string;
  bucket: string;
  region?: string;
  stackName?: string;
}

export interface ImageClients {
  ecr: IEcr;
  codeBuild: ICodeBuild;
  bucket(name: string): IBucket;
  jobDefinitions: IJobDefinitions;
}

export interface ImageServiceDeps {
  /** The farm of `--stack-name N` (or the default farm when absent). */
  resolveTarget(stackName?: string): Promise<ImageTarget>;
  clients(region: string | undefined): ImageClients;
  /** The build context (zip bytes and the key it goes to); default: the installed package's sources. */
  buildContext(): Promise<{ zip: Buffer; key: string }>;
  /** How long a listing is reused (default 60 s). */
  cacheMs?: number;
  /** Pause between two BatchGetBuilds (default 5 s). */
  pollMs?: number;
  /** How long a build is followed unless the request says (default 90 min). */
  buildTimeoutMs?: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

const FAILED_PHASE = new Set(['FAILED', 'FAULT', 'TIMED_OUT', 'STOPPED', 'CLIENT_ERROR']);

/** Newest Blender version first (4.2.3 before 4.2 before 3.6.5). */
function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pb[i] ?? -1) - (pa[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

function describeBuild(build: BuildInfo, target: ImageTarget, version: string): ImageBuild {
  const current = build.phases.find((p) => p.type === build.currentPhase) ?? build.phases.at(-1);
  const failed = build.phases.find((p) => p.status && FAILED_PHASE.has(p.status));
  const reasons = (failed?.contexts ?? [])
    .map((c) => [c.statusCode, c.message].filter(Boolean).join(': '))
    .filter(Boolean);
  return {
    buildId: build.id,
    blenderVersion: version,
    repository: target.repository,
    status: build.status,
    phase: build.currentPhase,
    phaseStatus: current?.type === build.currentPhase ? (current.status ?? '') : '',
    ...(failed ? { failedPhase: failed.type } : {}),
    ...(failed || build.status !== 'SUCCEEDED'
      ? reasons.length
        ? { message: reasons.join('; ').slice(0, 8000) }
        : {}
      : {}),
    ...(build.logs?.group ? { logGroup: build.logs.group } : {}),
    ...(build.logs?.stream ? { logStream: build.logs.stream } : {}),
    ...(build.logs?.link ? { logLink: build.logs.link } : {}),
    ...(build.startTime ? { startedAt: build.startTime.toISOString() } : {}),
    ...(build.endTime ? { endedAt: build.endTime.toISOString() } : {}),
  };
}

export class ImageService {
  private readonly cache = new Map<string, { at: number; images: Promise<WorkerImage[]> }>();

  constructor(private readonly deps: ImageServiceDeps) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** The tagged images of a repository, newest version first; cached for `cacheMs`. */
  images(repository: string, region: string | undefined): Promise<WorkerImage[]> {
    const key = `${region ?? ''}/${repository}`;
    const cached = this.cache.get(key);
    if (cached && this.now() - cached.at < (this.deps.cacheMs ?? 60_000)) return cached.images;
    const images = this.fetch(repository, region);
    this.cache.set(key, { at: this.now(), images });
    // Failures are not remembered: the next request asks again.
    images.catch(() => {
      if (this.cache.get(key)?.images === images) this.cache.delete(key);
    });
    return images;
  }

  private async fetch(repository: string, region: string | undefined): Promise<WorkerImage[]> {
    let details;
    try {
      details = await this.deps.clients(region).ecr.listImages(repository);
    } catch (error) {
      if (awsErrorCode(error) === 'RepositoryNotFoundException') return [];
      throw mapAwsError(error, { action: 'ecr:DescribeImages', resource: repository });
    }
    const out: WorkerImage[] = [];
    for (const image of details) {
      for (const tag of image.tags) {
        out.push({
          version: tag,
          pushedAt: image.pushedAt ? image.pushedAt.toISOString() : null,
          sizeBytes: image.sizeBytes ?? null,
          digest: image.digest,
        });
      }
    }
    return out.sort((a, b) => compareVersions(a.version, b.version) || a.version.localeCompare(b.version));
  }

  async list(params: ImagesListParams): Promise<ImagesListResult> {
    const target = await this.deps.resolveTarget(params.stackName);
    return { repository: target.repository, images: await this.images(target.repository, target.region) };
  }

  /**
   * Refuses (IMAGE_MISSING) a Blender version the repository has no image for, naming the versions it
   * has and the command that builds the missing one.
   */
  async requireImage(
    target: { repository: string; region?: string; stackName?: string },
    version: string,
    role?: string,
  ): Promise<void> {
    const images = await this.images(target.repository, target.region);
    if (images.some((i) => i.version === version)) return;
    const available = images.map((i) => i.version);
    const stack = target.stackName ? ` --stack-name ${target.stackName}` : '';
    throw new SkyfarmError(
      'IMAGE_MISSING',
      `the farm has no worker image for Blender ${version}${role ? ` (${role})` : ''} (repository ` +
        `${target.repository}; available: ${available.length ? available.join(', ') : 'none'}). Build it with ` +
        `\`skyfarm images build --blender-version ${version}${stack}\`` +
        (available.length && !role ? `, or render with --blender-version ${available[0]}` : '') +
        '.',
    );
  }

  private readonly definitions = new Map<string, { at: number; arn: Promise<string> }>();

  /** The render job definition for `version` (derived once from the farm's; cached for 10 min). */
  renderDefinition(farm: { region?: string; render: string }, version: string): Promise<string> {
    const key = `${farm.region ?? ''}/${farm.render}/${version}`;
    const cached = this.definitions.get(key);
    if (cached && this.now() - cached.at < 10 * 60_000) return cached.arn;
    const arn = renderDefinitionFor(this.deps.clients(farm.region).jobDefinitions, farm.render, version);
    this.definitions.set(key, { at: this.now(), arn });
    arn.catch(() => {
      if (this.definitions.get(key)?.arn === arn) this.definitions.delete(key);
    });
    return arn;
  }

  /** Uploads the build context, starts the build for `blenderVersion` and follows it until it ends. */
  async build(params: ImagesBuildParams, notify: Notify, signal?: AbortSignal): Promise<ImagesBuildResult> {
    const version = checkBlenderVersion(params.blenderVersion);
    const target = await this.deps.resolveTarget(params.stackName);
    const clients = this.deps.clients(target.region);
    const bucket = clients.bucket(target.bucket);
    const context = await this.deps.buildContext();
    const sourceLocation = `${target.bucket}/${context.key}`;
    try {
      if (!(await bucket.exists(context.key))) {
        const dir = await mkdtemp(join(tmpdir(), 'skyfarm-build-'));
        try {
          const file = join(dir, 'worker.zip');
          await writeFile(file, context.zip);
          await bucket.putFile(context.key, file, {
            contentType: 'application/zip',
            ...(signal ? { signal } : {}),
          });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
    } catch (error) {
      throw mapAwsError(error, { action: 's3:PutObject', resource: `s3://${sourceLocation}` });
    }
    signal?.throwIfAborted();
    let build: BuildInfo;
    try {
      build = await clients.codeBuild.startBuild({
        project: target.buildProject,
        environment: { BLENDER_VERSION: version },
        sourceLocation,
      });
    } catch (error) {
      throw mapAwsError(error, { action: 'codebuild:StartBuild', resource: target.buildProject });
    }
    const timeoutMs = params.timeoutSeconds
      ? params.timeoutSeconds * 1000
      : (this.deps.buildTimeoutMs ?? 90 * 60_000);
    const started = this.now();
    const sleep = this.deps.sleep ?? defaultSleep;
    let last = '';
    // Index of every phase in build.phases the stream has shown.
    const shown = new Set<number>();
    let info = describeBuild(build, target, version);
    for (let polls = 0; ; polls++) {
      info = describeBuild(build, target, version);
      // Phases that began and ended between two polls are still announced, as they began, so the
      // stream always lists every phase the build went through.
      const failedAt = build.phases.findIndex((p) => p.status !== undefined && FAILED_PHASE.has(p.status));
      for (const [index, passed] of build.phases.slice(0, -1).entries()) {
        if (shown.has(index)) continue;
        shown.add(index);
        const afterFailure = failedAt >= 0 && index > failedAt;
        notify('image.build', {
          buildId: info.buildId,
          blenderVersion: info.blenderVersion,
          repository: info.repository,
          status: afterFailure ? info.status : 'IN_PROGRESS',
          phase: passed.type,
          phaseStatus: '',
          ...(afterFailure ? { failedPhase: build.phases[failedAt]!.type } : {}),
          ...(info.logGroup ? { logGroup: info.logGroup } : {}),
          ...(info.logStream ? { logStream: info.logStream } : {}),
        });
      }
      const key = `${info.status}/${info.phase}/${info.phaseStatus}`;
      if (key !== last) {
        last = key;
        notify('image.build', info);
      }
      shown.add(build.phases.length - 1);
      // Followed to COMPLETED: after a failure CodeBuild still finalizes (and uploads logs) first.
      if (build.complete) break;
      if (this.now() - started >= timeoutMs) {
        info = {
          ...info,
          timedOut: true,
          message:
            `stopped waiting after ${Math.round(timeoutMs / 1000)} s; build ${build.id} is still ` +
            `${build.status} (phase ${build.currentPhase}) and may still push ${target.repository}:${version}`,
        };
        notify('image.build', info);
        return { build: info };
      }
      // Quick first polls (a failing build often ends within seconds), then the steady period.
      const pollMs = this.deps.pollMs ?? 5_000;
      await sleep(polls < 3 ? Math.min(pollMs, 1_000) : pollMs, signal);
      let next: BuildInfo | undefined;
      try {
        next = await clients.codeBuild.getBuild(build.id);
      } catch (error) {
        throw mapAwsError(error, { action: 'codebuild:BatchGetBuilds', resource: build.id });
      }
      if (!next) throw new SkyfarmError('AWS_ERROR', `CodeBuild no longer knows build ${build.id}`);
      build = next;
    }
    if (build.status === 'SUCCEEDED') {
      this.cache.delete(`${target.region ?? ''}/${target.repository}`);
    } else if (!info.message) {
      info = { ...info, message: `the build ended ${build.status}` };
    }
    return { build: info };
  }
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
