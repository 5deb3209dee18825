// A failing frame fails only its own frame: other frames still render and are delivered, the job
// ends `failed` naming what failed, and `render --wait` exits 2.
import t from 'tap';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

t.test(
  'a failing frame fails the job but delivers the frames that rendered',
  { skip: blenderSkip },
  async (t) => {
    const dir = t.testdir({});
    const scene = await makeScene(dir, { frames: [1, 4], failFirstFrame: true, outputPath: '//out/f_####' });
    const env = cliEnv(t, join(dir, 'home'));
    // Chunks of two: frame 1 fails chunk [1,2]; chunk [3,4] is independent.
    const result = await runCli(['render', scene, '--chunk-size', '2', '--wait', '--json'], {
      env,
      cwd: dir,
    });
    t.equal(result.code, 2, 'exit code 2: job failed');
    const job = JSON.parse(result.stdout) as Record<string, unknown>;
    t.match(job, {
      state: 'failed',
      framesDone: 3,
      framesFailed: 1,
      failedFrames: [1],
      error: { code: 'FRAMES_FAILED', message: /1 of 4 frames failed \(1\): .*no camera/ },
    });
    t.match(job['stages'], { render: 'failed', publish: 'done' }, 'publish still ran');
    t.same(
      readdirSync(join(dir, 'out')).sort(),
      ['f_0002.png', 'f_0003.png', 'f_0004.png'],
      'the good frames arrived',
    );
    const logs = await runCli(['logs', String(job['id'])], { env });
    t.match(logs.stdout, /frame 1 failed: .*no camera/, "Blender's message is in the job log");
    t.same(readdirSync(join(dir, 'home', 'work')), [], 'the working folder was removed after failure');
  },
);
