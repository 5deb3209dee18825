// Cancel stops Blender (the whole process group), marks the job canceled, removes the working
// folder, and a client waiting on the job exits 3.
import t from 'tap';
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

function blenderProcessesUsing(path: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('blender') && cmdline.includes(path)) pids.push(Number(entry));
    } catch {
      // process ended meanwhile
    }
  }
  return pids;
}

t.test('cancel a rendering job', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  // Enough work that the job is still rendering when canceled.
  const scene = await makeScene(dir, { frames: [1, 40], samples: 64 });
  const home = join(dir, 'home');
  const env = cliEnv(t, home);
  const submitted = await runCli(['render', scene, '--json'], { env, cwd: dir });
  t.equal(submitted.code, 0);
  const jobId = (JSON.parse(submitted.stdout) as { id: string }).id;

  // Wait (bounded) until Blender is really rendering this job.
  const deadline = Date.now() + 60_000;
  let state = '';
  while (Date.now() < deadline) {
    state = (JSON.parse((await runCli(['status', jobId, '--json'], { env })).stdout) as { state: string })
      .state;
    if (state === 'rendering' && blenderProcessesUsing(join(home, 'work', jobId)).length > 0) break;
    await sleep(200);
  }
  t.equal(state, 'rendering', 'the job reached rendering');
  t.ok(blenderProcessesUsing(join(home, 'work', jobId)).length > 0, 'Blender is running for it');

  const cancel = await runCli(['cancel', jobId, '--json'], { env });
  t.equal(cancel.code, 0);
  t.match(JSON.parse(cancel.stdout), { id: jobId, state: 'canceled' });
  t.same(blenderProcessesUsing(join(home, 'work', jobId)), [], 'no Blender process is left');
  t.same(readdirSync(join(home, 'work')), [], 'the working folder was removed');

  const status = await runCli(['status', jobId, '--json'], { env });
  const job = JSON.parse(status.stdout) as { state: string; stages: Record<string, string> };
  t.equal(job.state, 'canceled');
  t.equal(job.stages['render'], 'canceled');

  const again = await runCli(['cancel', jobId, '--json'], { env });
  t.equal(again.code, 1, 'canceling a finished job is an input error');
  t.match(JSON.parse(again.stdout), { error: { code: 'JOB_FINISHED' } });
});

t.test('a client waiting on a job exits 3 when it is canceled', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const scene = await makeScene(dir, { frames: [1, 40], samples: 64 });
  const env = cliEnv(t, join(dir, 'home'));
  let jobId = '';
  const waiting = runCli(['render', scene, '--wait'], {
    env,
    cwd: dir,
    onStdout: (text) => {
      jobId ||= /submitted (j_[0-9a-f]+)/.exec(text)?.[1] ?? '';
    },
  });
  const deadline = Date.now() + 60_000;
  while (!jobId && Date.now() < deadline) await sleep(100);
  t.ok(jobId, 'the job was submitted');
  const cancel = await runCli(['cancel', jobId], { env });
  t.equal(cancel.code, 0);
  const result = await waiting;
  t.equal(result.code, 3, 'render --wait exits 3 for a canceled job');
  t.match(result.stdout, /state\s+canceled/);
});
