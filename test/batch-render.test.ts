// `skyfarm render scene.blend --backend aws --wait` end to end: the daemon uploads to s3rver and
// submits copy → render (array, one child per chunk) → publish to the fake Batch endpoint, which runs
// the real worker (real Blender, a folder as EFS); the daemon follows every frame (previews for
// "Show last frame"), downloads the frames into the output folder, and the mail is sent.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { NOTIFY_FROM, recordUpdates, renderAndWait, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import type { Job } from '../protocol/generated/protocol.js';

t.test(
  'render --backend aws --wait: frames from the farm in the output folder',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    // One container at a time, and the second chunk held until the daemon has counted the first
    // chunk's frames: an in-between count is then seen however fast the frames render (on a quiet
    // machine the two chunks ran side by side and all 4 frames ended within one poll).
    const farm = await startFarm(t, { maxRunning: 1 });
    const daemon = await farm.startDaemon();
    const { updates } = await recordUpdates(t, daemon);
    const renderChild = (index: number) =>
      [...farm.batch.jobs.values()].find((j) => j.jobName.endsWith('-render') && j.arrayIndex === index);
    const secondChunkHeld = (async () => {
      await farm.batch.waitFor(() => renderChild(0)?.status === 'RUNNING', 90_000, 'chunk 0 running');
      farm.batch.holdQueue('skyfarm-cpu-spot', true);
      try {
        await farm.batch.waitFor(
          () =>
            updates.some((u) => u.state === 'rendering' && u.framesDone > 0) ||
            renderChild(1)?.status !== 'RUNNABLE',
          90_000,
          'the first frames counted',
        );
      } finally {
        farm.batch.holdQueue('skyfarm-cpu-spot', false);
      }
    })();
    const project = path.join(farm.dir, 'project');
    // Enough samples that a frame outlasts a poll (250 ms): on a loaded machine 4 tiny frames ended
    // within one poll and no in-between count was seen.
    const scene = await makeScene(project, {
      frames: [1, 4],
      samples: 128,
      outputPath: '//render/shot_####',
      textures: [{ path: 'tex/grain é.png' }],
    });
    const output = path.join(farm.dir, 'out');

    const run = await renderAndWait(farm, scene, output, [
      '--chunk-size',
      '2',
      '--notify-email',
      'artist@example.com',
    ]);
    await secondChunkHeld;
    t.equal(run.code, 0, 'exit code 0', { stderr: run.stderr.slice(-3000) });
    const job = JSON.parse(run.stdout) as Job;
    t.match(job, {
      state: 'done',
      backend: 'aws',
      framesDone: 4,
      framesTotal: 4,
      framesFailed: 0,
      progress: 1,
    });
    t.same(job.stages, { upload: 'done', copy: 'done', render: 'done', publish: 'done' });

    // Frames in the output folder, complete, named as the scene says; no temporary files left.
    t.same(readdirSync(output).sort(), ['shot_0001.png', 'shot_0002.png', 'shot_0003.png', 'shot_0004.png']);
    for (const file of readdirSync(output))
      t.same((await readPng(path.join(output, file))).width, 64, `${file} is a real frame`);
    t.equal(job.lastFrame, path.join(output, 'shot_0004.png'));

    // Three Batch jobs, named and queued as designed, chained by dependsOn, submitted once each.
    const submits = farm.batch.calls.filter((c) => c.operation === 'submitjob').map((c) => c.input);
    t.same(
      submits.map((s) => [s['jobName'], s['jobQueue']]),
      [
        [`skyfarm-${job.id}-copy`, 'skyfarm-transfer'],
        [`skyfarm-${job.id}-render`, 'skyfarm-cpu-spot'],
        [`skyfarm-${job.id}-publish`, 'skyfarm-transfer'],
      ],
      'copy and publish on the transfer queue, render on the CPU spot queue',
    );
    const [copy, render, publish] = farm.batch
      .byName(`skyfarm-${job.id}-copy`)
      .concat(farm.batch.byName(`skyfarm-${job.id}-render`), farm.batch.byName(`skyfarm-${job.id}-publish`));
    t.equal(render?.arraySize, 2, 'one array child per chunk of two frames');
    t.same(render?.dependsOn, [{ jobId: copy?.jobId }], 'render depends on copy');
    t.same(publish?.dependsOn, [{ jobId: render?.jobId }], 'publish depends on render');
    t.same(render?.tags, { 'skyfarm:job': job.id, 'skyfarm:stage': 'render' }, 'tagged');
    t.same(
      render?.children?.map((c) => c.environment['SKYFARM_JOB_ID']),
      [job.id, job.id],
      'the stages get only the job id (and bucket) from the daemon',
    );

    // Status: one DescribeJobs per poll, never more than the tracked jobs, never per frame.
    const describes = farm.batch.calls.filter((c) => c.operation === 'describejobs');
    t.ok(describes.length > 2, `polled (${describes.length} DescribeJobs)`);
    t.ok(
      describes.every((c) => (c.input['jobs'] as string[]).length <= 3),
      'each DescribeJobs asks for this job’s (at most three) Batch jobs at once',
    );
    const gaps = describes.slice(1).map((c, i) => c.at - describes[i]!.at);
    t.ok(Math.min(...gaps) >= 150, `one DescribeJobs per poll (smallest gap ${Math.min(...gaps)} ms)`);

    // Live status: frames counted up and a preview pushed while chunks rendered.
    const rendering = updates.filter((u) => u.id === job.id && u.state === 'rendering');
    t.ok(
      rendering.some((u) => u.framesDone > 0 && u.framesDone < 4),
      'frames counted while rendering',
    );
    const previews = rendering.map((u) => u.lastFrame).filter((f): f is string => typeof f === 'string');
    t.ok(previews.length > 0, 'a preview was announced while rendering');
    t.match(
      previews[0],
      new RegExp(`previews/${job.id}/\\d\\.png$`),
      'the preview is a local file Blender can show',
    );
    t.ok(
      rendering.some((u) => /chunks: \d running/.test(u.message)),
      'chunk counts from the array statusSummary',
    );

    // Mail, cleanup.
    t.equal(farm.ses.sent.length, 1);
    t.equal(farm.ses.sent[0]?.from, NOTIFY_FROM);
    t.same(farm.ses.sent[0]?.to, ['artist@example.com']);
    t.match(farm.ses.sent[0]?.subject, /rendered \(4 frames\)/);
    t.notOk(
      existsSync(path.join(farm.efs, 'jobs', job.id)),
      'the EFS working folder is removed after publish',
    );

    // skyfarm logs --chunk N reads that chunk's CloudWatch stream.
    const logs = await runSkyfarm(['logs', job.id, '--chunk', '1', '--json'], farm.stateDir, farm.dir);
    t.equal(logs.code, 0, 'logs --chunk exits 0', { stderr: logs.stderr });
    const lines = JSON.parse(logs.stdout) as string[];
    t.ok(
      lines.some((l) => /SKYFARM_FRAME_DONE 3 /.test(l)),
      'chunk 1 rendered frame 3',
    );
    t.notOk(
      lines.some((l) => /SKYFARM_FRAME_DONE 1 /.test(l)),
      'and not frame 1 (chunk 0)',
    );
    const badChunk = await runSkyfarm(['logs', job.id, '--chunk', '5'], farm.stateDir, farm.dir);
    t.equal(badChunk.code, 1, 'a chunk that does not exist is an input error');

    // skyfarm download fetches the published frames again, anywhere.
    const again = path.join(farm.dir, 'again');
    const download = await runSkyfarm(
      ['download', job.id, '--output', again, '--json'],
      farm.stateDir,
      farm.dir,
    );
    t.equal(download.code, 0, 'download exits 0', { stderr: download.stderr });
    t.match(JSON.parse(download.stdout), { downloaded: 4, present: 4, output: again });
    t.same(readdirSync(again).sort(), readdirSync(output).sort());
    const repeat = await runSkyfarm(
      ['download', job.id, '--output', again, '--json'],
      farm.stateDir,
      farm.dir,
    );
    t.match(
      JSON.parse(repeat.stdout),
      { downloaded: 0, present: 4 },
      'a second download skips what is there',
    );
  },
);
