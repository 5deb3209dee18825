// `skyfarm render scene.blend --frames 1-6 --wait --json` renders real frames with real Blender
// through a detached daemon the CLI starts, and `skyfarm jobs --json` lists the job done.
import t from 'tap';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

t.test('render six frames end to end from the CLI', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const scene = await makeScene(dir, { frames: [1, 6], outputPath: '//render/shot_####' });
  const env = cliEnv(t, join(dir, 'home'));

  const render = await runCli(['render', scene, '--frames', '1-6', '--wait', '--json'], { env, cwd: dir });
  t.equal(render.code, 0, `exit code 0 (stderr: ${render.stderr.slice(-500)})`);
  const job = JSON.parse(render.stdout) as Record<string, unknown>;
  t.match(job, { state: 'done', framesDone: 6, framesTotal: 6, framesFailed: 0, progress: 1 });
  t.match(job['stages'], { upload: 'done', copy: 'done', render: 'done', publish: 'done' });

  const outputDir = join(dir, 'render');
  const frames = readdirSync(outputDir)
    .filter((name) => !name.startsWith('.'))
    .sort();
  t.same(
    frames,
    [1, 2, 3, 4, 5, 6].map((n) => `shot_${String(n).padStart(4, '0')}.png`),
    'six frames, named as the scene says',
  );
  const png = await readPng(join(outputDir, frames[0]!));
  t.equal(png.width, 64, 'a real PNG at the scene resolution');
  t.equal(job['lastFrame'], join(outputDir, 'shot_0006.png'), 'lastFrame points at the newest frame');
  t.match(render.stderr, /rendering|done/, 'progress lines go to stderr so stdout stays JSON');

  const list = await runCli(['jobs', '--json'], { env });
  t.equal(list.code, 0);
  const jobs = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
  t.equal(jobs.length, 1);
  t.match(jobs[0], { id: job['id'], state: 'done' });

  const status = await runCli(['status', String(job['id'])], { env });
  t.match(status.stdout, /state\s+done/);
  const logs = await runCli(['logs', String(job['id'])], { env });
  t.match(logs.stdout, /Fra:|SKYFARM_FRAME_DONE/, "the job log holds Blender's output");

  const workDir = join(dir, 'home', 'work');
  t.same(readdirSync(workDir), [], 'the working folder was removed after publish');
});
