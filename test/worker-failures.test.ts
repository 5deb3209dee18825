// The worker's failure paths, run for real (s3rver, a folder as EFS, real Blender, fake SES): a chunk
// with a frame Blender cannot render exits non-zero and publish still publishes the rest with a
// failure mail; a GPU job on a machine without a GPU fails loudly instead of rendering on the CPU;
// publish after a cancel; a mail that SES rejects is reported; missing configuration exits 2.
import t, { type Test } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { blenderCommand, blenderSkip, makeScene } from './helpers/scenes.js';
import { cleanEnv, runWorkerProcess } from './fakes/batch/aws-env.js';
import { startWorkerHost } from './fakes/batch/worker-host.js';
import type { FakeSes } from './fakes/ses/server.js';
import type { S3Bucket } from '../daemon/src/batch/bucket.js';
import { prepareJob } from '../daemon/src/batch/prepare.js';
import { jobKeys, type CancelRequest, type FrameMarker, type JobResult } from '../daemon/src/batch/layout.js';
import { probeBlend } from '../daemon/src/render/blender.js';

interface Setup {
  dir: string;
  efs: string;
  bucket: S3Bucket;
  ses: FakeSes;
  prepare(
    jobId: string,
    blend: string,
    extra?: { device?: 'cpu' | 'gpu'; chunkSize?: number },
  ): Promise<void>;
  env(jobId: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

async function setup(t: Test): Promise<Setup> {
  const dir = t.testdir({});
  const host = await startWorkerHost(t, dir);
  const { efs, bucket, ses } = host;
  return {
    dir,
    efs,
    bucket,
    ses,
    async prepare(jobId, blend, extra = {}) {
      const probe = await probeBlend(blenderCommand, blend);
      await prepareJob({
        jobId,
        name: `failure ${jobId}`,
        blendFile: blend,
        sourceBlendFile: blend,
        projectRoot: path.dirname(blend),
        dependencies: probe.dependencies,
        scene: probe.scene.name,
        frames: [1, 2, 3],
        chunkSize: extra.chunkSize ?? 3,
        filePattern: 'frame_####',
        fileExtension: '.png',
        device: extra.device ?? 'cpu',
        market: 'on-demand',
        blenderVersion: '3.4.1',
        notify: { to: 'artist@example.com', from: 'farm@example.com' },
        bucket,
      });
    },
    env: host.env,
  };
}

t.test(
  'a failing frame fails its chunk; publish after the failure publishes the rest and mails why',
  { skip: blenderSkip, timeout: 110_000 },
  async (t) => {
    const s = await setup(t);
    const blend = await makeScene(path.join(s.dir, 'bad'), { frames: [1, 3], failFirstFrame: true });
    await s.prepare('j_badframe', blend);
    t.equal((await runWorkerProcess(['copy'], s.env('j_badframe'))).code, 0, 'copy succeeds');
    const render = await runWorkerProcess(['render'], s.env('j_badframe'));
    t.equal(render.code, 1, 'the chunk exits 1 because frame 1 failed', { output: render.output });
    const keys = jobKeys('j_badframe');
    const marker1 = await s.bucket.getJson<FrameMarker>(keys.frame(1));
    t.equal(marker1?.state, 'failed', 'frame 1 has a failure marker');
    t.match(marker1?.message, /camera/i, 'with Blender’s reason');
    t.equal((await s.bucket.getJson<FrameMarker>(keys.frame(2)))?.state, 'done', 'frame 2 rendered');
    t.equal((await s.bucket.getJson<FrameMarker>(keys.frame(3)))?.state, 'done', 'frame 3 rendered');

    // What the stack's EventBridge rule submits when the render job fails.
    const publish = await runWorkerProcess(
      [
        'publish',
        '--after-failure',
        '--job-id',
        'j_badframe',
        '--reason',
        'Essential container in task exited',
      ],
      { ...s.env('j_badframe'), SKYFARM_JOB_ID: '' },
    );
    t.equal(publish.code, 0, 'publish after a failed render exits 0', { output: publish.output });
    const result = await s.bucket.getJson<JobResult>(keys.result);
    t.equal(result?.state, 'partial');
    t.same(
      result?.ok.map((o) => o.frame),
      [2, 3],
    );
    t.same(
      result?.failed.map((f) => f.frame),
      [1],
    );
    t.match(result?.reason, /camera/i);
    t.same(
      (await s.bucket.list(keys.outputPrefix)).map((o) => o.key).sort(),
      [keys.output('frame_0002.png'), keys.output('frame_0003.png')],
      'the partial frames are published',
    );
    t.equal(s.ses.sent.length, 1);
    t.match(s.ses.sent[0]?.subject, /1 of 3 frames failed/);
    t.match(s.ses.sent[0]?.body, /1: .*camera/i, 'the mail says which frame failed and why');
    t.notOk(
      existsSync(path.join(s.efs, 'jobs', 'j_badframe')),
      'the working folder is removed after a failure',
    );
  },
);

t.test(
  'a GPU job on a machine without a GPU fails loudly, never on the CPU',
  { skip: blenderSkip, timeout: 110_000 },
  async (t) => {
    const s = await setup(t);
    const blend = await makeScene(path.join(s.dir, 'gpu'), { frames: [1, 3] });
    await s.prepare('j_gpu', blend, { device: 'gpu', chunkSize: 2 });
    t.equal((await runWorkerProcess(['copy'], s.env('j_gpu'))).code, 0, 'copy succeeds');
    const render = await runWorkerProcess(['render'], s.env('j_gpu', { AWS_BATCH_JOB_ARRAY_INDEX: '0' }));
    t.equal(render.code, 1, 'the chunk fails', { output: render.output });
    t.match(render.output, /GPU requested but Blender found no GPU: tried .*CUDA/, 'the log says why');
    t.notMatch(render.output, /SKYFARM_FRAME_DONE/, 'no frame was rendered on the CPU');
    t.same(readdirSync(path.join(s.efs, 'jobs', 'j_gpu', 'output')), [], 'no frame file');
    for (const frame of [1, 2]) {
      const marker = await s.bucket.getJson<FrameMarker>(jobKeys('j_gpu').frame(frame));
      t.equal(marker?.state, 'failed', `frame ${frame} is marked failed`);
      t.match(marker?.message, /no GPU/);
    }
    t.notOk(await s.bucket.exists(jobKeys('j_gpu').frame(3)), 'chunk 1 did not run: no marker for frame 3');
  },
);

t.test(
  'publish after a cancel publishes what exists and says canceled; SES failures are not swallowed',
  { skip: blenderSkip, timeout: 110_000 },
  async (t) => {
    const s = await setup(t);
    const blend = await makeScene(path.join(s.dir, 'cancel'), { frames: [1, 3] });
    await s.prepare('j_cancel', blend, { chunkSize: 1 });
    t.equal((await runWorkerProcess(['copy'], s.env('j_cancel'))).code, 0, 'copy succeeds');
    const chunk = await runWorkerProcess(['render'], s.env('j_cancel', { AWS_BATCH_JOB_ARRAY_INDEX: '1' }));
    t.equal(chunk.code, 0, 'one chunk finished before the cancel', { output: chunk.output });
    const keys = jobKeys('j_cancel');
    const cancel: CancelRequest = {
      jobId: 'j_cancel',
      reason: 'canceled by the user',
      at: new Date().toISOString(),
    };
    await s.bucket.putJson(keys.cancel, cancel);
    s.ses.failWith = 'MessageRejected';
    const publish = await runWorkerProcess(['publish'], s.env('j_cancel'));
    t.equal(publish.code, 1, 'a rejected mail fails the stage', { output: publish.output });
    const result = await s.bucket.getJson<JobResult>(keys.result);
    t.equal(result?.state, 'canceled');
    t.equal(result?.reason, 'canceled by the user');
    t.same(
      result?.ok.map((o) => o.frame),
      [2],
    );
    t.same(result?.missing, [1, 3]);
    t.match(result?.mail?.error, /MessageRejected/, 'the mail failure is recorded in result.json');
    t.notOk(existsSync(path.join(s.efs, 'jobs', 'j_cancel')), 'the working folder is removed after a cancel');

    s.ses.failWith = null;
    const again = await runWorkerProcess(['publish'], s.env('j_cancel'));
    t.equal(again.code, 0, 'a retried publish succeeds once SES accepts', { output: again.output });
    t.match(s.ses.sent[0]?.subject, /canceled/);
  },
);

t.test('missing configuration exits 2 with a message', async (t) => {
  const run = await runWorkerProcess(['render'], { ...cleanEnv(), SKYFARM_JOB_ID: 'j_x' });
  t.equal(run.code, 2);
  t.match(run.output, /SKYFARM_BUCKET is not set/);
  const usage = await runWorkerProcess(['bake'], {
    ...cleanEnv(),
    SKYFARM_JOB_ID: 'j_x',
    SKYFARM_BUCKET: 'b',
  });
  t.equal(usage.code, 2);
  t.match(usage.output, /usage: skyfarm-worker copy\|render\|publish/);
});
