// The AWS backend in-process for a test: a private database (jobs, AWS job records), job logs and
// one queued AWS job of two frames, plus a factory for backends over them that talk to the Batch and
// bucket stand-ins the test passes (no HTTP, no SDK). Through the HTTP fakes: test/fakes/batch/farm.ts.
import type { Test } from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { openDatabase } from '../../daemon/src/db/database.js';
import { JobRepo } from '../../daemon/src/jobs/job-repo.js';
import { JobLogs } from '../../daemon/src/jobs/job-log.js';
import type { JobSpec } from '../../daemon/src/jobs/job-spec.js';
import { AwsJobStore } from '../../daemon/src/batch/aws-store.js';
import { AwsBackend, type AwsBackendDeps } from '../../daemon/src/batch/aws-backend.js';
import { farmFromNames, type FarmSettings } from '../../daemon/src/batch/farm.js';
import type { IBatch } from '../../daemon/src/batch/batch-api.js';
import type { IBucket } from '../../daemon/src/batch/bucket.js';
import type { Job } from '../../protocol/generated/protocol.js';

export interface AwsBackendHarness {
  dir: string;
  repo: JobRepo;
  logs: JobLogs;
  store: AwsJobStore;
  /** The farm of bucket `bucket` (default names). */
  farm: FarmSettings;
  /** The job, created in `repo` (frames 1-2, chunks of one). */
  spec: JobSpec;
  /** Every job.update any backend sent. */
  updates: Job[];
  /** A backend over this database, its AWS clients `batch` and `bucket` (no logs); `deps` override. */
  backend(clients: { batch: IBatch; bucket: IBucket }, deps?: Partial<AwsBackendDeps>): AwsBackend;
}

export function awsBackendHarness(t: Test, options: { jobId: string; name: string }): AwsBackendHarness {
  const dir = t.testdir({});
  mkdirSync(join(dir, 'logs'));
  const db = openDatabase(join(dir, 'db.sqlite'));
  t.teardown(() => db.close());
  const repo = new JobRepo(db);
  const logs = new JobLogs(join(dir, 'logs'));
  const store = new AwsJobStore(db);
  const spec: JobSpec = {
    jobId: options.jobId,
    backend: 'aws',
    blendFile: join(dir, 'scene.blend'),
    sourceBlendFile: join(dir, 'scene.blend'),
    projectRoot: dir,
    temporaryBlend: false,
    scene: 'Scene',
    frames: [1, 2],
    framesSpec: '1-2',
    chunkSize: 1,
    outputDir: join(dir, 'out'),
    filePattern: 'frame_####',
    fileExtension: '.png',
    dependencies: [],
  };
  repo.create(spec, options.name);
  const updates: Job[] = [];
  return {
    dir,
    repo,
    logs,
    store,
    farm: farmFromNames('bucket'),
    spec,
    updates,
    backend: ({ batch, bucket }, deps = {}) =>
      new AwsBackend({
        repo,
        logs,
        store,
        notify: (event, data) => {
          if (event === 'job.update') updates.push(data as Job);
        },
        log: pino({ level: 'silent' }),
        previewsDir: join(dir, 'previews'),
        clients: () => ({ bucket, batch, logs: { read: async () => [] } }),
        ...deps,
      }),
  };
}
