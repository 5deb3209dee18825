// Network faults on the AWS side, through the fakes with the real worker and real Blender: the daemon's
// Batch endpoint sits behind test/helpers/fault-proxy.ts and its S3 endpoint behind the S3 fault proxy
// (5xx, resets, lost answers, truncated downloads, slow answers on a seeded 10 % of requests). While
// the job renders, DescribeJobs is throttled (HTTP 429 TooManyRequestsException) for 8 s, then every
// Batch request fails (connection reset) for 12 s. The job must still finish with every frame, the
// downloaded frames must be byte-for-byte the published ones, no stage may be submitted twice, and the
// daemon keeps answering throughout. Polling should back off while throttled and a long outage should
// read "AWS unreachable" in the job's message: those two are marked todo until the AWS backend
// (daemon/src/batch/aws-backend.ts) does it.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { recordUpdates, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { startS3Proxy } from './fakes/s3-proxy/proxy.js';
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
    const s3 = await startS3Proxy(farm.s3.endpoint, {
      faults: {
        rate: 0.1,
        seed: SEED,
        kinds: ['5xx', 'reset', 'drop-response', 'truncate', 'slow'],
        slowMs: [200, 800],
      },
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
    await until('the render to start', () => mine().some((u) => u.state === 'rendering'), 100_000);

    // 8 s of throttling on DescribeJobs.
    const throttleFrom = Date.now();
    batch.setRule((request) => (request.operation === 'describejobs' ? { kind: 'throttle' } : null));
    await sleep(8000);
    batch.setRule(null);
    const throttled = batch.requests.filter((r) => r.fault === 'throttle');
    const firstHalf = throttled.filter((r) => r.at < throttleFrom + 4000).length;
    const secondHalf = throttled.length - firstHalf;
    t.ok(throttled.length > 0, `the daemon polled while throttled (${throttled.length} throttled requests)`);
    t.ok(
      secondHalf <= firstHalf / 2,
      `polling backs off while throttled (${firstHalf} requests in the first 4 s, ${secondHalf} in the next 4 s)`,
      { todo: 'AwsBackend polls at its fixed rate after a failed poll (daemon/src/batch/aws-backend.ts)' },
    );

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
    batch.setRule(null);
    const outageRequests = batch.requests.filter((r) => r.at >= outageFrom && r.fault === 'reset').length;
    t.ok(outageRequests > 0, `Batch was asked during the outage (${outageRequests} requests reset)`);
    t.ok(slowest < 5000, `the daemon kept answering during the outage (slowest ${slowest} ms)`);
    t.not(during?.state, 'failed', 'the outage did not fail the job');
    t.match(during?.message ?? '', /AWS unreachable/i, 'the job says AWS is unreachable', {
      todo: 'AwsBackend only logs a failed poll; the job message keeps its last text',
    });
    t.match(status.stdout, /AWS unreachable/i, '`skyfarm status` says so too', {
      todo: 'as above',
    });

    // Recovery.
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
    t.comment(
      `S3 faults injected: ${JSON.stringify(s3.stats.faults)}; Batch requests: ${batch.requests.length} ` +
        `(${throttled.length} throttled, ${outageRequests} reset)`,
    );
  },
);
