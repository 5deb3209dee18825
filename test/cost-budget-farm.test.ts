// Budget and cost on the fake farm with the real worker, real Blender (tiny scene) and fake prices:
// - `--max-cost` below what the job would spend: a chunk that never ends runs on a dear on-demand
//   instance; the cap, held by the daemon across a restart (the first daemon is stopped while the
//   chunk runs), stops the job when the spend reaches it: the finished frame is published and
//   downloaded, the job fails with BUDGET_REACHED and says so, the mail says so with its cost, the
//   projection over the budget was announced first, and the reported spend equals the sum computed
//   here from the fakes' records.
// A denied cost call leaving the render unaffected (and every surface saying "cost unknown" naming
// the action) is asserted in batch-lifecycle's restart test, which renders anyway.
import t from 'tap';
import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { blenderCommand, blenderSkip, makeScene } from './helpers/scenes.js';
import { recordUpdates, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { startCostWorld } from './helpers/cost-world.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { CostLine, Job, JobCost, StorageCost } from '../protocol/generated/protocol.js';
import { FINISHED_STATES } from '../daemon/src/jobs/job-repo.js';

/** SKYFARM_BLENDER for the containers: render chunk 1 never finishes (until it is stopped). */
function stuckChunkBlender(wrapper: string): void {
  writeFileSync(
    wrapper,
    // Only the render itself hangs (its version probe answers), so a stop ends it at once.
    `#!/bin/sh\ncase "$AWS_BATCH_JOB_ARRAY_INDEX $*" in\n  "1 "*render_chunk.py*) exec sleep 60 ;;\nesac\n` +
      `exec ${blenderCommand} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
}

async function waitForEnd(stateDir: string, jobId: string, timeoutMs: number): Promise<Job> {
  const client = await DaemonClient.connect({ stateDir, clientName: 'test', clientVersion: '1' });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { job } = await client.request('jobs.get', { jobId });
      if (FINISHED_STATES.has(job.state)) return job;
      if (Date.now() > deadline)
        throw new Error(`job ${jobId} did not end: ${job.state} ${job.message} ${JSON.stringify(job.cost)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    client.close();
  }
}

t.test(
  '--max-cost: the job is stopped at its budget, across a daemon restart; finished frames published',
  { skip: blenderSkip, timeout: 150_000 },
  async (t) => {
    // Copy, publish and the spot chunks cost next to nothing; the on-demand m6i.2xlarge that the odd
    // chunks run on costs $1,800/hour, half of it theirs: $0.25 a second.
    const world = await startCostWorld(t, {
      prices: { spot: 0.36, spotMarket: 0.36, transfer: 0.36, onDemand: 1800 },
    });
    // The farm's folder (startFarm makes it anew): the wrapper goes there once it exists.
    const wrapper = path.join(t.testdirName, 'blender-stuck-chunk-1.sh');
    const farm = await startFarm(t, {
      maxRunning: 1,
      cost: { world },
      workerEnv: { SKYFARM_BLENDER: wrapper },
    });
    stuckChunkBlender(wrapper);
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
        '1',
        '--max-cost',
        '1.50',
        '--notify-email',
        'artist@example.com',
        '--output',
        output,
        '--json',
      ],
      farm.stateDir,
      farm.dir,
    );
    t.equal(submit.code, 0, 'submitted', { stderr: submit.stderr });
    const jobId = (JSON.parse(submit.stdout) as Job).id;

    // Chunk 1 runs (and would run forever): this daemon goes, the next one must keep the cap.
    await farm.batch.waitFor(
      () => farm.batch.byName(`skyfarm-${jobId}-render`)[0]?.children?.[1]?.status === 'RUNNING',
      90_000,
      'chunk 1 running',
    );
    await first.stop();
    const second = await farm.startDaemon();
    const { updates } = await recordUpdates(t, second);
    const job = await waitForEnd(farm.stateDir, jobId, 90_000);

    t.equal(job.state, 'failed');
    t.equal(job.error?.code, 'BUDGET_REACHED');
    t.match(
      job.message,
      /^stopped: budget \$1\.50 reached \(spent ≈ \$1\.\d\d\); the 1 finished of 4 frames were published to /,
    );
    t.same(readdirSync(output), ['frame_0001.png'], 'the finished frame was published and downloaded');
    t.ok(
      updates.some((u) => u.id === jobId && u.cost?.budget === 'projected-over'),
      'the projection over the budget was announced (job.update) before the stop',
    );

    // The mail says why and what it cost.
    await farm.ses.waitForMail(1, 30_000);
    const mail = farm.ses.sent[0]!;
    t.match(mail.subject, /stopped at its budget \(1 of 4 frames\)/);
    t.match(
      mail.body,
      /was stopped: budget \$1\.50 reached \(spent ≈ \$1\.\d\d\); 1 of 4 frames were finished/,
    );
    t.match(
      mail.body,
      /Cost: {3}≈ \$\d+\.\d\d so far · projected .* budget \$1\.50 .*\(.*m6i\.2xlarge on-demand/,
    );

    // The spend: the daemon's figure equals the sum over the Batch jobs' runs, from the fakes.
    const cost = await runSkyfarm(['cost', jobId, '--json'], farm.stateDir, farm.dir);
    t.equal(cost.code, 0, 'skyfarm cost', { stderr: cost.stderr });
    const report = JSON.parse(cost.stdout) as { cost: JobCost; lines: CostLine[] };
    const render = farm.batch.byName(`skyfarm-${jobId}-render`)[0]!;
    // The stack's rule published (the daemon did not submit that job): its run counts too.
    const publishedBy = farm.batch.ruleSubmissions.filter((s) => s.parameters.skyfarmJobId === jobId);
    t.equal(publishedBy.length, 1, 'the publish-after-failure rule published the finished frame');
    const ids = [
      ...['copy', 'render', 'publish'].flatMap((stage) =>
        stage === 'render'
          ? [render.jobId]
          : farm.batch.byName(`skyfarm-${jobId}-${stage}`).map((j) => j.jobId),
      ),
      publishedBy[0]!.jobId,
    ];
    const expected = world.expectedSpend(farm.batch, ids);
    t.ok(report.cost.known);
    t.ok(Math.abs(report.cost.usd! - expected) < 1e-9, `spend ${report.cost.usd} = ${expected}`);
    t.ok(report.cost.usd! >= 1.5, 'the spend reached the budget');
    t.equal(report.cost.budget, 'reached');
    t.ok(report.lines.some((l) => l.stage === 'render' && l.chunk === 1 && l.market === 'on-demand'));
    t.ok(
      report.lines.some(
        (l) => l.stage === 'publish' && l.batchJobId === publishedBy[0]!.jobId && l.seconds > 0,
      ),
      'the publish that ran after the stop is in the spend',
    );
    // Storage and requests: their own line, priced from the Price List's S3/EFS products.
    const storage = (JSON.parse(cost.stdout) as { storage?: StorageCost }).storage;
    t.equal(storage?.known, true, storage?.text ?? 'no storage line');
    const jobObjects = await farm.bucket.list(`jobs/${jobId}/`);
    t.ok(storage!.putRequests! >= jobObjects.length, 'a PUT for each of the job’s objects at least');
    t.ok(storage!.s3Bytes! >= jobObjects.reduce((sum, o) => sum + o.size, 0), 'its bytes in S3');

    const status = await runSkyfarm(['status', jobId], farm.stateDir, farm.dir);
    t.match(status.stdout, /cost {6}≈ \$\d+\.\d\d · budget \$1\.50 reached \(.*m6i\.2xlarge on-demand/);
    const jobs = await runSkyfarm(['jobs'], farm.stateDir, farm.dir);
    t.match(jobs.stdout, new RegExp(`${jobId} .*≈ \\$\\d+\\.\\d\\d · budget \\$1\\.50 reached`));
    const text = await runSkyfarm(['cost', jobId], farm.stateDir, farm.dir);
    t.match(text.stdout, /render chunk 1 .* of m6i\.2xlarge on-demand at \$1800\.00\/h/);
    t.match(
      text.stdout,
      /\n {2}storage {3}≈ \$0\.\d+ \(EFS .* h; \d+ PUT, up to \d+ GET\) · S3 ≈ \$\d+\.\d+\/month while kept/,
    );
  },
);
