// Puts the AWS backend into the daemon: AWS clients per farm, the choice of farm for a render, and the
// RPC handlers that only AWS jobs have (jobs.download, jobs.logs --chunk).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AwsRenderOptions, CostQueueParams, QueueCost } from '../../../protocol/generated/protocol.js';
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
import { createContainerInstances } from '../aws/ecs.js';
import { createEc2 } from '../aws/ec2.js';
import { createPricing } from '../aws/pricing.js';
import { PriceBook } from '../cost/price-book.js';
import { CostService, type CostClients } from '../cost/cost-service.js';
import { CostTracker } from '../cost/cost-tracker.js';
import { queuePrice } from '../cost/queue-price.js';
import { jobObjects } from '../cost/storage.js';
import { createQueueEnvironments, type IQueueEnvironments } from './queue-environments.js';
import { jobKeys, type CostNote } from './layout.js';
import { assertReadableBy, formatBlendVersion, type BlendVersion } from '../jobs/validate-blend.js';

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
  /** The Blender versions the farm has worker images for (image tags), to pick one for a job. */
  imageVersions?: (target: { repository: string; region?: string }) => Promise<string[]>;
  /** The render job definition that runs `blenderVersion`'s image (derived from the farm's). */
  renderDefinition?: (farm: { region?: string; render: string }, blenderVersion: string) => Promise<string>;
  /** Cost estimates: how often they are refreshed (default 60 s). */
  cost?: { intervalMs?: number };
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

/** What a submit knows about the scene and this machine when the farm's Blender is chosen. */
export interface SubmitContext {
  blendFile: string;
  /** The Blender that saved the file (its header), if known. */
  savedBy: BlendVersion | null;
  /** The version of the Blender here (the artist's): the default for the farm's. */
  localBlender: () => Promise<readonly number[] | undefined>;
}

