// The fakes a CloudFormation-deployed farm runs on, for tests that deploy a stack and then use it:
// s3rver as S3, the fake CloudFormation, SES, CloudWatch Logs and ECR, the daemon's environment (every
// fake, nothing else reachable, no AWS config files) and the pieces that come after a deploy: the
// stack's bucket (CloudFormation only "creates" it) and its Batch side (the fake Batch configured from
// infra/skyfarm.yaml for the stack's name prefix). Without a stack: test/fakes/batch/farm.ts.
import path from 'node:path';
import type { Test } from 'tap';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { RunningDaemon } from '../../../daemon/src/daemon.js';
import { S3Bucket, createS3Client, settingsFromEnv } from '../../../daemon/src/batch/bucket.js';
import { blenderCommand } from '../../helpers/scenes.js';
import { awsEnv, cleanEnv, REPO_ROOT, startS3, WORKER_ENTRY, type LocalS3 } from './aws-env.js';
import { startAwsTestDaemon } from './farm.js';
import { startFakeBatch, type FakeBatch } from './server.js';
import { farmFromTemplate } from './template.js';
import { startFakeCloudFormation, type FakeCloudFormation } from '../cloudformation/server.js';
import { startFakeEcr, type FakeEcr } from '../ecr/server.js';
import { startFakeLogs, type FakeLogs } from '../logs/server.js';
import { startFakeSes, type FakeSes } from '../ses/server.js';

export interface StackFakes {
  dir: string;
  s3: LocalS3;
  cloudFormation: FakeCloudFormation;
  ses: FakeSes;
  logs: FakeLogs;
  ecr: FakeEcr;
  /** Dummy keys and the S3, SES and Logs endpoints (what the worker containers get). */
  base: NodeJS.ProcessEnv;
  /** The daemon's state dir (`<dir>/home`). */
  stateDir: string;
  /** The daemon's environment; Batch at `batchEndpoint` when given (else unreachable). */
  daemonEnv(batchEndpoint?: string): NodeJS.ProcessEnv;
  /** A daemon on `stateDir` with the AWS backend's poll timing for tests, stopped at teardown. */
  startDaemon(env: NodeJS.ProcessEnv): Promise<RunningDaemon>;
  /** Makes the stack's bucket in s3rver (CloudFormation only "created" it). */
  createBucket(name: string): Promise<S3Bucket>;
  /** The stack's Batch side: queues, job definitions and rules of stack `namePrefix` using `bucket`. */
  startBatch(options: {
    bucket: string;
    namePrefix: string;
    gpu: boolean;
    maxRunning: number;
  }): Promise<FakeBatch>;
}

export async function startStackFakes(
  t: Test,
  options: {
    /** Worker images in the fake ECR, by repository (`skyfarm/worker`: tags). */
    images: Record<string, string[]>;
    /** Default: a fresh t.testdir. */
    dir?: string;
  },
): Promise<StackFakes> {
  const dir = options.dir ?? t.testdir({});
  const s3 = await startS3(path.join(dir, 's3'), 'unused');
  t.teardown(() => s3.close());
  const cloudFormation = await startFakeCloudFormation({ stepMs: 2 });
  t.teardown(() => cloudFormation.close());
  const ses = await startFakeSes();
  t.teardown(() => ses.close());
  const logs = await startFakeLogs();
  t.teardown(() => logs.close());
  const ecr = await startFakeEcr({ repositories: options.images });
  t.teardown(() => ecr.close());
  const base = { ...cleanEnv(), ...awsEnv({ s3: s3.endpoint, ses: ses.endpoint, logs: logs.endpoint }) };
  const stateDir = path.join(dir, 'home');
  return {
    dir,
    s3,
    cloudFormation,
    ses,
    logs,
    ecr,
    base,
    stateDir,
    daemonEnv: (batchEndpoint) => ({
      ...base,
      ...awsEnv({
        s3: s3.endpoint,
        ...(batchEndpoint ? { batch: batchEndpoint } : {}),
        ses: ses.endpoint,
        logs: logs.endpoint,
        ecr: ecr.endpoint,
      }),
      AWS_ENDPOINT_URL_CLOUDFORMATION: cloudFormation.url,
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
      SKYFARM_BLENDER: blenderCommand,
    }),
    startDaemon: (env) => startAwsTestDaemon(t, { stateDir, env, runnableWarnMs: 60_000 }),
    async createBucket(name) {
      const client = createS3Client(settingsFromEnv(base, 'S3'));
      t.teardown(() => client.destroy());
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return new S3Bucket(client, name);
    },
    async startBatch({ bucket, namePrefix, gpu, maxRunning }) {
      const template = farmFromTemplate({ bucket, namePrefix, gpu });
      const batch = await startFakeBatch({
        queues: template.queues,
        computeEnvironments: template.computeEnvironments,
        jobDefinitions: template.jobDefinitions,
        rules: template.rules,
        hostEnv: { ...base, SKYFARM_EFS_ROOT: path.join(dir, 'efs'), SKYFARM_BLENDER: blenderCommand },
        executables: { 'skyfarm-worker': [process.execPath, '--import', 'tsx', WORKER_ENTRY] },
        cwd: REPO_ROOT,
        maxRunning,
        tickMs: 40,
        logs,
        logGroup: `/skyfarm/${namePrefix}`,
      });
      t.teardown(() => batch.close());
      return batch;
    },
  };
}
