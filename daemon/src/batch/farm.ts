// Where a render goes on AWS: the farm's bucket, queues, job definitions and log group. They come from
// the stack's outputs (daemon/src/stack/) or, without a stack, from explicit settings: `--bucket` and
// the names the template gives its resources (`<prefix>-transfer`, `<prefix>-cpu-spot`, …), which AWS
// Batch accepts in place of ARNs.
import { SkyfarmError } from '../errors.js';
import type { Device, Market } from './layout.js';

export interface FarmSettings {
  bucket: string;
  region?: string;
  queues: {
    transfer: string;
    cpuSpot: string;
    cpuOnDemand: string;
    gpuSpot?: string;
    gpuOnDemand?: string;
  };
  jobDefinitions: { transfer: string; render: string };
  logGroup: string;
  /** The SES identity mail is sent from (the stack's NotifyEmail). */
  notifyFrom?: string;
  defaultBlenderVersion: string;
  /** The worker images' ECR repository (tag = Blender version) and the CodeBuild project that builds them. */
  imageRepository?: string;
  imageBuildProject?: string;
}

export function farmFromNames(
  bucket: string,
  options: {
    prefix?: string;
    gpu?: boolean;
    notifyFrom?: string;
    blenderVersion?: string;
    region?: string;
  } = {},
): FarmSettings {
  const prefix = options.prefix || 'skyfarm';
  return {
    bucket,
    ...(options.region ? { region: options.region } : {}),
    queues: {
      transfer: `${prefix}-transfer`,
      cpuSpot: `${prefix}-cpu-spot`,
      cpuOnDemand: `${prefix}-cpu-on-demand`,
      ...(options.gpu !== false
        ? { gpuSpot: `${prefix}-gpu-spot`, gpuOnDemand: `${prefix}-gpu-on-demand` }
        : {}),
    },
    jobDefinitions: { transfer: `${prefix}-transfer`, render: `${prefix}-render` },
    logGroup: `/skyfarm/${prefix}`,
    ...(options.notifyFrom ? { notifyFrom: options.notifyFrom } : {}),
    defaultBlenderVersion: options.blenderVersion || '4.2.3',
    imageRepository: `${prefix}/worker`,
    imageBuildProject: `${prefix}-worker-image`,
  };
}

/** From the outputs of infra/skyfarm.yaml (see its Outputs section). */
export function farmFromStackOutputs(outputs: Record<string, string>): FarmSettings {
  const need = (key: string): string => {
    const value = outputs[key];
    if (!value)
      throw new SkyfarmError(
        'STACK_NOT_SKYFARM',
        `the stack has no ${key} output; redeploy it with \`skyfarm deploy\``,
      );
    return value;
  };
  return {
    bucket: need('BucketName'),
    queues: {
      transfer: need('TransferQueueArn'),
      cpuSpot: need('CpuSpotQueueArn'),
      cpuOnDemand: need('CpuOnDemandQueueArn'),
      ...(outputs['GpuSpotQueueArn'] ? { gpuSpot: outputs['GpuSpotQueueArn'] } : {}),
      ...(outputs['GpuOnDemandQueueArn'] ? { gpuOnDemand: outputs['GpuOnDemandQueueArn'] } : {}),
    },
    jobDefinitions: { transfer: need('TransferJobDefinitionArn'), render: need('RenderJobDefinitionArn') },
    logGroup: need('LogGroupName'),
    ...(outputs['NotifyEmail'] ? { notifyFrom: outputs['NotifyEmail'] } : {}),
    defaultBlenderVersion: outputs['DefaultBlenderVersion'] || '4.2.3',
    ...(outputs['RepositoryName'] ? { imageRepository: outputs['RepositoryName'] } : {}),
    ...(outputs['WorkerImageBuildProject'] ? { imageBuildProject: outputs['WorkerImageBuildProject'] } : {}),
  };
}

/**
 * Settings from the environment, for running without a stack lookup: SKYFARM_AWS_BUCKET,
 * SKYFARM_AWS_NAME_PREFIX (default skyfarm), SKYFARM_AWS_GPU (default on), SKYFARM_AWS_NOTIFY_FROM,
 * SKYFARM_AWS_BLENDER_VERSION. Undefined when no bucket is known.
 */
export function farmFromEnv(env: NodeJS.ProcessEnv, bucket?: string): FarmSettings | undefined {
  const name = bucket || env['SKYFARM_AWS_BUCKET'];
  if (!name) return undefined;
  return farmFromNames(name, {
    ...(env['SKYFARM_AWS_NAME_PREFIX'] ? { prefix: env['SKYFARM_AWS_NAME_PREFIX'] } : {}),
    gpu: env['SKYFARM_AWS_GPU'] !== 'false',
    ...(env['SKYFARM_AWS_NOTIFY_FROM'] ? { notifyFrom: env['SKYFARM_AWS_NOTIFY_FROM'] } : {}),
    ...(env['SKYFARM_AWS_BLENDER_VERSION'] ? { blenderVersion: env['SKYFARM_AWS_BLENDER_VERSION'] } : {}),
    ...(env['AWS_REGION'] ? { region: env['AWS_REGION'] } : {}),
  });
}

/** The render queue for a device and market. Copy and publish always use `queues.transfer`. */
export function renderQueue(farm: FarmSettings, device: Device, market: Market): string {
  if (device === 'gpu') {
    const queue = market === 'spot' ? farm.queues.gpuSpot : farm.queues.gpuOnDemand;
    if (!queue) {
      throw new SkyfarmError(
        'BACKEND_UNAVAILABLE',
        'the farm has no GPU queues: deploy the stack with GPU enabled (`skyfarm deploy --gpu`) or render with --device cpu',
      );
    }
    return queue;
  }
  return market === 'spot' ? farm.queues.cpuSpot : farm.queues.cpuOnDemand;
}
