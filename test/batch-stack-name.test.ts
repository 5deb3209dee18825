// The `--stack-name N` path end to end: `skyfarm deploy --stack-name N` creates the stack through the
// fake CloudFormation, the daemon remembers its outputs (bucket, queue and job definition ARNs, log
// group, image repository), and `skyfarm render --backend aws --stack-name N --wait` renders on the
// fake Batch with exactly those resources (worker image checked in the stack's repository).
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Job, StackInfo } from '../protocol/generated/protocol.js';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startStackFakes } from './fakes/batch/stack.js';
import { blenderSeriesNewerThan, blenderSkip, makeScene } from './helpers/scenes.js';

const ownSeries = blenderSeriesNewerThan('4.2');

const STACK = 'farm2';

t.test(
  'deploy --stack-name N, then render --stack-name N --wait',
  { skip: blenderSkip, timeout: 170_000 },
  async (t) => {
    const fakes = await startStackFakes(t, {
      // The default image, and one that opens what a Blender newer than 4.2 under test saves.
      images: { [`${STACK}/worker`]: ['4.2.3', ...(ownSeries ? [ownSeries] : [])] },
    });
    const { dir, stateDir, cloudFormation, ecr } = fakes;
    // The queues and job definitions of a stack with NamePrefix farm2, as the template names them (the
    // bucket each stage uses comes with its submit).
    const batch = await fakes.startBatch({
      bucket: 'from-the-submit',
      namePrefix: STACK,
      gpu: true,
      maxRunning: 2,
    });
    await fakes.startDaemon(fakes.daemonEnv(batch.endpoint));

    const deploy = await runSkyfarm(['deploy', '--stack-name', STACK, '--yes', '--json'], stateDir, dir);
    t.equal(deploy.code, 0, deploy.stderr.slice(-2000));
    const { stack } = JSON.parse(deploy.stdout) as { stack: StackInfo };
    t.equal(stack.status, 'CREATE_COMPLETE');
    t.match(stack.outputs, {
      BucketName: /^farm2-bucket-/,
      CpuSpotQueueArn: `arn:aws:batch:us-east-1:123456789012:job-queue/${STACK}-cpu-spot`,
      RenderJobDefinitionArn: `arn:aws:batch:us-east-1:123456789012:job-definition/${STACK}-render:1`,
      RepositoryName: `${STACK}/worker`,
      LogGroupName: `/skyfarm/${STACK}`,
    });
    // CloudFormation "created" the bucket; in s3rver it has to be made by hand.
    await fakes.createBucket(stack.outputs['BucketName']!);
    const cfnCalls = cloudFormation.calls.length;

    const scene = await makeScene(path.join(dir, 'project'), { frames: [1, 3] });
    const output = path.join(dir, 'out');
    const run = await runSkyfarm(
      [
        'render',
        scene,
        '--backend',
        'aws',
        '--stack-name',
        STACK,
        '--chunk-size',
        '2',
        '--output',
        output,
        '--wait',
        '--json',
      ],
      stateDir,
      dir,
      150_000,
    );
    t.equal(run.code, 0, run.stderr.slice(-3000));
    const job = JSON.parse(run.stdout) as Job;
    t.equal(job.state, 'done');
    for (const frame of ['frame_0001.png', 'frame_0002.png', 'frame_0003.png'])
      t.ok(existsSync(path.join(output, frame)), `${frame} downloaded`);

    // The remembered outputs were used: no CloudFormation call for the render, the stack's own ARNs.
    t.equal(cloudFormation.calls.length, cfnCalls, 'the render did not ask CloudFormation again');
    const submits = batch.calls.filter((c) => c.operation === 'submitjob').map((c) => c.input);
    t.same(
      submits.map((s) => [s['jobName'], s['jobQueue'], s['jobDefinition']]),
      [
        [
          `skyfarm-${job.id}-copy`,
          stack.outputs['TransferQueueArn'],
          stack.outputs['TransferJobDefinitionArn'],
        ],
        [
          `skyfarm-${job.id}-render`,
          stack.outputs['CpuSpotQueueArn'],
          // A scene newer than the stack's default image renders in its own series' image, through
          // the definition derived from the stack's.
          ownSeries
            ? `arn:aws:batch:us-east-1:123456789012:job-definition/${STACK}-render-blender-${ownSeries.replace('.', '-')}:1`
            : stack.outputs['RenderJobDefinitionArn'],
        ],
        [
          `skyfarm-${job.id}-publish`,
          stack.outputs['TransferQueueArn'],
          stack.outputs['TransferJobDefinitionArn'],
        ],
      ],
    );
    t.ok(
      submits.every((s) =>
        (
          (s['containerOverrides'] as { environment: Array<{ name: string; value: string }> }).environment ??
          []
        ).some((e) => e.name === 'SKYFARM_BUCKET' && e.value === stack.outputs['BucketName']),
      ),
      'every stage works in the stack bucket',
    );
    t.same(
      ecr.calls.map((c) => c.input['repositoryName']),
      [`${STACK}/worker`],
      'the worker image was looked up in the stack repository, once',
    );
  },
);
