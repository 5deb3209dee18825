// Network faults on the AWS side, through the fakes with the real worker and real Blender: the daemon's
// Batch endpoint sits behind test/helpers/fault-proxy.ts and its S3 endpoint behind the S3 fault proxy.
// S3 is unreachable (every request reset) when the job is submitted, until the job says "AWS
// unreachable" (the upload is retried, not failed); then S3 is flaky (5xx, resets, lost answers,
// truncated downloads, slow answers on a seeded 10 % of requests) for the rest of the test. While the
// job renders, DescribeJobs is throttled (HTTP 429 TooManyRequestsException) for 8 s: polling must back
// off (far fewer requests in the second 4 s than in the first) and come back to its normal rhythm once
// Batch answers. Then every Batch request fails (connection reset) for 12 s: the daemon keeps
// answering, the job is not failed, its message (what the Blender panel shows), `skyfarm status` and
// `skyfarm jobs` say "AWS unreachable since …", and the message is its own again afterwards. The job
// must finish with every frame, the downloaded frames byte-for-byte the published ones, and no stage
// may be submitted twice. The daemon polls every 250 ms here (test/fakes/batch/farm.ts), so the
// back-off waits 125–250 ms, 250–500 ms, … up to 3.75–7.5 s.
//
// A second test cancels a job while every Batch and S3 request of the daemon is reset: `skyfarm cancel`
// returns at once, the job is canceled and says its Batch jobs will be terminated when AWS answers;
// meanwhile the render runs on the farm and the publish uploads both frames. Once AWS answers, the
// publish is terminated, a cleanup job removes the working folder, and no frame is downloaded.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { recordUpdates, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { startS3Proxy, type FaultKind } from './fakes/s3-proxy/proxy.js';
import { jobKeys } from '../daemon/src/batch/layout.js';
import type { Job } from '../protocol/generated/protocol.js';