export interface AwsWiring {
  backend: AwsBackend;
  /** Cost of AWS jobs: kept current while they run, held against their budgets. */
  costs: CostTracker;
  /**
   * Validates a render's AWS options, picks the farm and the Blender version it renders with, and
   * refuses a file newer than that Blender (throws before any job is created). `note` says why
   * another version than asked for was chosen.
   */
  options(
    aws: AwsRenderOptions | undefined,
    context?: SubmitContext,
  ): Promise<AwsSubmitOptions & { note?: string }>;
  /** The price per hour at full scale of the render queue these options pick (or of `queue`). */
  queueCost(params: CostQueueParams): Promise<QueueCost>;
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
  // ECS and EC2 clients per region (cost estimates); the Price List has one endpoint for all.
  const costCache = new Map<string, Omit<CostClients, 'batch'> & { destroy(): void }>();
  const costClients = (farm: FarmSettings): CostClients => {
    const region = farm.region ?? settingsFromEnv(deps.env, 'EC2').region;
    let entry = costCache.get(region);
    if (!entry) {
      const ecs = createContainerInstances({ ...settingsFromEnv(deps.env, 'ECS'), region });
      const ec2 = createEc2({ ...settingsFromEnv(deps.env, 'EC2'), region });
      entry = {
        containerInstances: ecs,
        ec2,
        region,
        destroy: () => {
          ecs.destroy();
          ec2.destroy();
        },
      };
      costCache.set(region, entry);
    }
    return { ...entry, batch: clients(farm).batch };
  };
  const pricing = createPricing(settingsFromEnv(deps.env, 'PRICING'));
  const store = new AwsJobStore(deps.db);
  const prices = new PriceBook({ db: deps.db, pricing: () => pricing });
  const service = new CostService({
    repo: deps.repo,
    store,
    clients: costClients,
    prices,
    objects: (farm, jobId) => jobObjects(clients(farm).bucket, jobId),
  });
  const queueCache = new Map<string, IQueueEnvironments & { destroy(): void }>();
  const queueEnvironments = (region: string) => {
    let entry = queueCache.get(region);
    if (!entry) {
      entry = createQueueEnvironments({ ...settingsFromEnv(deps.env, 'BATCH'), region });
      queueCache.set(region, entry);
    }
    return entry;
  };
  const costs = new CostTracker({
    service,
    repo: deps.repo,
    logs: deps.logs,
    notify: deps.notify,
    log: deps.log,
    ...(deps.options?.cost?.intervalMs ? { intervalMs: deps.options.cost.intervalMs } : {}),
    backingOff: () => backend.backingOff,
    publish: async (jobId, text) => {
      const row = store.get(jobId);
      if (!row?.preparedAt) return;
      const note: CostNote = { text, at: new Date().toISOString() };
      await clients(row.farm).bucket.putJson(jobKeys(jobId).cost, note);
    },
    stop: (jobId, reason) => backend.stopForBudget(jobId, reason),
  });
  /** The farm a render with these options goes to (stack outputs, else --bucket / the environment). */
  const resolveFarm = async (
    aws: Pick<AwsRenderOptions, 'stackName' | 'bucket'>,
  ): Promise<{ farm: FarmSettings; stackName: string | undefined }> => {
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
    return { farm, stackName };
  };
  return {
    backend,
    costs,
    async queueCost(params) {
      const { farm } = await resolveFarm(params);
      const device = params.device ?? 'cpu';
      const market = params.market ?? 'spot';
      const queue = params.queue ?? renderQueue(farm, device, market);
      const clients = costClients(farm);
      return queuePrice(
        queueName(queue),
        {
          environments: queueEnvironments(clients.region),
          ec2: clients.ec2,
          prices,
          region: clients.region,
        },
        params.queue ? {} : { device, market },
      );
    },
    async options(aws = {}, context) {
      const resolved = await resolveFarm(aws);
      const stackName = resolved.stackName;
      let farm = resolved.farm;
      const device = aws.device ?? 'cpu';
      const market = aws.market ?? 'spot';
      renderQueue(farm, device, market); // refuses GPU on a farm without GPU queues
      // The Blender version: --blender-version X (the add-on sends its own), else the series of the
      // Blender here, which is the artist's; the image of that release, else one of its series.
      // Without an image of the series here, the farm's default (the stack's DefaultBlenderVersion).
      const requested = aws.blenderVersion ? checkBlenderVersion(aws.blenderVersion) : undefined;
      const target = farm.imageRepository
        ? {
            repository: farm.imageRepository,
            ...(farm.region ? { region: farm.region } : {}),
            ...(stackName && !aws.bucket ? { stackName } : {}),
          }
        : undefined;
      const tags =
        target && deps.options?.imageVersions ? await deps.options.imageVersions(target) : undefined;
      // Which images there are is known only with a repository; without, the farm's default as ever.
      const local = requested || !tags ? undefined : await context?.localBlender();
      const wanted = requested ?? (local ? local.join('.') : farm.defaultBlenderVersion);
      let blenderVersion = tags ? (imageForVersion(wanted, tags) ?? wanted) : wanted;
      let note: string | undefined;
      if (!requested && local && tags && !tags.includes(blenderVersion)) {
        note =
          `the farm has no worker image for Blender ${seriesOf(wanted)} (the Blender here is ${wanted}): ` +
          `rendering with the farm default ${farm.defaultBlenderVersion}`;
        blenderVersion = farm.defaultBlenderVersion;
      } else if (tags && blenderVersion !== wanted) {
        note = `Blender ${wanted} renders in the farm's ${blenderVersion} image (the same series)`;
      }
      const other = blenderVersion !== farm.defaultBlenderVersion;
      if (deps.options?.requireImage && target) {
        await deps.options.requireImage(target, blenderVersion);
        // Copy, publish and the stack's publish-after-failure run in the default version's image.
        if (other)
          await deps.options.requireImage(
            target,
            farm.defaultBlenderVersion,
            'the farm default: copy and publish run in it',
          );
      }
      // A file newer than that Blender cannot be opened on the farm: refused before anything is sent.
      if (context?.savedBy) {
        const series = formatBlendVersion(context.savedBy);
        const stack = target?.stackName ? ` --stack-name ${target.stackName}` : '';
        const image = tags?.find((tag) => seriesOf(tag) === series);
        assertReadableBy(
          context.blendFile,
          context.savedBy,
          blenderVersion.split('.').map(Number),
          `the farm would render it with Blender ${blenderVersion}` +
            (requested ? ` (--blender-version ${requested})` : ''),
          image
            ? `Render with --blender-version ${image} (the farm has its image).`
            : `Build an image for it with \`skyfarm images build --blender-version ${series}${stack}\`, ` +
                `then render with --blender-version ${series}.`,
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
        ...(aws.maxCostUsd !== undefined ? { maxCostUsd: aws.maxCostUsd } : {}),
        ...(note ? { note } : {}),
      };
    },
    close: () => {
      for (const entry of cache.values()) entry.destroy();
      cache.clear();
      for (const entry of costCache.values()) entry.destroy();
      costCache.clear();
      for (const entry of queueCache.values()) entry.destroy();
      queueCache.clear();
      pricing.destroy();
    },
  };
}

/** A job queue's name from its ARN (`…:job-queue/<name>`); a name stays as it is. */
export function queueName(queue: string): string {
  return queue.includes(':job-queue/')
    ? queue.slice(queue.indexOf(':job-queue/') + ':job-queue/'.length)
    : queue;
}

function seriesOf(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/**
 * The image for Blender `version` among the farm's tags: that release, else its series (the tag
 * `4.2`, else the newest `4.2.x`): releases of a series read and write the same files.
 */
export function imageForVersion(version: string, tags: string[]): string | undefined {
  if (tags.includes(version)) return version;
  const series = seriesOf(version);
  if (tags.includes(series)) return series;
  const patch = (tag: string) => Number(tag.split('.')[2] ?? -1);
  return tags
    .filter((tag) => seriesOf(tag) === series && /^\d+\.\d+\.\d+$/.test(tag))
    .sort((a, b) => patch(b) - patch(a))[0];
}

export function registerAwsHandlers(
  registry: RpcRegistry,
  jobs: JobService,
  aws: AwsBackend,
  costs?: CostTracker,
  queueCost?: AwsWiring['queueCost'],
): void {
  if (queueCost) registry.register('cost.queue', async (params) => ({ cost: await queueCost(params) }));
  if (costs) {
    registry.register('jobs.cost', async (params) => {
      jobs.get(params.jobId);
      const report = await costs.refresh(params.jobId);
      return { ...report, storage: await costs.storage(params.jobId) };
    });
  }
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
