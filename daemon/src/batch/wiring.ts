// Puts the AWS backend into the daemon: AWS clients per farm, the choice of farm for a render, and the
// RPC handlers that only AWS jobs have (jobs.download, jobs.logs --chunk).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AwsRenderOptions } from '../../../protocol/generated/protocol.js';
import type { Db } from '../db/database.js';
import { SkyfarmError } from '../errors.js';
import type { Notify } from '../notify.js';
import type { JobRepo } from '../jobs/job-repo.js';
import type { JobLogs } from '../jobs/job-log.js';
import type { JobService } from '../jobs/job-service.js';
import type { RpcRegistry } from '../rpc/registry.js';
import { AwsBackend, type AwsBackendDeps, type AwsSubmitOptions, type FarmClients } from './aws-backend.js';
import { AwsJobStore } from './aws-store.js';
import { createBatch } from './batch-api.js';
import { S3Bucket, createS3Client, settingsFromEnv } from './bucket.js';
import { farmFromEnv, renderQueue, type FarmSettings } from './farm.js';
import { createLogReader } from './logs-api.js';
import type { ProjectUploader } from './prepare.js';
import { checkBlenderVersion } from '../images/service.js';

export interface AwsWiringOptions {
  /** The farm of a deployed stack by name (the stack service's outputs); absent: --bucket/env only. */
  resolveStack?: (stackName: string) => Promise<FarmSettings> | FarmSettings;
  /**
   * The stack a render without --stack-name or --bucket uses when SKYFARM_AWS_BUCKET is not set: the
   * usable stack daemon.info reports as the AWS backend (undefined: none).
   */
  defaultStack?: () => string | undefined;
  /** How jobs put their project into the bucket (default: uploadToBucket). */
  upload?: ProjectUploader;
  /** Refuses (IMAGE_MISSING) a Blender version the farm has no worker image for (daemon/src/images/). */
  requireImage?: (
    target: { repository: string; region?: string; stackName?: string },
    blenderVersion: string,
    role?: string,
  ) => Promise<void>;
  /** The render job definition that runs `blenderVersion`'s image (derived from the farm's). */
  renderDefinition?: (farm: { region?: string; render: string }, blenderVersion: string) => Promise<string>;
  /** Test hooks and tuning. */
  backend?: Partial<
    Pick<
      AwsBackendDeps,
      | 'pollFastMs'
      | 'pollSlowMs'
      | 'runnableWarnMs'
      | 'failurePublishTimeoutMs'
      | 'prepare'
      | 'clients'
      | 'upload'
    >
  >;
}

export interface AwsWiring {
  backend: AwsBackend;
  /** Validates a render's AWS options and picks the farm (throws before any job is created). */
  options(aws: AwsRenderOptions | undefined): Promise<AwsSubmitOptions>;
  close(): void;
}