const SEED = Number(process.env['SKYFARM_FAULT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

t.test(
  'Batch throttled, then unreachable, S3 flaky: the job completes and its frames verify',
  { skip: blenderSkip, timeout: 175_000 },
  async (t) => {
    t.comment(`fault seed ${SEED} (rerun with SKYFARM_FAULT_SEED=${SEED})`);
    const farm = await startFarm(t);
    const batch = await startFaultProxy(farm.batch.endpoint);
    t.teardown(() => batch.close());
    const flaky = {
      rate: 0.1,
      seed: SEED,
      kinds: ['5xx', 'reset', 'drop-response', 'truncate', 'slow'] as FaultKind[],
      slowMs: [200, 800] as [number, number],
    };
    const s3 = await startS3Proxy(farm.s3.endpoint, {
      faults: { rate: 1, seed: SEED, kinds: ['reset'] },
    });
    t.teardown(() => s3.close());
    // Only the daemon goes through the proxies; the workers (the "AWS side") talk to the fakes directly.
    farm.daemonEnv['AWS_ENDPOINT_URL_BATCH'] = batch.endpoint;
    farm.daemonEnv['AWS_ENDPOINT_URL_S3'] = s3.endpoint;
    const daemon = await farm.startDaemon();
    const { client, updates } = await recordUpdates(t, daemon);
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 3] });
    const output = path.join(farm.dir, 'out');
    const { job } = await client.request('render.submit', {
      blendFile: scene,
      backend: 'aws',
      chunkSize: 1,
      output,
    });
    const mine = () => updates.filter((u) => u.id === job.id);

    // S3 down while the scene uploads: the upload is retried (the SDK's and the store's own retries,
    // then the whole upload with back-off) and the job says why it waits.
    await until(
      'the job to say AWS is unreachable during the upload',
      () =>
        mine().some((u) => /^AWS unreachable since \d\d:\d\d \(\d+ (s|min)\): .+; retrying$/.test(u.message)),
      90_000,
    );
    const uploadOutage = (await client.request('jobs.get', { jobId: job.id })).job;
    const jobsList = await runSkyfarm(['jobs'], farm.stateDir, farm.dir, 60_000);
    const uploadResets = s3.stats.faults.reset ?? 0;
    s3.setFaults(flaky);
    t.match(
      uploadOutage,
      { state: 'uploading', stages: { upload: 'running' } },
      `an S3 outage does not fail the upload (${uploadResets} S3 requests reset)`,
    );
    t.match(
      uploadOutage.message,
      /AWS unreachable since .*(ECONNRESET|socket hang up)/i,
      'with the short error',
    );
    t.match(jobsList.stdout, new RegExp(`${job.id}.*AWS unreachable since`), '`skyfarm jobs` says so');
    await until('the render to start', () => mine().some((u) => u.state === 'rendering'), 100_000);
    // The publish stage waits (no transfer capacity) until the faults below are over, so the job is
    // still being followed through all of them however fast the frames render.
    farm.batch.holdQueue('skyfarm-transfer', true);
    t.ok(
      mine().some((u) => u.stages.upload === 'done'),
      'the upload completed once S3 answered again',
    );

    // 8 s of throttling on DescribeJobs. S3 is quiet meanwhile: a poll that also reads S3 counts as failed
    // when S3 does not answer (and a lost answer holds it for the SDK's timeout), which would measure
    // S3's faults instead of the rhythm of Batch polling. S3 is flaky again from the outage on.
    s3.setFaults(null);
    const describes = (from: number, to: number) =>
      batch.requests.filter((r) => r.operation === 'describejobs' && r.at >= from && r.at < to);
    const throttleFrom = Date.now();
    batch.setRule((request) => (request.operation === 'describejobs' ? { kind: 'throttle' } : null));
    await sleep(8000);
    batch.setRule(null);
    const throttleTo = Date.now();
    const throttled = batch.requests.filter((r) => r.fault === 'throttle');
    const firstHalf = throttled.filter((r) => r.at < throttleFrom + 4000).length;
    const secondHalf = throttled.length - firstHalf;
    t.ok(throttled.length > 0, `the daemon polled while throttled (${throttled.length} throttled requests)`);
    // At the normal rhythm (250 ms, 750 ms while all waits) each half would see 5–16 polls; backing off
    // (waits 125–250 ms, 250–500 ms, … doubling), the first half sees ~5 and the second 1–2.
    t.ok(
      firstHalf >= 3 && secondHalf <= firstHalf / 2,
      `polling backs off while throttled (${firstHalf} requests in the first 4 s, ${secondHalf} in the next 4 s)`,
    );
    t.ok(throttled.length <= 16, `${throttled.length} throttled requests in 8 s (a fixed rhythm: 10–32)`);
    // Recovery: the first answered poll comes within the last back-off wait (≤ 7.5 s), then the normal rhythm.
    await until(
      'a poll Batch answers',
      () => describes(throttleTo, Infinity).some((r) => r.fault === null && r.status === 200),
      15_000,
    );
    const recoveredAt = Date.now();
    await sleep(4000);
    const afterRecovery = describes(recoveredAt, recoveredAt + 4000).length;
    // The normal rhythm is 250 ms while something runs, 750 ms while all waits: 5–16 polls in 4 s. Still
    // backing off, the wait would be 3.75–7.5 s: at most 1.
    t.ok(
      afterRecovery >= 3,
      `polling is back to its normal rhythm (${afterRecovery} DescribeJobs in 4 s after recovering, ` +
        `first answer ${recoveredAt - throttleTo} ms after the throttling ended)`,
    );

    s3.setFaults(flaky);

    // 12 s in which every Batch request fails: the daemon keeps serving; the job is not failed for it.
    const outageFrom = Date.now();
    batch.setRule(() => ({ kind: 'reset' }));
    let slowest = 0;
    let during: Job | undefined;
    while (Date.now() - outageFrom < 12_000) {
      const asked = Date.now();
      during = (await client.request('jobs.get', { jobId: job.id })).job;
      slowest = Math.max(slowest, Date.now() - asked);
      await sleep(500);
    }
    const status = await runSkyfarm(['status', job.id], farm.stateDir, farm.dir, 60_000);
    const jobs = await runSkyfarm(['jobs'], farm.stateDir, farm.dir, 60_000);
    batch.setRule(null);
    const outageRequests = batch.requests.filter((r) => r.at >= outageFrom && r.fault === 'reset').length;
    t.ok(outageRequests > 0, `Batch was asked during the outage (${outageRequests} requests reset)`);
    // Waits of at most 7.5 s after the first few: ~1 request per 5.6 s; a fixed 250 ms rhythm: 4 per s.
    const outageMs = Date.now() - outageFrom;
    t.ok(
      outageRequests <= 8 + outageMs / 2500,
      `and backed off (${outageRequests} requests in ${outageMs} ms; a fixed 250 ms rhythm: ~${Math.round(outageMs / 250)})`,
    );
    t.ok(slowest < 5000, `the daemon kept answering during the outage (slowest ${slowest} ms)`);
    t.not(during?.state, 'failed', 'the outage did not fail the job');
    t.match(
      during?.message ?? '',
      /^AWS unreachable since \d\d:\d\d \(\d+ (s|min)\): .*(ECONNRESET|socket hang up).*; retrying$/,
      'the job says AWS is unreachable, since when, and why',
    );
    t.match(status.stdout, /message +AWS unreachable since/, '`skyfarm status` says so too');
    t.match(jobs.stdout, new RegExp(`${job.id}.*AWS unreachable since`), 'and `skyfarm jobs`');

    // Recovery.
    farm.batch.holdQueue('skyfarm-transfer', false);
    await until(
      'the job to finish',
      () => mine().some((u) => ['done', 'failed', 'canceled'].includes(u.state)),
      120_000,
    );
    const final = (await client.request('jobs.get', { jobId: job.id })).job;
    t.match(final, { state: 'done', framesDone: 3, framesFailed: 0 }, 'the job finished with every frame');
    t.notMatch(final.message, /AWS unreachable/i, 'and no longer says AWS is unreachable');
    const files = readdirSync(output).sort();
    t.same(
      files,
      ['frame_0001.png', 'frame_0002.png', 'frame_0003.png'],
      'exactly its frames, no temporary file',
    );
    for (const file of files) {
      const copy = path.join(farm.dir, 'published', file);
      await farm.bucket.download(`${jobKeys(job.id).outputPrefix}${file}`, copy);
      const published = readFileSync(copy);
      const local = readFileSync(path.join(output, file));
      t.equal(
        createHash('sha256').update(local).digest('hex'),
        createHash('sha256').update(published).digest('hex'),
        `${file}: downloaded bytes = published bytes`,
      );
    }
    const submits = farm.batch.calls
      .filter((c) => c.operation === 'submitjob')
      .map((c) => String(c.input['jobName']));
    t.same(
      submits.sort(),
      ['copy', 'publish', 'render'].map((stage) => `skyfarm-${job.id}-${stage}`),
      'each stage submitted once',
    );
    const s3Faults = Object.values(s3.stats.faults).reduce((sum, n) => sum + (n ?? 0), 0);
    t.comment(
      `faults injected: ${s3Faults + throttled.length + outageRequests} — S3 ${s3Faults} ` +
        `(${uploadResets} resets while uploading, then ${JSON.stringify(s3.stats.faults)} in all, of ` +
        `${s3.stats.requests} requests); Batch ${throttled.length} throttled + ${outageRequests} reset ` +
        `of ${batch.requests.length} requests`,
    );
  },
);

