// Crash safety of cancel on the local backend: a real `skyfarm daemon` renders a long local job and is
// SIGKILLed twice while canceling it — right after the cancel was recorded (before Blender was stopped)
// and after Blender was stopped and the working folder removed (before the job was marked canceled).
// The next daemon must not render on: it stops the Blender the killed daemon left running, removes the
// working folder and ends the job canceled exactly once (one "canceled" log line, which goes with its
// one job.update). The output folder holds only whole frames published before the cancel.
// (The AWS side: test/reliability-crash-aws.test.ts; the in-process cases: test/aws-cancel.test.ts.)
// The kill points come from the preload of test/helpers/crash-daemon.ts (as in reliability-crash.test.ts).
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import {
  blenderProcessesIn as blenderIn,
  cancelAnswer,
  crashableDaemons,
  localCliDaemon,
  type CrashPlan,
} from './helpers/crash-daemon.js';
import type { Job } from '../protocol/generated/protocol.js';

t.test(
  'SIGKILL while canceling a local job: the next daemon finishes the cancel, once',
  { skip: blenderSkip, timeout: 150_000 },
  async (t) => {
    const dir = t.testdir({});
    const home = join(dir, 'home');
    const scene = await makeScene(join(dir, 'project'), { frames: [1, 40], samples: 64 });
    const output = join(dir, 'out');
    const daemons = crashableDaemons(t, {
      dir,
      home,
      ...localCliDaemon(home),
      clientName: 'crash-cancel',
    });
    t.teardown(() => {
      for (const pid of blenderIn(home)) process.kill(pid, 'SIGKILL');
    });

    // Each dies just before it writes the job-log line its pattern names.
    const plans: CrashPlan[] = [
      {
        label: 'cancel recorded, Blender not yet stopped',
        on: 'log',
        pattern: '^\\[skyfarm\\] cancel recorded',
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'Blender stopped, job not yet marked canceled',
        on: 'log',
        pattern: '^\\[skyfarm\\] canceled',
        nth: 1,
        delayMs: 0,
      },
    ];
    const landed: string[] = [];
    let jobId = '';
    let answer = '';
    let blenderAtKill = 0;
    // The first life submits the job and cancels it once a frame is out and Blender renders on.
    async function submitAndCancel(): Promise<void> {
      const client = await daemons.connect();
      jobId = (await client.request('render.submit', { blendFile: scene, frames: '1-40', output })).job.id;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const job = (await client.request('jobs.get', { jobId })).job;
        if (job.state === 'rendering' && job.framesDone >= 1 && blenderIn(join(home, 'work', jobId)).length)
          break;
        await sleep(200);
      }
      answer = await cancelAnswer(client, jobId);
      client.close();
    }
    for (const [life, plan] of plans.entries()) {
      landed.push(
        await daemons.life(plan, { timeoutMs: 45_000, during: life === 0 ? submitAndCancel : undefined }),
      );
      if (life === 0) blenderAtKill = blenderIn(join(home, 'work', jobId)).length;
      t.comment(`kill ${life + 1}: ${landed.at(-1)}`);
    }

    const last = await daemons.start(null);
    const client = await daemons.connect();
    let job: Job | undefined;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      job = (await client.request('jobs.get', { jobId })).job;
      if (['done', 'failed', 'canceled'].includes(job.state)) break;
      await sleep(200);
    }
    await sleep(500); // anything still going on would show now
    job = (await client.request('jobs.get', { jobId })).job;
    const log = (await client.request('jobs.logs', { jobId, tail: 100_000 })).lines.join('\n');
    client.close();
    last.child.kill('SIGTERM');
    await last.exited;

    t.same(
      landed,
      plans.map((p) => p.label),
      `${plans.length} kills, each where planned`,
    );
    t.match(answer, /^no answer/, 'the daemon died before it answered the cancel');
    t.match(
      job,
      { state: 'canceled', message: 'canceled', stages: { render: 'canceled' } },
      'the job ended canceled',
    );
    t.equal(log.match(/^\[skyfarm\] canceled/gm)?.length ?? 0, 1, 'once (one "canceled" log line)');
    const afterRestart = log.slice(log.indexOf('[skyfarm] daemon restarted'));
    t.notMatch(afterRestart, /^\[skyfarm\] rendering \d+ frames/m, 'no daemon rendered on after the cancel');
    // Blender may outlive the killed daemon (its own process group; the next daemon stops it) or die
    // writing to the closed pipe; either way none may be left.
    t.comment(
      `${blenderAtKill} Blender process(es) right after the first kill; ` +
        (/stopping Blender \d+ left over/.test(afterRestart)
          ? 'the next daemon stopped the one left over'
          : 'it had ended by itself before the next daemon started'),
    );
    t.same(blenderIn(home), [], 'no Blender process left');
    t.same(readdirSync(join(home, 'work')), [], 'the working folder was removed');
    const files = existsSync(output) ? readdirSync(output).sort() : [];
    t.ok(
      files.every((name) => /^frame_\d{4}\.png$/.test(name)),
      `only frames in the output (${files.join(', ')})`,
    );
    t.equal(files.length, job!.framesDone, 'exactly the frames done before the cancel');
    for (const name of files) await t.resolves(readPng(join(output, name)), `${name} is a whole PNG`);
  },
);