export function createAwsWiring(deps: {
  db: Db;
  repo: JobRepo;
  logs: JobLogs;
  notify: Notify;
  log: Logger;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  options?: AwsWiringOptions;
}): AwsWiring {
  const cache = new Map<string, FarmClients & { destroy(): void }>();
  const clients =
    deps.options?.backend?.clients ??
    ((farm: FarmSettings): FarmClients => {
      const key = `${farm.region ?? ''}/${farm.bucket}`;
      let entry = cache.get(key);
      if (!entry) {
        const region = farm.region ? { region: farm.region } : {};
        const s3 = createS3Client({ ...settingsFromEnv(deps.env, 'S3'), ...region });
        const batch = createBatch({ ...settingsFromEnv(deps.env, 'BATCH'), ...region });
        const logs = createLogReader({ ...settingsFromEnv(deps.env, 'CLOUDWATCH_LOGS'), ...region });
        entry = {
          bucket: new S3Bucket(s3, farm.bucket),
          batch,
          logs,
          destroy: () => {
            s3.destroy();
            batch.destroy();
            logs.destroy();
          },
        };
        cache.set(key, entry);
      }
      return entry;
    });
  const backend = new AwsBackend({
    repo: deps.repo,
    logs: deps.logs,
    store: new AwsJobStore(deps.db),
    notify: deps.notify,
    log: deps.log,
    previewsDir: join(deps.stateDir, 'previews'),
    ...(deps.options?.upload ? { upload: deps.options.upload } : {}),
    ...deps.options?.backend,
    clients,
  });
  return {
    backend,
    async options(aws = {}) {
      let farm: FarmSettings | undefined;
      // Neither --stack-name nor --bucket (nor SKYFARM_AWS_BUCKET): the stack daemon.info offers as the
      // AWS backend, i.e. the one this daemon deployed or saw ready last.
      const stackName =
        aws.stackName || aws.bucket || deps.env['SKYFARM_AWS_BUCKET']
          ? aws.stackName
          : deps.options?.defaultStack?.();
      if (stackName && !aws.bucket) {
        if (!deps.options?.resolveStack) {
          throw new SkyfarmError(
            'BACKEND_UNAVAILABLE',
            `cannot look up stack "${stackName}" in this daemon yet; pass --bucket`,
          );
        }
        farm = await deps.options.resolveStack(stackName);
      } else {
        farm = farmFromEnv(deps.env, aws.bucket);
      }
      if (!farm) {
        throw new SkyfarmError(
          'BACKEND_UNAVAILABLE',
          'the AWS backend needs a farm: deploy one (`skyfarm deploy`) and pass --stack-name, or pass --bucket B ' +
            '(or set SKYFARM_AWS_BUCKET) for a stack whose queues and job definitions keep the template’s names',
        );
      }
      const device = aws.device ?? 'cpu';
      const market = aws.market ?? 'spot';
      renderQueue(farm, device, market); // refuses GPU on a farm without GPU queues
      // --blender-version X, else the farm's default (the stack's DefaultBlenderVersion): it needs an image.
      const blenderVersion = checkBlenderVersion(aws.blenderVersion ?? farm.defaultBlenderVersion);
      const other = blenderVersion !== farm.defaultBlenderVersion;
      if (deps.options?.requireImage && farm.imageRepository) {
        const target = {
          repository: farm.imageRepository,
          ...(farm.region ? { region: farm.region } : {}),
          ...(stackName && !aws.bucket ? { stackName } : {}),
        };
        await deps.options.requireImage(target, blenderVersion);
        // Copy, publish and the stack's publish-after-failure run in the default version's image.
        if (other)
          await deps.options.requireImage(
            target,
            farm.defaultBlenderVersion,
            'the farm default: copy and publish run in it',
          );
      }
      // The render stage runs in the job's version: its own job definition (Batch cannot override images).
      if (other && !aws.prepareOnly && deps.options?.renderDefinition) {
        const render = await deps.options.renderDefinition(
          { ...(farm.region ? { region: farm.region } : {}), render: farm.jobDefinitions.render },
          blenderVersion,
        );
        farm = { ...farm, jobDefinitions: { ...farm.jobDefinitions, render } };
      }
      return {
        farm,
        device,
        market,
        blenderVersion,
        ...(aws.notifyEmail ? { notifyEmail: aws.notifyEmail } : {}),
        ...(aws.prepareOnly ? { prepareOnly: true } : {}),
      };
    },
    close: () => {
      for (const entry of cache.values()) entry.destroy();
      cache.clear();
    },
  };
}

export function registerAwsHandlers(registry: RpcRegistry, jobs: JobService, aws: AwsBackend): void {
  registry.register('jobs.download', async (params) => {
    jobs.get(params.jobId);
    return aws.download(params.jobId, params.output);
  });
  registry.register('jobs.logs', async (params) => {
    if (params.chunk === undefined) return { lines: jobs.logs(params.jobId, params.tail) };
    jobs.get(params.jobId);
    return { lines: await aws.chunkLogs(params.jobId, params.chunk, params.tail) };
  });
}
