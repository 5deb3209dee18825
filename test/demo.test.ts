// The README's first command: `npm run demo` renders the bundled scene through the daemon and says
// where the frames are; without Blender it explains how to install it and exits 1.
import t from 'tap';
import { join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { blenderSkip, readPng } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

t.test(
  'the demo renders six real frames and stops the daemon it started',
  { skip: blenderSkip },
  async (t) => {
    const dir = t.testdir({});
    const env = cliEnv(t, join(dir, 'home'));
    const output = join(dir, 'frames');
    const result = await runCli(['demo', '--output', output], { env, timeoutMs: 300_000 });
    t.equal(result.code, 0, `exit code 0 (${result.stderr.slice(-300)})`);
    t.match(result.stdout, /done in [\d.]+ s: 6 frames in /);
    const frames = readdirSync(output).sort();
    t.same(
      frames,
      [1, 2, 3, 4, 5, 6].map((n) => `demo_000${n}.png`),
    );
    for (const frame of frames) t.match(result.stdout, join(output, frame), `prints ${frame}`);
    const png = await readPng(join(output, frames[0]!));
    t.same([png.width, png.height], [320, 180], 'frames at the demo resolution');
    const status = await runCli(['daemon', 'status'], { env });
    t.equal(status.code, 4, 'the daemon the demo started is stopped again');
  },
);

t.test('without Blender the demo says how to install it and exits 1', async (t) => {
  const dir = t.testdir({});
  const env = cliEnv(t, join(dir, 'home'), {
    SKYFARM_BLENDER: join(dir, 'missing-blender'),
    PATH: '/nonexistent',
  });
  const result = await runCli(['demo', '--output', join(dir, 'frames')], { env });
  t.equal(result.code, 1);
  t.match(result.stderr, /apt-get install blender/);
  t.match(result.stderr, /blender\.org/);
  t.notOk(existsSync(join(dir, 'frames')), 'nothing was written');
});
