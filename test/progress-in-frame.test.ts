// Progress inside a frame on the local backend, with real Blender (Cycles and Eevee): while frame 1
// of 2 renders, `skyfarm status --json` shows progress strictly between 0 and one frame's worth, an
// ETA, and the frame's samples; `skyfarm status`, `skyfarm jobs` and the `--wait` printer say
// "frame 1: n/N samples · ETA …". Blender's output is held right after its first sample line
// (test/helpers/gated-blender.ts) until the test has looked, so the frame is "long" on any machine.
import t from 'tap';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../protocol/generated/protocol.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';
import { gatedBlender } from './helpers/gated-blender.js';

// Eevee renders on Mesa's llvmpipe here (software OpenGL), where a sample costs far more than a Cycles
// sample of this tiny frame: a loaded machine took over 4 minutes a frame at 64.
const SAMPLES_OF = { CYCLES: 64, BLENDER_EEVEE: 16 } as const;

for (const engine of ['CYCLES', 'BLENDER_EEVEE'] as const) {
  const SAMPLES = SAMPLES_OF[engine];
  t.test(
    `${engine}: samples, progress and ETA before the first frame ends`,
    { skip: blenderSkip },
    async (t) => {
      const dir = t.testdir({});
      const scene = await makeScene(dir, {
        frames: [1, 2],
        samples: SAMPLES,
        engine,
        outputPath: '//render/f_####',
      });
      const gate = gatedBlender(t);
      const env = cliEnv(t, join(dir, 'home'), { SKYFARM_BLENDER: gate.path });

      // `render --wait` follows the job from job.update events; its lines (stderr) are checked at the end.
      const waiting = runCli(['render', scene, '--frames', '1-2', '--wait', '--json'], {
        env,
        cwd: dir,
        timeoutMs: 300_000,
      });
      const status = async (id: string): Promise<Job> => {
        const run = await runCli(['status', id, '--json'], { env });
        t.equal(run.code, 0, 'status exits 0', { stderr: run.stderr });
        return JSON.parse(run.stdout) as Job;
      };

      // The job, once Blender's first samples of frame 1 are in (polled, at most 3 min).
      let seen: Job | undefined;
      for (let attempt = 0; attempt < 360 && !seen; attempt++) {
        const list = await runCli(['jobs', '--json'], { env });
        const jobs = list.code === 0 ? (JSON.parse(list.stdout) as Job[]) : [];
        seen = jobs.find((job) => (job.live?.samplesDone ?? 0) >= 1);
        if (!seen) await sleep(500);
      }
      if (!seen) throw new Error('no job showed the samples of its first frame');

      const first = await status(seen.id);
      t.match(first, { state: 'rendering', framesDone: 0, framesTotal: 2, framesFailed: 0 });
      t.ok(
        first.progress > 0 && first.progress < 0.5,
        `progress ${first.progress} is strictly between no frame (0) and one frame (0.5)`,
      );
      t.ok(
        first.etaSeconds !== null && first.etaSeconds > 0,
        `an ETA before any frame ended: ${first.etaSeconds}`,
      );
      t.same(
        {
          frame: first.live?.frame,
          samplesTotal: first.live?.samplesTotal,
          rendering: first.live?.rendering,
        },
        { frame: 1, samplesTotal: SAMPLES, rendering: 1 },
        'live: frame 1 of one rendering, its samples total from Blender',
      );
      t.ok(
        first.live!.samplesDone >= 1 && first.live!.samplesDone < SAMPLES,
        `samples done as Blender reported them: ${first.live!.samplesDone}`,
      );

      // The estimate runs on between Blender's reports, never backwards, never past the frame.
      const later = await status(seen.id);
      t.ok(
        later.progress >= first.progress && later.progress < 0.5,
        `a later look: progress ${later.progress} (was ${first.progress})`,
      );
      t.equal(later.framesDone, 0, 'still frame 1');

      const text = await runCli(['status', seen.id], { env });
      t.match(
        text.stdout,
        new RegExp(`progress\\s+\\d+% · frame 1: \\d+/${SAMPLES} samples · ETA \\d+`),
        'skyfarm status: "frame 1: n/N samples · ETA …"',
      );
      const jobs = await runCli(['jobs'], { env });
      t.match(
        jobs.stdout,
        new RegExp(`${seen.id}\\s+rendering\\s+0/2 .*· frame 1: \\d+/${SAMPLES} samples · ETA \\d+`),
        'skyfarm jobs: the same on the job’s line',
      );

      gate.open();
      const run = await waiting;
      t.equal(run.code, 0, 'render --wait exits 0', { stderr: run.stderr.slice(-2000) });
      const final = JSON.parse(run.stdout) as Job;
      t.match(final, { state: 'done', framesDone: 2, progress: 1, etaSeconds: null });
      t.notOk('live' in final, 'no frame rendering once done');
      t.match(
        run.stderr,
        new RegExp(`${final.id} rendering 0/2 frames — .* · frame 1: \\d+/${SAMPLES} samples · ETA \\d+`),
        'the --wait printer showed frame 1’s samples and an ETA from job.update events',
      );
    },
  );
}
