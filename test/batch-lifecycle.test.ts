// The AWS pipeline over time, through the fakes with real Blender and the real worker:
// - a spot interruption (`Host EC2 (instance i-…) terminated.`) is retried by the job definition's
//   evaluateOnExit and the retried chunk skips the frame it had finished (overwrite off). The
//   interruption comes at a known point, not after a time: the worker's Blender (a wrapper adding a
//   small script) holds frame 2 of the chunk's first attempt before rendering it and prints
//   SKYFARM_TEST_HELD 2; that line is the fake's cue, so frame 1 is always finished and frame 2 never;
// - a render stuck in RUNNABLE is explained, and `skyfarm cancel` terminates the Batch jobs and the
//   working folder is cleaned by the publish the stack's rule submits;
// - a daemon restarted mid-job re-attaches (stored ids, and by job name for a stage whose id was
//   never stored) without submitting anything twice; with pricing:GetProducts denied all along, the
//   render is unaffected and `skyfarm status`, `skyfarm cost` and the mail say "cost unknown" naming
//   the permission to allow.
import t, { type Test } from 'tap';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { blenderCommand, blenderSkip, makeScene } from './helpers/scenes.js';
import { recordUpdates, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { startCostWorld } from './helpers/cost-world.js';
import type { Job, JobCost } from '../protocol/generated/protocol.js';
import { jobKeys, type JobResult } from '../daemon/src/batch/layout.js';

t.test(
  'spot interruption: retried, finished frames not rendered again',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t, { workerEnv: { SKYFARM_BLENDER: holdingBlender(t, 2) } });
    await farm.startDaemon();
    farm.batch.interrupt({
      jobName: /-render$/,
      arrayIndex: 0,
      afterLine: /^SKYFARM_TEST_HELD 2$/,
      instanceId: 'i-0spot0000000000001',
    });
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 4] });
    const output = path.join(farm.dir, 'out');
    const run = await runSkyfarm(
      ['render', scene, '--backend', 'aws', '--chunk-size', '2', '--output', output, '--wait', '--json'],
      farm.stateDir,
      farm.dir,
    );
    t.equal(run.code, 0, 'the job succeeds', { stderr: run.stderr.slice(-3000) });
    const job = JSON.parse(run.stdout) as Job;
    t.equal(job.framesDone, 4);
    t.same(readdirSync(output).sort(), [
      'frame_0001.png',
      'frame_0002.png',
      'frame_0003.png',
      'frame_0004.png',
    ]);
    const chunk0 = farm.batch.byName(`skyfarm-${job.id}-render`)[0]?.children?.[0];
    t.equal(chunk0?.attempts.length, 2, 'chunk 0 ran twice');
    t.equal(chunk0?.attempts[0]?.statusReason, 'Host EC2 (instance i-0spot0000000000001) terminated.');
    const first = chunk0?.attempts[0]?.output.join('\n') ?? '';
    const second = chunk0?.attempts[1]?.output.join('\n') ?? '';
    t.match(first, /SKYFARM_FRAME_DONE 1 /, 'the first attempt finished frame 1 before its host went away');
    t.match(first, /^SKYFARM_TEST_HELD 2$/m, 'and was interrupted while it held frame 2');
    t.notMatch(first, /SKYFARM_FRAME_DONE 2 /);
    t.notMatch(second, /SKYFARM_TEST_HELD/, 'the retry was not held');
    t.match(second, /SKYFARM_FRAME_SKIPPED 1 /, 'the retry skipped frame 1 (overwrite off)');
    t.notMatch(second, /SKYFARM_FRAME_DONE 1 /, 'frame 1 was not rendered again');
    t.match(second, /SKYFARM_FRAME_DONE 2 /, 'and rendered frame 2');
    t.match(second, /attempt 2/);
  },
);

/**
 * A Blender for the worker that, in the first attempt of render chunk 0, stops before rendering
 * `frame` (printing `SKYFARM_TEST_HELD <frame>`) and waits there until the container is killed (90 s
 * at most). Everything else runs as usual.
 */
