// What a Batch container of the worker sees, without the fake Batch: s3rver as S3 (one bucket), the
// fake SES, a folder as EFS, and the environment a stage of one job runs with (run the worker itself
// with spawnWorker/runWorkerProcess from ./aws-env.js).
import path from 'node:path';
import type { Test } from 'tap';
import { S3Bucket, createS3Client, settingsFromEnv } from '../../../daemon/src/batch/bucket.js';
import { blenderCommand } from '../../helpers/scenes.js';
import { awsEnv, cleanEnv, startS3 } from './aws-env.js';
import { startFakeSes, type FakeSes } from '../ses/server.js';

export interface WorkerHost {
  /** The farm bucket, through a real S3 client. */
  bucket: S3Bucket;
  ses: FakeSes;
  /** The folder standing in for EFS. */
  efs: string;
  /** A stage's environment for job `jobId` (plus `extra`, e.g. AWS_BATCH_JOB_ARRAY_INDEX). */
  env(jobId: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

/** Starts s3rver (storing under `dir`/s3) and the fake SES, closed at teardown; EFS is `dir`/efs. */
export async function startWorkerHost(t: Test, dir: string): Promise<WorkerHost> {
  const s3 = await startS3(path.join(dir, 's3'));
  t.teardown(() => s3.close());
  const ses = await startFakeSes();
  t.teardown(() => ses.close());
  const base = { ...cleanEnv(), ...awsEnv({ s3: s3.endpoint, ses: ses.endpoint }) };
  const client = createS3Client(settingsFromEnv(base, 'S3'));
  t.teardown(() => client.destroy());
  const efs = path.join(dir, 'efs');
  return {
    bucket: new S3Bucket(client, s3.bucket),
    ses,
    efs,
    env: (jobId, extra = {}) => ({
      ...base,
      SKYFARM_JOB_ID: jobId,
      SKYFARM_BUCKET: s3.bucket,
      SKYFARM_EFS_ROOT: efs,
      SKYFARM_BLENDER: blenderCommand,
      ...extra,
    }),
  };
}
