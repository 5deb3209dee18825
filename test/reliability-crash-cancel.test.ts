// Crash safety of cancel on the local backend: a real `skyfarm daemon` renders a long local job and is
// SIGKILLed twice while canceling it — right after the cancel was recorded (before Blender was stopped)
// and after Blender was stopped and the working folder removed (before the job was marked canceled).
// The next daemon must not render on: it stops the Blender the killed daemon left running, removes the
// working folder and ends the job canceled exactly once (one "canceled" log line, which goes with its
// one job.update). The output folder holds only whole frames published before the cancel.
// (The AWS side: test/reliability-crash-aws.test.ts; the in-process cases: test/aws-cancel.test.ts.)
// The kill points come from the same kind of preload as test/reliability-crash.test.ts.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { cliEntry } from './helpers/cli.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { Job } from '../protocol/generated/protocol.js';

/** Preloaded into the daemon: SIGKILLs it just before it writes the job-log line SKYFARM_TEST_CRASH names. */
const CRASH_HOOK = String.raw`
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const plan = process.env.SKYFARM_TEST_CRASH ? JSON.parse(process.env.SKYFARM_TEST_CRASH) : null;
if (plan) {
  const pattern = new RegExp(plan.pattern);
  const original = fs.appendFileSync;
  fs.appendFileSync = function (file, data, ...rest) {
    if (typeof file === 'string' && file.endsWith('.log') && pattern.test(String(data))) {
      fs.writeSync(2, 'SKYFARM_TEST_CRASH ' + plan.label + '\n');
      process.kill(process.pid, 'SIGKILL');
    }
    return original.call(this, file, data, ...rest);
  };
  syncBuiltinESMExports();
}
`;

interface Plan {
  label: string;
  pattern: string;
}

/** Blender processes working in `dir` (their command line names it). */
function blenderIn(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(dir) && /blender/i.test(cmdline.split('\0')[0] ?? '')) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

t.test(
  'SIGKILL while canceling a local job: the next daemon finishes the cancel, once',
  { skip: blenderSkip, timeout: 150_000 },
  async (t) => {
    const dir = t.testdir({});
    const home = join(dir, 'home');
    const hook = join(dir, 'crash-hook.mjs');
    writeFileSync(hook, CRASH_HOOK);
    const daemonLog = join(dir, 'daemon.log');
    const scene = await makeScene(join(dir, 'project'), { frames: [1, 40], samples: 64 });
    const output = join(dir, 'out');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SKYFARM_HOME: home,
      SKYFARM_PORT: '0',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const live = new Set<ChildProcess>();
    t.teardown(() => {
      for (const child of live) child.kill('SIGKILL');
      for (const pid of blenderIn(home)) process.kill(pid, 'SIGKILL');
    });

    async function start(plan: Plan | null): Promise<{ child: ChildProcess; exited: Promise<void> }> {
      const fd = openSync(daemonLog, 'a');
      const child = spawn(process.execPath, ['--import', pathToFileURL(hook).href, cliEntry, 'daemon'], {
        env: { ...env, ...(plan ? { SKYFARM_TEST_CRASH: JSON.stringify(plan) } : {}) },
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      live.add(child);
      const exited = new Promise<void>((resolve) =>
        child.once('exit', () => {
          live.delete(child);
          resolve();
        }),
      );
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && live.has(child)) {
        try {
          const info = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number };
          if (info.pid === child.pid) return { child, exited };
        } catch {
          // not yet
        }
        await sleep(50);
      }
      if (!live.has(child)) return { child, exited }; // the plan fired during start-up (resume)
      throw new Error(`the daemon did not start: ${readFileSync(daemonLog, 'utf8').slice(-2000)}`);
    }
    const connect = () =>
      DaemonClient.connect({
        stateDir: home,
        clientName: 'crash-cancel',
        clientVersion: '1',
        timeoutMs: 10_000,
      });

    const plans: Plan[] = [
      { label: 'cancel recorded, Blender not yet stopped', pattern: '^\\[skyfarm\\] cancel recorded' },
      { label: 'Blender stopped, job not yet marked canceled', pattern: '^\\[skyfarm\\] canceled' },
    ];
    const landed: string[] = [];
    let jobId = '';
    let answer = '';
    let blenderAtKill = 0;
    for (const [life, plan] of plans.entries()) {
      const before = existsSync(daemonLog) ? readFileSync(daemonLog, 'utf8').length : 0;
      const daemon = await start(plan);
      if (life === 0) {
        const client = await connect();
        jobId = (await client.request('render.submit', { blendFile: scene, frames: '1-40', output })).job.id;
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const job = (await client.request('jobs.get', { jobId })).job;
          if (job.state === 'rendering' && job.framesDone >= 1 && blenderIn(join(home, 'work', jobId)).length)
            break;
          await sleep(200);
        }
        answer = await client.request('jobs.cancel', { jobId }).then(
          (r) => `answered: ${r.job.state}`,
          (error: unknown) => `no answer: ${(error as { code?: string }).code ?? String(error)}`,
        );
        client.close();
      }
      const fired = await Promise.race([
        daemon.exited.then(() => true),
        sleep(45_000, false, { ref: false }),
      ]);
      if (!fired) {
        daemon.child.kill('SIGKILL');
        await daemon.exited;
      }
      if (life === 0) blenderAtKill = blenderIn(join(home, 'work', jobId)).length;
      const line = /SKYFARM_TEST_CRASH (.*)/.exec(readFileSync(daemonLog, 'utf8').slice(before))?.[1];
      landed.push(line ?? `after 45 s (planned: ${plan.label})`);
      t.comment(`kill ${life + 1}: ${landed.at(-1)}`);
    }

    const last = await start(null);
    const client = await connect();
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
