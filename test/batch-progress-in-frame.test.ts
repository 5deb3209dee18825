// Progress inside a frame on the fake AWS farm (s3rver, the fake Batch running the real worker with
// real Blender): two chunks of two frames render frames 1 and 3 at once; each worker writes its
// chunk's samples to jobs/<id>/progress/live/<chunk>.json, and the daemon, polling, shows progress
// strictly between no frame done and the two frames rendering done, an ETA, and "frame 1: n/64
// samples" with two frames rendering — before any frame ended. The workers' Blender output is held
// after its first sample line (test/helpers/gated-blender.ts) until the test has looked.
import t from 'tap';
import path from 'node:path';
import type { Job } from '../protocol/generated/protocol.js';
import { jobKeys, type ChunkLive } from '../daemon/src/batch/layout.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { gatedBlender } from './helpers/gated-blender.js';
import { recordUpdates, renderAndWait, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { until } from './helpers/until.js';

const SAMPLES = 64;

t.test(
  'render --backend aws: samples, progress and ETA of the frames rendering on the farm',
  { skip: blenderSkip, timeout: 240_000 },
  async (t) => {
    const gate = gatedBlender(t);
    const farm = await startFarm(t, { workerEnv: { SKYFARM_BLENDER: gate.path } });
    const daemon = await farm.startDaemon();
    const { updates } = await recordUpdates(t, daemon);
    const scene = await makeScene(path.join(farm.dir, 'project'), {
      frames: [1, 4],
      samples: SAMPLES,
      outputPath: '//render/shot_####',
    });
    const output = path.join(farm.dir, 'out');
    const waiting = renderAndWait(farm, scene, output, ['--chunk-size', '2']);

    // Both chunks have their first samples in (the fake farm runs two containers at once).
    try {
      await until(
        'both frames to show samples',
        () => updates.some((u) => u.live?.rendering === 2 && u.live.samplesDone >= 1),
        180_000,
        50,
      );
    } catch (error) {
      // What the daemon and the bucket saw, to tell a worker that wrote nothing from a daemon that read nothing.
      const last = updates.at(-1);
      const live = last ? await farm.bucket.list(jobKeys(last.id).livePrefix) : [];
      t.fail((error as Error).message, {
        last: last && {
          state: last.state,
          message: last.message,
          live: last.live,
          framesDone: last.framesDone,
        },
        liveUpdates: updates.filter((u) => u.live).map((u) => u.live),
        liveReports: await Promise.all(live.map((o) => farm.bucket.getJson(o.key))),
      });
      gate.open();
      await waiting;
      return;
    }
    const id = updates.find((u) => u.live)!.id;
    const status = await runSkyfarm(['status', id, '--json'], farm.stateDir, farm.dir);
    t.equal(status.code, 0, 'status exits 0', { stderr: status.stderr });
    const job = JSON.parse(status.stdout) as Job;
    t.match(job, { state: 'rendering', backend: 'aws', framesDone: 0, framesTotal: 4 });
    t.ok(
      job.progress > 0 && job.progress < 2 / 4,
      `progress ${job.progress} is strictly between no frame (0) and the two frames rendering (0.5)`,
    );
    t.ok(job.etaSeconds !== null && job.etaSeconds > 0, `an ETA before any frame ended: ${job.etaSeconds}`);
    t.match(job.live, { frame: 1, samplesTotal: SAMPLES, rendering: 2 }, 'frame 1 shown, two rendering');
    t.ok(job.live!.samplesDone >= 1 && job.live!.samplesDone < SAMPLES, `${job.live!.samplesDone} samples`);

    const text = await runSkyfarm(['status', id], farm.stateDir, farm.dir);
    t.match(
      text.stdout,
      new RegExp(`frame 1: \\d+/${SAMPLES} samples \\(2 frames rendering\\) · ETA \\d+`),
      'skyfarm status says so',
    );

    // What the workers wrote: one report per chunk, each about its own frame.
    const keys = jobKeys(id);
    const listed = await farm.bucket.list(keys.livePrefix);
    t.same(listed.map((o) => o.key).sort(), [keys.live(0), keys.live(1)], 'one live report per chunk');
    const reports = await Promise.all(listed.map((o) => farm.bucket.getJson<ChunkLive>(o.key)));
    t.same(
      reports.map((r) => [r?.chunk, r?.frame, r?.samplesTotal]).sort(),
      [
        [0, 1, SAMPLES],
        [1, 3, SAMPLES],
      ],
      'chunk 0 on frame 1, chunk 1 on frame 3',
    );
    t.ok(
      reports.every((r) => r?.secondsPerSample !== null && r!.secondsPerSample > 0),
      'each with a measured per-sample rate',
    );

    gate.open();
    const run = await waiting;
    t.equal(run.code, 0, 'the render ends well', { stderr: run.stderr.slice(-3000) });
    const final = JSON.parse(run.stdout) as Job;
    t.match(final, { state: 'done', framesDone: 4, progress: 1, etaSeconds: null });
    t.notOk('live' in final, 'nothing rendering once done');
    t.match(
      run.stderr,
      /frame 1: \d+\/64 samples \(2 frames rendering\) · ETA/,
      'the --wait printer showed it',
    );
  },
);
