// Pure pieces of the AWS pipeline: chunking within Batch's 10,000-child limit, frame file names as
// Blender writes them, queue choice (GPU never silently replaced), stack outputs → farm, Batch status
// → stage/chunk counts, the worker's configuration, and the fake EventBridge matcher.
import t from 'tap';
import {
  chunkOfFrame,
  chunksOf,
  effectiveChunkSize,
  frameFileName,
  jobKeys,
  MAX_ARRAY_CHILDREN,
} from '../daemon/src/batch/layout.js';
import { farmFromNames, farmFromStackOutputs, renderQueue } from '../daemon/src/batch/farm.js';
import { chunkCounts, failureReason, runnableExplanation, stageState } from '../daemon/src/batch/status.js';
import type { BatchJobInfo } from '../daemon/src/batch/batch-api.js';
import { readConfig } from '../infra/worker/config.js';
import { matchesPattern, transformInput } from './fakes/batch/events.js';

t.test('chunks: never more than 10,000 array children', async (t) => {
  t.equal(effectiveChunkSize(250, 10), 10);
  t.equal(effectiveChunkSize(100_000, 1), 10, '100,000 frames at 1 per chunk become 10 per chunk');
  t.equal(effectiveChunkSize(100_001, 1), 11);
  const frames = Array.from({ length: 100_001 }, (_, i) => i + 1);
  const chunks = chunksOf({ frames, chunkSize: effectiveChunkSize(frames.length, 1) });
  t.ok(chunks.length <= MAX_ARRAY_CHILDREN, `${chunks.length} chunks`);
  t.equal(chunkOfFrame({ frames: [1, 3, 5, 7, 9], chunkSize: 2 }, 7), 1);
  t.equal(chunkOfFrame({ frames: [1, 3], chunkSize: 2 }, 2), -1);
});

t.test('frame file names as Blender writes them', async (t) => {
  t.equal(frameFileName('frame_####', 7, '.png'), 'frame_0007.png');
  t.equal(frameFileName('shot_##_v#', 12, '.exr'), 'shot_##_v12.exr', 'the last run of # is the frame');
  t.equal(frameFileName('beauty', 3, '.png'), 'beauty0003.png', 'no # appends four digits');
  t.equal(frameFileName('f_###', 12345, '.jpg'), 'f_12345.jpg');
  // Patterns from Blender's own frame_path (probe.py) carry the extension, or none with it off.
  t.equal(frameFileName('####.png', 9, '.png'), '0009.png', "Blender's name for an output folder only");
  t.equal(frameFileName('noext_####', 9, ''), 'noext_0009', 'File Extensions off');
  t.equal(
    frameFileName('shot_##_v2.png', -3, '.png'),
    'shot_-03_v2.png',
    'a negative frame as Blender writes it',
  );
  t.throws(() => jobKeys('../etc'), /bad job id/);
  t.throws(() => jobKeys('j_1').output('../x.png'), /plain file name/);
});

t.test(
  'queues: copy/publish on transfer, render per device and market; no GPU queue is an error',
  async (t) => {
    const farm = farmFromNames('bucket');
    t.equal(renderQueue(farm, 'cpu', 'spot'), 'skyfarm-cpu-spot');
    t.equal(renderQueue(farm, 'cpu', 'on-demand'), 'skyfarm-cpu-on-demand');
    t.equal(renderQueue(farm, 'gpu', 'spot'), 'skyfarm-gpu-spot');
    t.equal(farm.queues.transfer, 'skyfarm-transfer');
    t.throws(() => renderQueue(farmFromNames('bucket', { gpu: false }), 'gpu', 'spot'), {
      code: 'BACKEND_UNAVAILABLE',
    });
    const fromStack = farmFromStackOutputs({
      BucketName: 'b',
      TransferQueueArn: 'arn:q/transfer',
      CpuSpotQueueArn: 'arn:q/cpu-spot',
      CpuOnDemandQueueArn: 'arn:q/cpu-od',
      TransferJobDefinitionArn: 'arn:jd/transfer:1',
      RenderJobDefinitionArn: 'arn:jd/render:1',
      LogGroupName: '/skyfarm/skyfarm',
      NotifyEmail: 'farm@example.com',
      DefaultBlenderVersion: '4.2.3',
    });
    t.match(fromStack, {
      bucket: 'b',
      notifyFrom: 'farm@example.com',
      jobDefinitions: { render: 'arn:jd/render:1' },
    });
    t.throws(
      () => renderQueue(fromStack, 'gpu', 'on-demand'),
      /no GPU queues/,
      'a stack without GPU refuses GPU jobs',
    );
    t.throws(() => farmFromStackOutputs({ BucketName: 'b' }), { code: 'STACK_NOT_SKYFARM' });
  },
);

