// The AWS backend's poll loop and launch under AWS errors, with the clock and the jitter injected
// (AwsBackendDeps.now/random) and in-memory stand-ins for Batch and the bucket, so waits and messages
// are exact: a throttled DescribeJobs makes the poll back off (waits 20, 40, 80, … ms with the jitter
// at 0), the job says "AWS unreachable since 12:03 (40 s): …" once the outage is older than the notice
// time, and the first answer brings back the normal rhythm and the job's own message. An upload cut off
// by a network error is retried (the job waits, saying why); an error that is not an outage fails it.
// Through the real SDK and HTTP fakes: test/reliability-aws-faults.test.ts.
import t, { type Test } from 'tap';
import type { AwsBackendDeps } from '../daemon/src/batch/aws-backend.js';
import type { BatchJobInfo, IBatch } from '../daemon/src/batch/batch-api.js';
import type { IBucket } from '../daemon/src/batch/bucket.js';
import type { PrepareResult } from '../daemon/src/batch/prepare.js';
import { awsBackendHarness } from './helpers/aws-backend.js';
import { until } from './helpers/until.js';

const throttled = () =>
  Object.assign(new Error('Rate exceeded'), {
    name: 'TooManyRequestsException',
    $metadata: { httpStatusCode: 429 },
  });
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

function harness(t: Test, options: Partial<AwsBackendDeps> & { describe: IBatch['describe'] }) {
  const h = awsBackendHarness(t, { jobId: 'j_test', name: 'test job' });
  const submitted: string[] = [];
  const batch: IBatch = {
    describe: options.describe,
    submit: async (request) => {
      submitted.push(request.name);
      return { jobId: `id-${request.name}` };
    },
    findByName: async () => [],
    terminate: async () => undefined,
  };
  const bucket = {
    name: 'bucket',
    list: async () => [],
    getJson: async () => undefined,
  } as unknown as IBucket;
  const { describe: _describe, ...rest } = options;
  const backend = h.backend({ batch, bucket }, rest);
  t.teardown(() => backend.stopAll());
  const submit = () =>
    backend.submit(h.spec, { farm: h.farm, device: 'cpu', market: 'spot', blenderVersion: '4.2.3' });
  return { ...h, backend, submitted, submit };
}

t.test('a throttled poll backs off, says AWS is unreachable, and recovers on the first answer', async (t) => {
  const FAILS = 6;
  const start = new Date(2026, 10, 27, 12, 3, 0).getTime();
  let clock = start;
  const calls: number[] = [];
  const h = harness(t, {
    pollFastMs: 40,
    pollSlowMs: 40,
    pollBackoffMaxMs: 5_000,
    outageNoticeMs: 30_000,
    now: () => clock,
    random: () => 0,
    describe: async (ids) => {
      calls.push(Date.now());
      clock += 20_000; // each poll is 20 s later on the injected clock
      if (calls.length <= FAILS) throw throttled();
      return ids.map((jobId): BatchJobInfo => ({ jobId, name: jobId, status: 'RUNNING', attempts: [] }));
    },
    prepare: async (): Promise<PrepareResult> => ({
      job: { frames: [1, 2], chunkSize: 1 } as PrepareResult['job'],
      missing: [],
      files: 1,
      bytesUploaded: 1,
    }),
  });
  h.submit();
  await until('five polls after the recovery', () => calls.length >= FAILS + 6);
  await h.backend.stopAll();

  const gaps = calls.slice(1).map((at, i) => at - calls[i]!);
  // With the jitter at 0 the waits are half of 40·2^(n-1): 20, 40, 80, 160, 320, 640 ms.
  const expected = [20, 40, 80, 160, 320, 640];
  for (const [i, wait] of expected.entries())
    t.ok(gaps[i]! >= wait - 2, `failure ${i + 1}: waited ${gaps[i]} ms (back-off ${wait} ms)`);
  const after = gaps.slice(FAILS).sort((a, b) => a - b);
  const median = after[Math.floor(after.length / 2)]!;
  t.ok(
    median < 320,
    `after the first answer, back to the 40 ms rhythm (median gap ${median} ms; gaps ${gaps.join(', ')})`,
  );

  const messages = [...new Set(h.updates.map((u) => u.message))];
  t.ok(
    messages.includes(
      'AWS unreachable since 12:03 (40 s): TooManyRequestsException: Rate exceeded; retrying',
    ),
    'the notice comes once the outage is older than outageNoticeMs (40 s ≥ 30 s on the injected clock)',
  );
  t.notOk(
    messages.some((m) => /AWS unreachable since 12:03 \((0|20) s\)/.test(m)),
    'not before that (a short blip says nothing)',
  );
  t.ok(
    messages.includes(
      'AWS unreachable since 12:03 (1 min): TooManyRequestsException: Rate exceeded; retrying',
    ),
    'the duration grows while it lasts',
  );
  const final = h.repo.get('j_test')!;
  t.match(
    final.message,
    /^chunks: 2 running, 0 queued, 0 done · frames 0\/2$/,
    'the job has its own message back',
  );
  t.not(final.state, 'failed', 'the outage did not fail the job');
  const log = h.logs.tail('j_test', 1000).join('\n');
  t.equal(log.match(/AWS unreachable since/g)?.length, 1, 'the job log notes the outage once');
  t.match(log, /AWS answers again \(it was unreachable for 2 min\)/, 'and its end');
  t.same(
    h.submitted,
    ['copy', 'render', 'publish'].map((stage) => `skyfarm-j_test-${stage}`),
    'each stage submitted once',
  );
});

