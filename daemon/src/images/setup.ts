// Wires worker images into the daemon: the AWS clients (per region, created on first use), the farm a
// request means (`--stack-name N`, else SKYFARM_AWS_BUCKET's farm, else the stack deployed last, else
// the stack "skyfarm"), and the images.list / images.build methods. Build events go to every client.
import type { StackInfo } from '../../../protocol/generated/protocol.js';
import { S3Bucket, createS3Client, settingsFromEnv } from '../batch/bucket.js';
import { farmFromEnv } from '../batch/farm.js';
import { findProjectRoot } from '../config/project-root.js';
import { SkyfarmError } from '../errors.js';
import type { RpcRegistry } from '../rpc/registry.js';
import type { StackSetup } from '../stack/setup.js';
import { USABLE_STATUSES } from '../stack/service.js';
import { DEFAULT_STACK_NAME } from '../stack/validate.js';
import { buildContext } from './build-context.js';
import { createCodeBuild } from './codebuild-api.js';
import { createEcr } from './ecr-api.js';
import { createJobDefinitions } from './job-definitions.js';
import { ImageService, type ImageClients, type ImageServiceDeps, type ImageTarget } from './service.js';

export type ImageOptions = Partial<
  Pick<ImageServiceDeps, 'cacheMs' | 'pollMs' | 'buildTimeoutMs' | 'clients' | 'buildContext'>
>;

export interface ImageSetup {
  service: ImageService;
  register(registry: RpcRegistry): void;
  close(): void;
}

/** The image repository and build project of a deployed stack (its outputs). */
export function targetFromStack(info: StackInfo): ImageTarget {
  const need = (key: string) => {
    const value = info.outputs[key];
    if (!value) {
      throw new SkyfarmError(
        'STACK_NOT_SKYFARM',
        `stack ${info.stackName} (${info.status}) has no ${key} output; redeploy it with \`skyfarm deploy\``,
      );
    }
    return value;
  };
  return {
    repository: need('RepositoryName'),
    buildProject: need('WorkerImageBuildProject'),
    bucket: need('BucketName'),
    ...(info.region ? { region: info.region } : {}),
    stackName: info.stackName,
  };
}

export function setupImages(deps: {
  env: NodeJS.ProcessEnv;
  stack: Pick<StackSetup, 'resolveStack' | 'remembered'>;
  options?: ImageOptions;
}): ImageSetup {
  const { env } = deps;
  const made = new Map<string, ImageClients & { destroy(): void }>();
  const clients =
    deps.options?.clients ??
    ((region: string | undefined): ImageClients => {
      const key = region ?? '';
      let entry = made.get(key);
      if (!entry) {
        const at = region ? { region } : {};
        const ecr = createEcr({ ...settingsFromEnv(env, 'ECR'), ...at });
        const codeBuild = createCodeBuild({ ...settingsFromEnv(env, 'CODEBUILD'), ...at });
        const s3 = createS3Client({ ...settingsFromEnv(env, 'S3'), ...at });
        const jobDefinitions = createJobDefinitions({ ...settingsFromEnv(env, 'BATCH'), ...at });
        entry = {
          ecr,
          codeBuild,
          bucket: (name) => new S3Bucket(s3, name),
          jobDefinitions,
          destroy: () => {
            ecr.destroy();
            codeBuild.destroy();
            s3.destroy();
            jobDefinitions.destroy();
          },
        };
        made.set(key, entry);
      }
      return entry;
    });
  const resolveTarget = async (stackName?: string): Promise<ImageTarget> => {
    if (stackName) return targetFromStack(await deps.stack.resolveStack(stackName));
    const farm = farmFromEnv(env);
    if (farm?.imageRepository && farm.imageBuildProject) {
      return {
        repository: farm.imageRepository,
        buildProject: farm.imageBuildProject,
        bucket: farm.bucket,
        ...(farm.region ? { region: farm.region } : {}),
      };
    }
    const known = deps.stack.remembered.get();
    if (known && USABLE_STATUSES.has(known.status)) return targetFromStack(known);
    return targetFromStack(await deps.stack.resolveStack(DEFAULT_STACK_NAME));
  };
  const service = new ImageService({
    resolveTarget,
    clients,
    buildContext: async () => buildContext(findProjectRoot()),
    ...deps.options,
  });
  return {
    service,
    register(registry) {
      registry.register('images.list', (params) => service.list(params));
      registry.register('images.build', (params, context) =>
        service.build(params, context.notify, context.signal),
      );
    },
    close() {
      for (const entry of made.values()) entry.destroy();
      made.clear();
    },
  };
}