t.test('Batch status → stages, chunk counts, reasons', async (t) => {
  const info = (fields: Partial<BatchJobInfo>): BatchJobInfo => ({
    jobId: 'x',
    name: 'n',
    status: 'PENDING',
    attempts: [],
    ...fields,
  });
  const array = info({ arraySize: 5, statusSummary: { RUNNING: 2, STARTING: 1, SUCCEEDED: 1, RUNNABLE: 1 } });
  const counts = chunkCounts(array, 5);
  t.same(counts, { queued: 1, running: 3, done: 1, failed: 0 });
  t.equal(stageState(array, counts), 'running', 'a PENDING parent with running children is running');
  t.equal(stageState(info({ status: 'RUNNABLE' })), 'pending');
  t.equal(stageState(info({ status: 'SUCCEEDED' })), 'done');
  t.same(chunkCounts(info({ status: 'RUNNING' }), 1), { queued: 0, running: 1, done: 0, failed: 0 });
  t.equal(
    failureReason(
      info({
        status: 'FAILED',
        attempts: [{ statusReason: 'Essential container in task exited', exitCode: 1 }],
      }),
    ),
    'Essential container in task exited (exit code 1)',
  );
  t.match(
    runnableExplanation('render', 'skyfarm-gpu-spot', 12 * 60_000),
    /12 min \(RUNNABLE on skyfarm-gpu-spot\).*quota/,
  );
});

t.test(
  'worker configuration: environment first, Batch parameter placeholders are absent values',
  async (t) => {
    const env = {
      SKYFARM_JOB_ID: 'j_1',
      SKYFARM_BUCKET: 'b',
      AWS_BATCH_JOB_ARRAY_INDEX: '3',
      AWS_BATCH_JOB_ATTEMPT: '2',
    };
    t.match(readConfig(['render'], env), {
      stage: 'render',
      jobId: 'j_1',
      efsRoot: '/mnt/efs',
      arrayIndex: 3,
      attempt: 2,
    });
    t.match(readConfig([], { ...env, SKYFARM_STAGE: 'copy' }), { stage: 'copy', arrayIndex: 3 });
    const fallback = readConfig(['publish', '--after-failure', '--job-id', 'j_9', '--reason', '-'], {
      SKYFARM_BUCKET: 'b',
    });
    t.match(fallback, { jobId: 'j_9', afterFailure: true, reason: null });
    t.throws(
      () => readConfig(['publish', '--job-id', 'Ref::skyfarmJobId'], { SKYFARM_BUCKET: 'b' }),
      /SKYFARM_JOB_ID/,
    );
    t.throws(() => readConfig(['render'], { ...env, AWS_BATCH_JOB_ARRAY_INDEX: '-1' }), /ARRAY_INDEX/);
  },
);

t.test('fake EventBridge: patterns and input transformer', async (t) => {
  const pattern = {
    source: ['aws.batch'],
    detail: {
      status: ['FAILED'],
      arrayProperties: { index: [{ exists: false }] },
      jobDefinition: [{ prefix: 'arn:x/render:' }],
    },
  };
  const event = (detail: Record<string, unknown>) => ({ source: 'aws.batch', detail });
  t.ok(
    matchesPattern(pattern, event({ status: 'FAILED', jobDefinition: 'arn:x/render:3' })),
    'a single job (no arrayProperties)',
  );
  t.ok(
    matchesPattern(
      pattern,
      event({ status: 'FAILED', jobDefinition: 'arn:x/render:3', arrayProperties: { size: 4 } }),
    ),
    'an array parent',
  );
  t.notOk(
    matchesPattern(
      pattern,
      event({ status: 'FAILED', jobDefinition: 'arn:x/render:3', arrayProperties: { index: 0 } }),
    ),
    'not a child',
  );
  t.notOk(matchesPattern(pattern, event({ status: 'SUCCEEDED', jobDefinition: 'arn:x/render:3' })));
  t.notOk(matchesPattern(pattern, event({ status: 'FAILED', jobDefinition: 'arn:x/transfer:1' })));
  const input = transformInput(
    { detail: { parameters: { id: 'j_1' }, statusReason: 'say "hi"' } },
    {
      InputPathsMap: { id: '$.detail.parameters.id', reason: '$.detail.statusReason' },
      InputTemplate: '{"Parameters": {"a": <id>, "b": <reason>}}',
    },
  );
  t.same(JSON.parse(input), { Parameters: { a: 'j_1', b: 'say "hi"' } }, 'values are JSON-escaped');
});