t.test(
  'cancel while AWS is unreachable: canceled at once, the Batch jobs terminated when AWS answers',
  { skip: blenderSkip, timeout: 175_000 },
  async (t) => {
    const farm = await startFarm(t);
    const batch = await startFaultProxy(farm.batch.endpoint);
    t.teardown(() => batch.close());
    const s3 = await startS3Proxy(farm.s3.endpoint, {});
    t.teardown(() => s3.close());
    farm.daemonEnv['AWS_ENDPOINT_URL_BATCH'] = batch.endpoint;
    farm.daemonEnv['AWS_ENDPOINT_URL_S3'] = s3.endpoint;
    const daemon = await farm.startDaemon();
    const { client, updates } = await recordUpdates(t, daemon);
    farm.batch.holdQueue('skyfarm-cpu-spot', true); // the render waits for capacity
    farm.ses.hold(true); // and later the publish stays RUNNING (its mail is held)
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const output = path.join(farm.dir, 'out');
    const { job } = await client.request('render.submit', {
      blendFile: scene,
      backend: 'aws',
      chunkSize: 1,
      output,
      aws: { notifyEmail: 'artist@example.com' },
    });
    const mine = () => updates.filter((u) => u.id === job.id);
    await until('the job to render', () => mine().some((u) => u.state === 'rendering'), 90_000);

    // AWS goes away (every Batch and S3 request of the daemon reset), then the user cancels.
    batch.setRule(() => ({ kind: 'reset' }));
    s3.setFaults({ rate: 1, seed: SEED, kinds: ['reset'] });
    const asked = Date.now();
    const cancel = await runSkyfarm(['cancel', job.id], farm.stateDir, farm.dir, 60_000);
    const took = Date.now() - asked;
    t.equal(cancel.code, 0, 'skyfarm cancel exits 0', { stderr: cancel.stderr.slice(-2000) });
    t.match(
      cancel.stdout,
      new RegExp(
        `^${job.id} canceled: AWS (unreachable since \\d\\d:\\d\\d: .+|has not answered for \\d+ s); ` +
          'the Batch jobs will be terminated when it answers\\n$',
      ),
      'it says the job is canceled and the Batch jobs will be terminated when AWS answers',
    );
    t.ok(took < 20_000, `and returned promptly (${took} ms, CLI start-up included)`);
    const canceledAt = Date.now();
    t.match((await client.request('jobs.get', { jobId: job.id })).job, { state: 'canceled' });

    // Meanwhile on AWS the render gets capacity, renders, and the publish uploads the frames.
    farm.batch.holdQueue('skyfarm-cpu-spot', false);
    const named = (stage: string) => farm.batch.byName(`skyfarm-${job.id}-${stage}`)[0];
    await until(
      'the publish to run and upload the frames',
      () => named('publish')?.status === 'RUNNING' && existsSync(path.join(farm.efs, 'jobs', job.id)),
      100_000,
    );
    let published = await farm.bucket.list(jobKeys(job.id).outputPrefix);
    for (const deadline = Date.now() + 30_000; published.length < 2 && Date.now() < deadline;) {
      await sleep(250);
      published = await farm.bucket.list(jobKeys(job.id).outputPrefix);
    }
    t.equal(published.length, 2, 'both frames were published to the bucket during the outage');
    t.equal(
      farm.batch.calls.filter((c) => c.operation === 'terminatejob').length,
      0,
      'nothing reached Batch during the outage',
    );

    // AWS answers again.
    batch.setRule(null);
    s3.setFaults(null);
    const healedAt = Date.now();
    await until(
      'the job to say canceled',
      () => mine().some((u) => u.state === 'canceled' && u.message === 'canceled'),
      60_000,
    );
    t.comment(`cancel carried out ${Date.now() - healedAt} ms after AWS answered`);
    t.ok(
      farm.batch.calls.some(
        (c) => c.operation === 'terminatejob' && c.input['jobId'] === named('publish')?.jobId,
      ),
      'TerminateJob for the running publish',
    );
    // The worker stops once its (held) mail call returns; the fake sends no SIGKILL after a grace period.
    farm.ses.hold(false);
    await farm.batch.waitFor(() => named('publish')?.status === 'FAILED', 30_000, 'the publish to stop');
    t.equal(
      named('publish')?.statusReason,
      'canceled by the user (skyfarm cancel)',
      'the publish was terminated',
    );
    t.equal(farm.batch.byName(`skyfarm-${job.id}-cleanup`).length, 1, 'one cleanup job submitted');
    t.same(existsSync(output) ? readdirSync(output) : [], [], 'no frame downloaded after the cancel');
    t.comment(`canceled ${canceledAt - asked} ms after asking`);
    t.equal(
      mine().filter((u, i, all) => u.state === 'canceled' && all[i - 1]?.state !== 'canceled').length,
      1,
      'the job became canceled once (later only its message changed)',
    );
    const log = await runSkyfarm(['logs', job.id], farm.stateDir, farm.dir, 60_000);
    t.equal(log.stdout.match(/^\[skyfarm\] canceled/gm)?.length ?? 0, 1, 'one "canceled" log line');
    t.match(log.stdout, /AWS answers again/, 'the log notes when AWS answered');
    await until('the working folder to go', () => !existsSync(path.join(farm.efs, 'jobs', job.id)), 60_000);
    t.pass('the cleanup removed the working folder');
  },
);
