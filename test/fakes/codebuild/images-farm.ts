// What the worker-image tests run against: s3rver as the farm bucket, the fake ECR (repository
// `skyfarm/worker`) and the fake CodeBuild with the template's project, and a daemon pointed at them
// (SKYFARM_AWS_BUCKET: the template's resource names for prefix `skyfarm`).
import path from 'node:path';
import pino from 'pino';
import type { Test } from 'tap';
import { startDaemon, type RunningDaemon } from '../../../daemon/src/daemon.js';
import { S3Bucket, createS3Client, settingsFromEnv } from '../../../daemon/src/batch/bucket.js';
import type { ImageOptions } from '../../../daemon/src/images/setup.js';
import { awsEnv, cleanEnv, startS3, type LocalS3 } from '../batch/aws-env.js';
import { startFakeEcr, type FakeEcr } from '../ecr/server.js';
import { startFakeCodeBuild, type FakeCodeBuild, type FakeCodeBuildOptions } from './server.js';
import { projectFromTemplate } from './template.js';

export interface ImagesFarm {
  dir: string;
  s3: LocalS3;
  bucket: S3Bucket;
  ecr: FakeEcr;
  codeBuild: FakeCodeBuild;
  repository: string;
  env: NodeJS.ProcessEnv;
  stateDir: string;
  startDaemon(options?: ImageOptions & { env?: NodeJS.ProcessEnv }): Promise<RunningDaemon>;
  /** Every call any AWS fake saw (ECR, CodeBuild), in order. */
  awsCalls(): string[];
}

export async function startImagesFarm(
  t: Test,
  options: {
    /** Tags in the repository; null: the repository does not exist. */
    tags?: string[] | null;
    pageLimit?: number;
    codeBuild?: Omit<FakeCodeBuildOptions, 'projects' | 'ecr'>;
  } = {},
): Promise<ImagesFarm> {
  const dir = t.testdir({});
  const s3 = await startS3(path.join(dir, 's3'));
  t.teardown(() => s3.close());
  const project = projectFromTemplate({ bucket: s3.bucket });
  const ecr = await startFakeEcr({
    repositories: options.tags === null ? {} : { [project.repository]: options.tags ?? [] },
    ...(options.pageLimit ? { pageLimit: options.pageLimit } : {}),
  });
  t.teardown(() => ecr.close());
  const base = { ...cleanEnv(), ...awsEnv({ s3: s3.endpoint }) };
  const client = createS3Client(settingsFromEnv(base, 'S3'));
  t.teardown(() => client.destroy());
  const bucket = new S3Bucket(client, s3.bucket);
  const codeBuild = await startFakeCodeBuild({
    projects: [project],
    ecr,
    stepMs: 25,
    // CodeBuild's DOWNLOAD_SOURCE: the source zip must be in the bucket.
    sourceExists: async (location) => {
      const slash = location.indexOf('/');
      return location.slice(0, slash) === s3.bucket && bucket.exists(location.slice(slash + 1));
    },
    ...options.codeBuild,
  });
  t.teardown(() => codeBuild.close());
  const env: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    ...awsEnv({ s3: s3.endpoint, ecr: ecr.endpoint, codebuild: codeBuild.endpoint }),
    // Anything not pointed at a fake fails on a closed loopback port.
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    SKYFARM_AWS_BUCKET: s3.bucket,
  };
  const stateDir = path.join(dir, 'home');
  return {
    dir,
    s3,
    bucket,
    ecr,
    codeBuild,
    repository: project.repository,
    env,
    stateDir,
    async startDaemon(opts = {}) {
      const { env: extra, ...images } = opts;
      const daemon = await startDaemon({
        stateDir,
        port: 0,
        env: { ...env, ...extra },
        logger: pino({ level: 'silent' }),
        images: { pollMs: 20, ...images },
      });
      t.teardown(() => daemon.stop());
      return daemon;
    },
    awsCalls: () =>
      [
        ...ecr.calls.map((c) => ({ at: c.at, name: `ecr:${c.operation}` })),
        ...codeBuild.calls.map((c) => ({ at: c.at, name: `codebuild:${c.operation}` })),
      ]
        .sort((a, b) => a.at - b.at)
        .map((c) => c.name),
  };
}
