// A daemon killed mid-render (SIGKILL: no cleanup) resumes the job when it starts again: the job
// finishes once, with every frame, and frames finished before the kill are not rendered again.
import t from 'tap';
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

t.test('resume after the daemon is killed', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  // Enough samples that frames 2 to 8 take longer than a few status calls of the CLI on a busy machine.
  const scene = await makeScene(dir, { frames: [1, 8], samples: 384, outputPath: '//out/r_####' });
  const home = join(dir, 'home');
  const env = cliEnv(t, home);
  const submitted = await runCli(['render', scene, '--chunk-size', '3', '--json'], { env, cwd: dir });
  t.equal(submitted.code, 0);
  const jobId = (JSON.parse(submitted.stdout) as { id: string }).id;

  type Snapshot = { state: string; framesDone: number; framesTotal: number; framesFailed: number };
  const status = async (): Promise<Snapshot> =>
    JSON.parse((await runCli(['status', jobId, '--json'], { env })).stdout) as Snapshot;
  let before: Snapshot = await status();
  const deadline = Date.now() + 90_000;
  while (before.framesDone < 2 && Date.now() < deadline) {
    await sleep(100);
    before = await status();
  }
  t.ok(
    before.framesDone >= 2 && before.framesDone < 8,
    `killed mid-render after ${before.framesDone} frames`,
  );
  const pid = (JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number }).pid;
  process.kill(pid, 'SIGKILL');
  await sleep(300);

  const restarted = await runCli(['daemon', 'start', '--json'], { env });
  t.equal(restarted.code, 0, 'a new daemon starts despite the stale lock');
  t.not((JSON.parse(restarted.stdout) as { pid: number }).pid, pid);

  let after = await status();
  const finishBy = Date.now() + 120_000;
  while (!['done', 'failed', 'canceled'].includes(after.state) && Date.now() < finishBy) {
    await sleep(250);
    after = await status();
  }
  t.match(after, { state: 'done', framesDone: 8, framesFailed: 0 }, 'the job finished with every frame');
  t.same(
    readdirSync(join(dir, 'out')).sort(),
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `r_000${n}.png`),
    'all eight frames, no partial files',
  );
  const log = (await runCli(['logs', jobId, '--tail', '100000'], { env })).stdout;
  t.match(log, /daemon restarted: resuming/);
  const renders = new Map<number, number>();
  for (const match of log.matchAll(/^SKYFARM_FRAME_DONE (\d+) /gm)) {
    const frame = Number(match[1]);
    renders.set(frame, (renders.get(frame) ?? 0) + 1);
  }
  t.ok(renders.size >= 8 - before.framesDone, `the log records the frames rendered (${renders.size})`);
  const twice = [...renders].filter(([, count]) => count > 1).map(([frame]) => frame);
  t.same(twice, [], 'no frame was rendered twice');
  t.same(readdirSync(join(home, 'work')), [], 'the working folder was removed');
});