t.test('an upload cut off by a network error is retried; other errors fail the job', async (t) => {
  t.test('network error: retried with back-off, the job says why it waits', async (t) => {
    let attempts = 0;
    const h = harness(t, {
      pollFastMs: 20,
      random: () => 0,
      describe: async (ids) =>
        ids.map((jobId): BatchJobInfo => ({ jobId, name: jobId, status: 'RUNNABLE', attempts: [] })),
      prepare: async () => {
        attempts++;
        if (attempts <= 3) throw reset();
        return {
          job: { frames: [1, 2], chunkSize: 1 } as PrepareResult['job'],
          missing: [],
          files: 1,
          bytesUploaded: 1,
        };
      },
    });
    h.submit();
    await until('the stages to be submitted', () => h.submitted.length === 3);
    t.equal(attempts, 4, 'three failed uploads, then one that worked');
    t.ok(
      h.updates.some(
        (u) =>
          u.state === 'uploading' &&
          /^AWS unreachable since \d\d:\d\d \(\d+ s\): ECONNRESET: socket hang up; retrying$/.test(u.message),
      ),
      'while it waits the job says AWS is unreachable',
    );
    t.notOk(
      h.updates.some((u) => u.state === 'failed'),
      'the job never failed',
    );
    t.match(h.logs.tail('j_test', 100).join('\n'), /AWS answers again/);
  });

  t.test('an outage longer than outageGiveUpMs fails the upload', async (t) => {
    let clock = 0;
    const h = harness(t, {
      pollFastMs: 10,
      outageGiveUpMs: 60_000,
      now: () => clock,
      describe: async () => [],
      prepare: async () => {
        clock += 25_000;
        throw reset();
      },
    });
    h.submit();
    await until('the job to fail', () => h.repo.get('j_test')!.state === 'failed');
    t.match(h.repo.get('j_test')!, { state: 'failed', stages: { upload: 'failed' } });
    t.same(h.submitted, [], 'nothing submitted');
  });

  t.test('access denied is not an outage: the job fails at once', async (t) => {
    let attempts = 0;
    const h = harness(t, {
      pollFastMs: 10,
      describe: async () => [],
      prepare: async () => {
        attempts++;
        throw Object.assign(new Error('not authorized'), {
          name: 'AccessDenied',
          $metadata: { httpStatusCode: 403 },
        });
      },
    });
    h.submit();
    await until('the job to fail', () => h.repo.get('j_test')!.state === 'failed');
    t.equal(attempts, 1, 'tried once');
  });
});
