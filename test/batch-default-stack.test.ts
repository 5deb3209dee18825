// An AWS render with neither --stack-name nor --bucket (nor SKYFARM_AWS_BUCKET) goes to the stack the
// daemon offers as its AWS backend in daemon.info: the one it deployed or saw ready last. Before, such
// a render was refused although daemon.info said AWS was available (the Blender add-on with no stack
// name in its preferences sent exactly that).
import t from 'tap';
import path from 'node:path';
import { jobKeys, type WorkerJobDocument } from '../daemon/src/batch/layout.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { StackInfo } from '../protocol/generated/protocol.js';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startStackFakes } from './fakes/batch/stack.js';
import { blenderSeriesNewerThan, blenderSkip, makeScene } from './helpers/scenes.js';

const ownSeries = blenderSeriesNewerThan('4.2');

t.test(
  'render --backend aws without --stack-name uses the deployed stack',
  { skip: blenderSkip, timeout: 150_000 },
  async (t) => {
    const fakes = await startStackFakes(t, {
      // The default image, and one that opens what a Blender newer than 4.2 under test saves.
      images: { 'skyfarm/worker': ['4.2.3', ...(ownSeries ? [ownSeries] : [])] },
    });
    const { dir, stateDir, ecr } = fakes;
    // Batch is never asked: --prepare-only submits nothing.
    await fakes.startDaemon(fakes.daemonEnv());
    const client = await DaemonClient.connect({ stateDir, clientName: 'test', clientVersion: '1' });
    t.teardown(() => client.close());
    const scene = await makeScene(path.join(dir, 'project'), { frames: [1, 2] });
    const render = ['render', scene, '--backend', 'aws', '--prepare-only'];

    // No stack yet: AWS is unavailable and the render says what to do.
    t.equal((await client.request('daemon.info', {})).backends.aws.available, false);
    const refused = await runSkyfarm(render, stateDir, dir);
    t.equal(refused.code, 1, 'refused (usage/input error)');
    t.match(refused.stderr, /the AWS backend needs a farm: deploy one/);

    const deploy = await runSkyfarm(['deploy', '--yes', '--json'], stateDir, dir);
    t.equal(deploy.code, 0, 'deployed', { stderr: deploy.stderr.slice(-2000) });
    const { stack } = JSON.parse(deploy.stdout) as { stack: StackInfo };
    const bucket = stack.outputs['BucketName']!;
    const s3Bucket = await fakes.createBucket(bucket);
    t.equal(
      (await client.request('daemon.info', {})).backends.aws.available,
      true,
      'daemon.info: AWS available',
    );

    const run = await runSkyfarm(render, stateDir, dir);
    t.equal(run.code, 0, 'prepared on the stack', { stderr: run.stderr.slice(-2000) });
    const { jobId } = JSON.parse(run.stdout) as { jobId: string };
    const doc = await s3Bucket.getJson<WorkerJobDocument>(jobKeys(jobId).job);
    t.match(doc, { jobId, bucket, frames: [1, 2] }, 'job.json is in the deployed stack’s bucket');
    t.same(
      ecr.calls.map((c) => c.input['repositoryName']),
      ['skyfarm/worker'],
      'the worker image was checked in the stack’s repository',
    );
  },
);
