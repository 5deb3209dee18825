// Crash safety of the AWS backend, through the fakes (s3rver, fake Batch running the real worker with
// real Blender): the daemon — a separate process, so it can be SIGKILLed — dies at each risky point of
// one AWS job in turn (10 kills), with seeded random delays: during the upload, right after each
// SubmitJob before its Batch id is stored (copy, render, publish), while polling a running render,
// while a frame's preview downloads, right after a downloaded frame was renamed into the output folder,
// in the middle of a download (its hidden `.NAME.xxxxxxxx.part` stays behind), while the publish stage
// runs, and after the result was read but before the job was recorded done. The job's notification
// mail is held at the fake SES (test/fakes/ses) until the publishing kill, so the publish stage is
// still RUNNING for the download and publishing kills. Each time a new daemon resumes. The job must
// finish once with every frame, each Batch stage must have been submitted exactly once (re-attached by
// name instead), no chunk ran twice, no frame was rendered twice, one mail was sent, and the output
// folder holds exactly the frames, all complete, no temporary file.
//
// Then a second job is canceled while its render waits for capacity (2 more kills): the daemon dies
// right after the cancel was recorded, before acting on it; the next one resumes the cancel and dies
// after terminating the Batch jobs, before marking the job canceled; the last one ends it. The job must
// end canceled exactly once (one "canceled" log line), its render and publish terminated, nothing
// submitted twice, no frame in its output folder, and its working folder removed (by the publish the
// stack's rule runs after the terminated render).
//
// Kill points come from the preload of test/helpers/crash-daemon.ts, as in reliability-crash.test.ts
// (wrapping job-log appends, fs/promises rename and fs.createWriteStream). Reproduce with
// SKYFARM_CRASH_SEED=<seed>.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { projectRoot } from './helpers/cli.js';
import { cancelAnswer, crashableDaemons, crashSeed, type CrashPlan } from './helpers/crash-daemon.js';
import { seededRandom } from './helpers/seeded-random.js';
import { startFarm } from './fakes/batch/farm.js';
import type { Job } from '../protocol/generated/protocol.js';

const SEED = crashSeed();

// The daemon with the AWS backend's poll timing for tests (the CLI's daemon polls every 2 s).
const LAUNCH = (repo: string) => String.raw`
import { startDaemon } from ${JSON.stringify(pathToFileURL(path.join(repo, 'dist/daemon/src/daemon.js')).href)};
const daemon = await startDaemon({
  stateDir: process.env.SKYFARM_HOME,
  port: 0,
  env: process.env,
  aws: { backend: { pollFastMs: 250, pollSlowMs: 750, runnableWarnMs: 60000, failurePublishTimeoutMs: 60000 } },
});
process.once('SIGTERM', () => daemon.stop().then(() => process.exit(0)));
`;

interface LifePlan extends CrashPlan {
  /** Let the publish stage send its mail (and so finish) from this life on. */
  releaseMail?: boolean;
}

