// An AWS render with neither --stack-name nor --bucket (nor SKYFARM_AWS_BUCKET) goes to the stack the
// daemon offers as its AWS backend in daemon.info: the one it deployed or saw ready last. Before, such
// a render was refused although daemon.info said AWS was available (the Blender add-on with no stack
// name in its preferences sent exactly that).
import t from 'tap';
import path from 'node:path';
import pino from 'pino';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { startDaemon } from '../daemon/src/daemon.js';
import { S3Bucket, createS3Client, settingsFromEnv } from '../daemon/src/batch/bucket.js';
import { jobKeys, type WorkerJobDocument } from '../daemon/src/batch/layout.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { StackInfo } from '../protocol/generated/protocol.js';
import { awsEnv, cleanEnv, startS3 } from './fakes/batch/aws-env.js';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startFakeCloudFormation } from './fakes/cloudformation/server.js';
import { startFakeEcr } from './fakes/ecr/server.js';
import { blenderCommand, blenderSkip, makeScene } from './helpers/scenes.js';

t.test(
  'render --backend aws without --stack-name uses the deployed stack',
  { skip: blenderSkip, timeout: 150_000 },
  async (t) => {
    const dir = t.testdir({});
    const s3 = await startS3(path.join(dir, 's3'), 'unused');
    t.teardown(() => s3.close());
    const cloudFormation = await startFakeCloudFormation({ stepMs: 2 });
    t.teardown(() => cloudFormation.close());
    const ecr = await startFakeEcr({ repositories: { 'skyfarm/worker': ['4.2.3'] } });
    t.teardown(() => ecr.close());
    const base = { ...cleanEnv(), ...awsEnv({ s3: s3.endpoint, ecr: ecr.endpoint }) };
    const stateDir = path.join(dir, 'home');
    const daemon = await startDaemon({
      stateDir,
      port: 0,
      env: {
        ...base,
        AWS_ENDPOINT_URL_CLOUDFORMATION: cloudFormation.url,
        // Batch is never asked: --prepare-only submits nothing.
        AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
        AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
        AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
        SKYFARM_BLENDER: blenderCommand,
      },
      logger: pino({ level: 'silent' }),
    });
    t.teardown(() => daemon.stop());
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
    const s3Client = createS3Client(settingsFromEnv(base, 'S3'));
    t.teardown(() => s3Client.destroy());
    await s3Client.send(new CreateBucketCommand({ Bucket: bucket }));
    t.equal(
      (await client.request('daemon.info', {})).backends.aws.available,
      true,
      'daemon.info: AWS available',
    );

    const run = await runSkyfarm(render, stateDir, dir);
    t.equal(run.code, 0, 'prepared on the stack', { stderr: run.stderr.slice(-2000) });
    const { jobId } = JSON.parse(run.stdout) as { jobId: string };
    const doc = await new S3Bucket(s3Client, bucket).getJson<WorkerJobDocument>(jobKeys(jobId).job);
    t.match(doc, { jobId, bucket, frames: [1, 2] }, 'job.json is in the deployed stack’s bucket');
    t.same(
      ecr.calls.map((c) => c.input['repositoryName']),
      ['skyfarm/worker'],
      'the worker image was checked in the stack’s repository',
    );
  },
);
