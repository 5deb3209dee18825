// `skyfarm render --backend aws --prepare-only` uploads and writes job.json without submitting, prints
// {"jobId"}, and the worker then runs by hand as the README shows: copy, render, publish.
import t from 'tap';
import path from 'node:path';
import { blenderCommand, blenderSkip, makeScene } from './helpers/scenes.js';
import { runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { runWorkerProcess } from './fakes/batch/aws-env.js';
import { jobKeys, type JobResult, type WorkerJobDocument } from '../daemon/src/batch/layout.js';

t.test('--prepare-only, then the worker by hand', { skip: blenderSkip, timeout: 115_000 }, async (t) => {
  const farm = await startFarm(t);
  const daemon = await farm.startDaemon();
  const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
  const run = await runSkyfarm(
    ['render', scene, '--backend', 'aws', '--chunk-size', '5', '--device', 'cpu', '--prepare-only'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(run.code, 0, 'exit 0', { stderr: run.stderr });
  const { jobId } = JSON.parse(run.stdout) as { jobId: string };
  t.match(jobId, /^j_[0-9a-f]{12}$/, 'prints { jobId }');
  t.equal(farm.batch.calls.filter((c) => c.operation === 'submitjob').length, 0, 'nothing submitted');
  const doc = await farm.bucket.getJson<WorkerJobDocument>(jobKeys(jobId).job);
  t.match(doc, { jobId, frames: [1, 2], chunkSize: 5, device: 'cpu', bucket: farm.s3.bucket });
  const job = daemon.jobs.get(jobId);
  t.equal(job.state, 'done');
  t.same(job.stages, { upload: 'done', copy: 'skipped', render: 'skipped', publish: 'skipped' });

  const env = {
    ...farm.daemonEnv,
    SKYFARM_JOB_ID: jobId,
    SKYFARM_BUCKET: farm.s3.bucket,
    SKYFARM_EFS_ROOT: farm.efs,
    SKYFARM_BLENDER: blenderCommand,
  };
  for (const [stage, extra] of [
    ['copy', {}],
    ['render', { AWS_BATCH_JOB_ARRAY_INDEX: '0' }],
    ['publish', {}],
  ] as const) {
    const result = await runWorkerProcess([stage], { ...env, ...extra });
    t.equal(result.code, 0, `skyfarm-worker ${stage} exits 0`, { output: result.output.slice(-3000) });
  }
  const result = await farm.bucket.getJson<JobResult>(jobKeys(jobId).result);
  t.equal(result?.state, 'succeeded');
  t.same((await farm.bucket.list(jobKeys(jobId).outputPrefix)).map((o) => path.basename(o.key)).sort(), [
    'frame_0001.png',
    'frame_0002.png',
  ]);
});