t.test(
  'SIGKILL at each risky point of an AWS job: finishes once, nothing submitted twice',
  { skip: blenderSkip, timeout: 240_000 },
  async (t) => {
    t.comment(`crash seed ${SEED} (rerun with SKYFARM_CRASH_SEED=${SEED})`);
    const random = seededRandom(SEED).int;
    const farm = await startFarm(t);
    const launcher = path.join(farm.dir, 'launch.mjs');
    writeFileSync(launcher, LAUNCH(projectRoot));
    const home = farm.stateDir;
    const output = path.join(farm.dir, 'out');
    // A texture with 6 MB of trailing bytes makes the upload take a moment, so the first kill lands
    // during it (a 5.x scene alone is 0.1 MB, zstd-compressed: uploaded and submitted within 150 ms).
    const scene = await makeScene(path.join(farm.dir, 'project'), {
      frames: [1, 4],
      textures: [{ path: 'tex/big.png' }],
    });
    const texture = path.join(farm.dir, 'project', 'tex', 'big.png');
    writeFileSync(texture, Buffer.concat([readFileSync(texture), randomBytes(6 * 1024 * 1024)]));
    const previews = path.join(home, 'previews');
    farm.ses.hold(true);
    const daemons = crashableDaemons(t, {
      dir: farm.dir,
      home,
      args: [launcher],
      env: { ...farm.daemonEnv, SKYFARM_HOME: home },
      clientName: 'crash-aws',
    });

    const submitted = (stage: string) => `^\\[skyfarm\\] submitted ${stage} as Batch job`;
    const plans: LifePlan[] = [
      { label: 'upload', on: 'log', pattern: 'uploading to s3://', nth: 1, delayMs: random(0, 150) },
      {
        label: 'copy submitted, its id not stored',
        on: 'log',
        pattern: submitted('copy'),
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'render submitted, its id not stored',
        on: 'log',
        pattern: submitted('render'),
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'publish submitted, its id not stored',
        on: 'log',
        pattern: submitted('publish'),
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'polling a running render',
        on: 'log',
        pattern: '^\\[skyfarm\\] chunks: [1-9]\\d* running',
        nth: 1,
        delayMs: random(0, 600),
      },
      {
        label: "a frame's preview downloading",
        on: 'createWriteStream',
        dirs: [previews + '/'],
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'a downloaded frame renamed into the output, not yet recorded',
        on: 'rename',
        dirs: [output + '/'],
        nth: random(1, 2),
        delayMs: 0,
      },
      {
        label: 'in the middle of a download',
        on: 'createWriteStream',
        dirs: [output + '/'],
        nth: 1,
        delayMs: 0, // the temporary file is open, nothing written yet: it stays behind
      },
      {
        label: 'publish running, frames downloaded, not yet announced',
        on: 'log',
        pattern: '^\\[skyfarm\\] publishing frames',
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'result read, not yet recorded done',
        on: 'log',
        pattern: '^\\[skyfarm\\] done:',
        nth: 1,
        delayMs: 0,
        releaseMail: true,
      },
    ];

    let jobId: string | undefined;
    const landed: string[] = [];
    const leftBehind: string[] = [];
    async function submit(): Promise<void> {
      const client = await daemons.connect();
      jobId = (
        await client.request('render.submit', {
          blendFile: scene,
          backend: 'aws',
          chunkSize: 1,
          output,
          aws: { notifyEmail: 'artist@example.com' },
        })
      ).job.id;
      client.close();
    }
    for (const [life, plan] of plans.entries()) {
      if (plan.releaseMail) farm.ses.hold(false);
      landed.push(await daemons.life(plan, { timeoutMs: 60_000, during: life === 0 ? submit : undefined }));
      const temporaries = existsSync(output) ? readdirSync(output).filter((n) => n.startsWith('.')) : [];
      leftBehind.push(...temporaries.filter((name) => !leftBehind.includes(name)));
      t.comment(
        `kill ${life + 1}: ${landed.at(-1)}${temporaries.length ? ` (left ${temporaries.join(', ')})` : ''}`,
      );
    }

    farm.ses.hold(false);
    const last = await daemons.start(null);
    const client = await daemons.connect();
    let job: Job | undefined;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      job = (await client.request('jobs.get', { jobId: jobId! })).job;
      if (['done', 'failed', 'canceled'].includes(job.state)) break;
      await sleep(300);
    }
    const log = (await client.request('jobs.logs', { jobId: jobId!, tail: 100_000 })).lines.join('\n');
    client.close();
    last.child.kill('SIGTERM');
    await last.exited;
    const mails = farm.ses.sent.length;

    // A second job, canceled: killed after the cancel was recorded, then after its Batch jobs were
    // terminated. Its render has no capacity (held queue), so it is still to be terminated.
    farm.batch.holdQueue('skyfarm-cpu-spot', true);
    const cancelPlans: CrashPlan[] = [
      {
        label: 'cancel recorded, not yet acted on',
        on: 'log',
        pattern: '^\\[skyfarm\\] cancel recorded',
        nth: 1,
        delayMs: 0,
      },
      {
        label: 'Batch jobs terminated, job not yet marked canceled',
        on: 'log',
        pattern: '^\\[skyfarm\\] canceled',
        nth: 1,
        delayMs: 0,
      },
    ];
    const output2 = path.join(farm.dir, 'out2');
    const cancelLanded: string[] = [];
    let canceledId = '';
    let cancelAnswered = '';
    async function submitAndCancel(): Promise<void> {
      const c = await daemons.connect();
      canceledId = (
        await c.request('render.submit', {
          blendFile: scene,
          backend: 'aws',
          chunkSize: 2,
          output: output2,
        })
      ).job.id;
      const until = Date.now() + 60_000;
      while (Date.now() < until) {
        const j = (await c.request('jobs.get', { jobId: canceledId })).job;
        if (j.state === 'rendering') break; // copy done: all three stages submitted and stored
        await sleep(200);
      }
      cancelAnswered = await cancelAnswer(c, canceledId);
      c.close();
    }
    for (const [life, plan] of cancelPlans.entries()) {
      cancelLanded.push(
        await daemons.life(plan, { timeoutMs: 60_000, during: life === 0 ? submitAndCancel : undefined }),
      );
      t.comment(`kill ${plans.length + life + 1}: ${cancelLanded.at(-1)}`);
    }
    const ender = await daemons.start(null);
    const c2 = await daemons.connect();
    let canceled: Job | undefined;
    const until2 = Date.now() + 60_000;
    while (Date.now() < until2) {
      canceled = (await c2.request('jobs.get', { jobId: canceledId })).job;
      if (['done', 'failed', 'canceled'].includes(canceled.state)) break;
      await sleep(200);
    }
    const canceledLog = (await c2.request('jobs.logs', { jobId: canceledId, tail: 100_000 })).lines.join(
      '\n',
    );
    const workDir = path.join(farm.efs, 'jobs', canceledId);
    const until3 = Date.now() + 60_000;
    while (existsSync(workDir) && Date.now() < until3) await sleep(200);
    c2.close();
    ender.child.kill('SIGTERM');
    await ender.exited;

    t.same(
      landed,
      plans.map((p) => p.label),
      `${plans.length} kills, each where planned`,
    );
    t.match(job, { state: 'done', framesDone: 4, framesFailed: 0 }, 'the job finished with every frame');
    t.equal(log.match(/^\[skyfarm\] done:/gm)?.length ?? 0, 1, 'it finished once');
    const names = farm.batch.calls
      .filter((c) => c.operation === 'submitjob')
      .map((c) => String(c.input['jobName']))
      .filter((name) => name.includes(jobId!));
    t.same(
      names.sort(),
      ['copy', 'publish', 'render'].map((stage) => `skyfarm-${jobId}-${stage}`),
      'each Batch stage was submitted exactly once',
    );
    for (const stage of ['copy', 'render', 'publish'])
      t.match(log, new RegExp(`re-attached to ${stage} job`), `${stage}: re-attached by name after the kill`);
    const render = farm.batch.byName(`skyfarm-${jobId}-render`)[0];
    const children = render?.children ?? [];
    t.equal(children.length, 4, 'four render chunks');
    t.ok(
      children.every((child) => child.attempts.length === 1),
      'no chunk ran twice',
    );
    const renders = new Map<number, number>();
    for (const child of children)
      for (const attempt of child.attempts)
        for (const match of attempt.output.join('\n').matchAll(/^SKYFARM_FRAME_DONE (\d+) /gm))
          renders.set(Number(match[1]), (renders.get(Number(match[1])) ?? 0) + 1);
    t.same(
      [...renders.entries()].sort(([a], [b]) => a - b),
      [
        [1, 1],
        [2, 1],
        [3, 1],
        [4, 1],
      ],
      'every frame rendered exactly once',
    );
    const files = readdirSync(output).sort();
    const frames = files.filter((name) => !name.startsWith('.'));
    t.same(
      frames,
      ['frame_0001.png', 'frame_0002.png', 'frame_0003.png', 'frame_0004.png'],
      'all four frames',
    );
    for (const name of frames) await t.resolves(readPng(path.join(output, name)), `${name} is a whole PNG`);
    t.ok(
      leftBehind.some((name) => /^\.frame_000[1-4]\.png\.[0-9a-f]{8}\.part$/.test(name)),
      `the kill mid-download left a temporary file (${leftBehind.join(', ') || 'none'})`,
    );
    t.same(
      files.filter((name) => name.startsWith('.')),
      [],
      'no temporary file left in the output folder: the resumed daemon removed it',
    );
    t.equal(mails, 1, 'one notification mail: publish ran once');

    t.same(
      cancelLanded,
      cancelPlans.map((p) => p.label),
      `${cancelPlans.length} kills while canceling, each where planned`,
    );
    t.match(cancelAnswered, /^no answer/, 'the daemon died before it answered the cancel');
    t.match(canceled, { state: 'canceled', message: 'canceled' }, 'the canceled job ended canceled');
    t.equal(
      canceledLog.match(/^\[skyfarm\] canceled/gm)?.length ?? 0,
      1,
      'once (one "canceled" log line, one job.update)',
    );
    const stageOf = (stage: string) => farm.batch.byName(`skyfarm-${canceledId}-${stage}`);
    t.same(
      ['copy', 'render', 'publish'].map((stage) => stageOf(stage).length),
      [1, 1, 1],
      'each of its stages was submitted once',
    );
    t.equal(
      stageOf('render')[0]?.statusReason,
      'canceled by the user (skyfarm cancel)',
      'its render was terminated',
    );
    // Publish is terminated too, unless Batch failed it first because render (its dependency) was
    // terminated: which comes first is a race, the same on real Batch. Either way it never ran.
    const publishStage = stageOf('publish')[0];
    t.match(
      publishStage?.statusReason,
      /^(canceled by the user \(skyfarm cancel\)|Dependent Job failed)$/,
      'its publish was terminated, or failed with its terminated dependency',
    );
    t.equal(publishStage?.startedAt, undefined, 'and never started');
    t.match(canceledLog, /terminated render job/, 'by the daemon that resumed the cancel');
    t.same(existsSync(output2) ? readdirSync(output2) : [], [], 'no frame of it in its output folder');
    t.notOk(existsSync(workDir), 'its working folder was removed');
  },
);
