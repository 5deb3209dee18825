// AWS pipeline failure paths through the fakes with real Blender and the real worker:
// - a chunk with a frame Blender cannot render fails its chunk (exit code), AWS Batch fails the
//   render and the publish that depends on it, and the stack's EventBridge rule still publishes the
//   other frames and sends the failure mail; the job ends failed with the reason, frames downloaded;
// - a GPU job on a worker without a GPU fails loudly (never renders on the CPU), while copy and
//   publish stay on the transfer queue.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { renderAndWait, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import type { Job } from '../protocol/generated/protocol.js';
import { jobKeys, type JobResult } from '../daemon/src/batch/layout.js';

t.test(
  'a failing chunk: partial frames published and downloaded, failure mail, job failed with the reason',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t);
    await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 3], failFirstFrame: true });
    const output = path.join(farm.dir, 'out');
    const run = await renderAndWait(farm, scene, output, [
      '--chunk-size',
      '2',
      '--notify-email',
      'artist@example.com',
    ]);
    t.equal(run.code, 2, 'exit code 2: the job failed', { stderr: run.stderr.slice(-3000) });
    const job = JSON.parse(run.stdout) as Job;
    t.equal(job.state, 'failed');
    t.equal(job.error?.code, 'FRAMES_FAILED');
    t.match(
      job.message,
      /1 of 3 frames failed \(1\).*camera/i,
      'the message names the frame and Blender’s reason',
    );
    t.same(job.failedFrames, [1]);
    t.equal(job.framesDone, 2);
    t.same(readdirSync(output).sort(), ['frame_0002.png', 'frame_0003.png'], 'the other frames arrived');

    const render = farm.batch.byName(`skyfarm-${job.id}-render`)[0]!;
    t.equal(render.status, 'FAILED', 'the render array failed');
    t.same(
      render.children?.map((c) => c.status),
      ['FAILED', 'SUCCEEDED'],
      'chunk 0 (frame 1) failed by its exit code, chunk 1 succeeded',
    );
    t.equal(render.children?.[0]?.attempts.length, 1, 'an application error is not retried');
    const publish = farm.batch.byName(`skyfarm-${job.id}-publish`)[0]!;
    t.equal(publish.statusReason, 'Dependent Job failed', 'Batch failed the dependent publish, as it does');
    t.equal(publish.attempts.length, 0);
    t.equal(farm.batch.ruleSubmissions.length, 1, 'the stack’s rule submitted publish after the failure');
    t.same(farm.batch.ruleSubmissions[0]?.parameters['skyfarmJobId'], job.id);
    const fallback = farm.batch.jobs.get(farm.batch.ruleSubmissions[0]!.jobId)!;
    t.equal(fallback.queue.name, 'skyfarm-transfer');
    await farm.batch.waitFor(() => fallback.status === 'SUCCEEDED', 10_000, 'publish-after-failure to end');
    t.equal(fallback.status, 'SUCCEEDED', 'publish after the failure exits 0');

    const result = await farm.bucket.getJson<JobResult>(jobKeys(job.id).result);
    t.equal(result?.state, 'partial');
    t.equal(farm.ses.sent.length, 1, 'one mail');
    t.match(farm.ses.sent[0]?.subject, /1 of 3 frames failed/);
    t.match(farm.ses.sent[0]?.body, /Failed frames:\n {2}1: .*camera/i);
    t.notOk(
      existsSync(path.join(farm.efs, 'jobs', job.id)),
      'the EFS working folder is removed after a failure',
    );
  },
);

t.test(
  'GPU requested on a worker without a GPU fails loudly; copy/publish never on the GPU queue',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t);
    await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const output = path.join(farm.dir, 'out');
    const run = await renderAndWait(farm, scene, output, [
      '--device',
      'gpu',
      '--market',
      'on-demand',
      '--chunk-size',
      '1',
    ]);
    t.equal(run.code, 2, 'the job failed', { stderr: run.stderr.slice(-3000) });
    const job = JSON.parse(run.stdout) as Job;
    t.equal(job.state, 'failed');
    t.match(job.message, /GPU requested but Blender found no GPU/, 'the reason reaches the user');
    t.equal(job.framesDone, 0, 'nothing was rendered on the CPU instead');
    t.same(existsSync(output) ? readdirSync(output) : [], []);
    const submits = farm.batch.calls.filter((c) => c.operation === 'submitjob').map((c) => c.input);
    t.same(
      submits.map((s) => [String(s['jobName']).replace(job.id, 'J'), s['jobQueue']]),
      [
        ['skyfarm-J-copy', 'skyfarm-transfer'],
        ['skyfarm-J-render', 'skyfarm-gpu-on-demand'],
        ['skyfarm-J-publish', 'skyfarm-transfer'],
      ],
    );
    const gpuQueues = new Set(farm.batch.jobs.size ? ['skyfarm-gpu-spot', 'skyfarm-gpu-on-demand'] : []);
    const onGpu = [...farm.batch.jobs.values()].filter((j) => gpuQueues.has(j.queue.name));
    t.ok(onGpu.length > 0, 'the render ran on the GPU queue');
    t.ok(
      onGpu.every((j) => j.jobName.endsWith('-render')),
      'only render jobs ran on a GPU queue (not copy, publish or publish-after-failure)',
    );
    const logs = await runSkyfarm(['logs', job.id, '--chunk', '0'], farm.stateDir, farm.dir);
    t.match(logs.stdout, /GPU requested but Blender found no GPU: tried .*CUDA/, 'the chunk log says why');
  },
);