function holdingBlender(t: Test, frame: number): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-hold-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gate = path.join(dir, 'hold.py');
  writeFileSync(
    gate,
    [
      'import os, time',
      'import bpy',
      'from bpy.app.handlers import persistent',
      `HOLD = ${frame}`,
      '',
      '@persistent',
      'def hold(scene, *_):',
      '    if scene.frame_current != HOLD:',
      '        return',
      '    print("SKYFARM_TEST_HELD %d" % HOLD, flush=True)',
      '    deadline = time.monotonic() + 90',
      '    while time.monotonic() < deadline:',
      '        time.sleep(0.1)',
      '',
      'if os.environ.get("AWS_BATCH_JOB_ATTEMPT") == "1" and os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX") == "0":',
      '    bpy.app.handlers.render_pre.append(hold)',
      '',
    ].join('\n'),
  );
  const wrapper = path.join(dir, 'blender');
  // The hold script goes in before the first --python (render_chunk.py), so its handler is in place.
  writeFileSync(
    wrapper,
    [
      '#!/bin/sh',
      'added=',
      'for arg do',
      '  shift',
      `  if [ -z "$added" ] && [ "$arg" = "--python" ]; then set -- "$@" --python '${gate}'; added=1; fi`,
      '  set -- "$@" "$arg"',
      'done',
      `exec '${blenderCommand}' "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(wrapper, 0o755);
  return wrapper;
}

t.test(
  'RUNNABLE for long is explained; cancel terminates all three jobs and cleans the working folder',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t);
    const daemon = await farm.startDaemon();
    const { client, updates } = await recordUpdates(t, daemon);
    farm.batch.holdQueue('skyfarm-cpu-spot', true); // no capacity for renders
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const submit = await runSkyfarm(
      [
        'render',
        scene,
        '--backend',
        'aws',
        '--output',
        path.join(farm.dir, 'out'),
        '--notify-email',
        'artist@example.com',
        '--json',
      ],
      farm.stateDir,
      farm.dir,
    );
    t.equal(submit.code, 0, 'submitted', { stderr: submit.stderr });
    const jobId = (JSON.parse(submit.stdout) as Job).id;
    await farm.batch.waitFor(
      () => updates.some((u) => u.id === jobId && /RUNNABLE on skyfarm-cpu-spot/.test(u.message)),
      90_000,
      'the RUNNABLE explanation',
    );
    const explained = updates.filter((u) => u.id === jobId && /RUNNABLE/.test(u.message)).at(-1)!;
    t.match(
      explained.message,
      /waiting for an instance .*MaxvCpus.*vCPU quota.*spot capacity/,
      'says what to check',
    );
    t.ok(existsSync(path.join(farm.efs, 'jobs', jobId, 'project')), 'copy has filled the working folder');

    const cancel = await runSkyfarm(['cancel', jobId, '--json'], farm.stateDir, farm.dir);
    t.equal(cancel.code, 0, 'cancel exits 0', { stderr: cancel.stderr });
    t.equal((JSON.parse(cancel.stdout) as Job).state, 'canceled');
    const named = (stage: string) => farm.batch.byName(`skyfarm-${jobId}-${stage}`)[0]!;
    t.equal(named('copy').status, 'SUCCEEDED', 'copy had finished');
    await farm.batch.waitFor(
      () => named('render').status === 'FAILED' && named('publish').status === 'FAILED',
      10_000,
      'terminated',
    );
    t.equal(named('render').statusReason, 'canceled by the user (skyfarm cancel)');
    t.ok(named('publish').statusReason, 'publish ended too');
    // The render's FAILED state triggers the stack's rule: publish-after-failure cleans up.
    await farm.batch.waitFor(
      () => !existsSync(path.join(farm.efs, 'jobs', jobId)),
      60_000,
      'the working folder to go',
    );
    // The publish stage removes the working folder first and writes result.json last.
    let result: JobResult | undefined;
    for (const deadline = Date.now() + 30_000; !result && Date.now() < deadline;) {
      result = await farm.bucket.getJson<JobResult>(jobKeys(jobId).result);
      if (!result) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.equal(result?.state, 'canceled', 'publish saw the cancel');
    t.match(farm.ses.sent.at(-1)?.subject, /canceled/);
    const { job } = await client.request('jobs.get', { jobId });
    t.equal(job.state, 'canceled');
    t.equal(job.stages.render, 'canceled');
    const submits = farm.batch.calls.filter((c) => c.operation === 'submitjob');
    t.equal(submits.length, 3, 'no cleanup job of the daemon’s own: the rule handles a terminated render');
    t.equal(farm.batch.ruleSubmissions.length, 1);
  },
);

t.test(
  'daemon restarted mid-job: re-attached, nothing submitted twice; a denied cost call changes nothing',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    // The daemon's cost estimates run all along (fleet and prices of the cost fakes), and are denied.
    const world = await startCostWorld(t);
    world.pricing.deny(true);
    const farm = await startFarm(t, { cost: { world } });
    const first = await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 4] });
    const output = path.join(farm.dir, 'out');
    const submit = await runSkyfarm(
      [
        'render',
        scene,
        '--backend',
        'aws',
        '--chunk-size',
        '2',
        '--output',
        output,
        '--notify-email',
        'artist@example.com',
        '--json',
      ],
      farm.stateDir,
      farm.dir,
    );
    t.equal(submit.code, 0, 'submitted', { stderr: submit.stderr });
    const jobId = (JSON.parse(submit.stdout) as Job).id;
    await farm.batch.waitFor(
      () =>
        farm.batch.byName(`skyfarm-${jobId}-render`)[0]?.children?.some((c) => c.status === 'RUNNING') ??
        false,
      90_000,
      'a chunk to run',
    );
    await first.stop();
    // As if the daemon had died between SubmitJob and storing the id: only the name can find it now.
    const db = new Database(path.join(farm.stateDir, 'skyfarm.sqlite'));
    db.prepare('UPDATE aws_jobs SET publish_batch_id = NULL WHERE job_id = ?').run(jobId);
    db.close();

    const second = await farm.startDaemon();
    const { client } = await recordUpdates(t, second);
    const wait = await runSkyfarm(['status', jobId, '--json'], farm.stateDir, farm.dir);
    t.equal(wait.code, 0);
    await farm.batch.waitFor(
      () => {
        const job = (second.jobs.get(jobId) as Job | undefined)?.state;
        return job === 'done' || job === 'failed';
      },
      100_000,
      'the job to finish under the new daemon',
    );
    const { job } = await client.request('jobs.get', { jobId });
    t.equal(job.state, 'done', job.message);
    t.same(readdirSync(output).sort(), [
      'frame_0001.png',
      'frame_0002.png',
      'frame_0003.png',
      'frame_0004.png',
    ]);
    const submits = farm.batch.calls
      .filter((c) => c.operation === 'submitjob')
      .map((c) => c.input['jobName']);
    t.same(
      submits,
      [`skyfarm-${jobId}-copy`, `skyfarm-${jobId}-render`, `skyfarm-${jobId}-publish`],
      'each stage submitted once',
    );
    t.ok(
      farm.batch.calls.some(
        (c) =>
          c.operation === 'listjobs' &&
          JSON.stringify(c.input['filters']).includes(`skyfarm-${jobId}-publish`),
      ),
      'the publish job was found by its name',
    );
    const log = await runSkyfarm(['logs', jobId], farm.stateDir, farm.dir);
    t.match(log.stdout, /daemon restarted: resuming/);
    t.match(log.stdout, /re-attached to publish job/);

    // pricing:GetProducts denied: every surface says so, with the permission to allow.
    const cost = await runSkyfarm(['cost', jobId], farm.stateDir, farm.dir);
    t.match(
      cost.stdout,
      /cost unknown: AWS denied pricing:GetProducts \(allow pricing:GetProducts for your AWS identity\)/,
    );
    const status = await runSkyfarm(['status', jobId], farm.stateDir, farm.dir);
    t.match(status.stdout, /cost {6}cost unknown: AWS denied pricing:GetProducts/);
    const json = await runSkyfarm(['cost', jobId, '--json'], farm.stateDir, farm.dir);
    const report = JSON.parse(json.stdout) as { cost: JobCost };
    t.same(
      { known: report.cost.known, usd: report.cost.usd, action: report.cost.missingAction },
      { known: false, usd: undefined, action: 'pricing:GetProducts' },
    );
    await farm.ses.waitForMail(1, 30_000);
    t.match(farm.ses.sent[0]!.body, /Cost: {3}cost unknown: AWS denied pricing:GetProducts/);
  },
);
