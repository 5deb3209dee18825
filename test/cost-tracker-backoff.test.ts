// The daemon's cost estimates add no AWS calls while AWS fails the status polls: with DescribeJobs
// throttled the AWS backend backs off, and a cost tick in that time asks nothing (each estimate
// would be more DescribeJobs to a throttled API); once Batch answers the polls again, the next tick
// estimates as before. In-process: the AWS backend over a Batch stand-in (as in aws-poll-backoff),
// the tracker wired to it as the daemon wires it, its cost service counting the estimates asked.
import t from 'tap';
import pino from 'pino';
import type { BatchJobInfo, IBatch } from '../daemon/src/batch/batch-api.js';
import type { IBucket } from '../daemon/src/batch/bucket.js';
import type { PrepareResult } from '../daemon/src/batch/prepare.js';
import type { CostReport, CostService } from '../daemon/src/cost/cost-service.js';
import { CostTracker } from '../daemon/src/cost/cost-tracker.js';
import { awsBackendHarness } from './helpers/aws-backend.js';
import { until } from './helpers/until.js';

t.test('no cost estimate while the status polls back off; estimates again once AWS answers', async (t) => {
  const h = awsBackendHarness(t, { jobId: 'j_cost', name: 'cost job' });
  let throttle = false;
  const batch: IBatch = {
    describe: async (ids) => {
      if (throttle)
        throw Object.assign(new Error('Rate exceeded'), {
          name: 'TooManyRequestsException',
          $metadata: { httpStatusCode: 429 },
        });
      return ids.map((jobId): BatchJobInfo => ({ jobId, name: jobId, status: 'RUNNING', attempts: [] }));
    },
    submit: async (request) => ({ jobId: `id-${request.name}` }),
    findByName: async () => [],
    terminate: async () => undefined,
  };
  const bucket = {
    name: 'bucket',
    list: async () => [],
    getJson: async () => undefined,
  } as unknown as IBucket;
  const backend = h.backend(
    { batch, bucket },
    {
      pollFastMs: 20,
      pollSlowMs: 20,
      pollBackoffMaxMs: 1_000,
      prepare: async (): Promise<PrepareResult> => ({
        job: { frames: [1, 2], chunkSize: 1 } as PrepareResult['job'],
        missing: [],
        files: 1,
        bytesUploaded: 1,
      }),
    },
  );
  t.teardown(() => backend.stopAll());
  let estimates = 0;
  const service = {
    isAws: () => true,
    report: async (): Promise<CostReport> => {
      estimates++;
      return { cost: { known: false, unknownReason: 'test' }, lines: [] };
    },
  } as unknown as CostService;
  const tracker = new CostTracker({
    service,
    repo: h.repo,
    logs: h.logs,
    notify: () => undefined,
    log: pino({ level: 'silent' }),
    stop: async () => undefined,
    backingOff: () => backend.backingOff,
  });
  void backend.submit(h.spec, { farm: h.farm, device: 'cpu', market: 'spot', blenderVersion: '4.2.3' });
  await until('the job on AWS', () => h.store.get('j_cost')?.batchIds.publish !== undefined);
  await tracker.tick();
  t.equal(estimates, 1, 'AWS answers: the tick estimates the cost');

  throttle = true;
  await until('the polls to back off', () => backend.backingOff);
  await tracker.tick();
  await tracker.tick();
  t.equal(estimates, 1, 'AWS throttles the polls: no estimate, so no calls of its own');

  throttle = false;
  await until('the polls to recover', () => !backend.backingOff);
  await tracker.tick();
  t.equal(estimates, 2, 'AWS answers again: the next tick estimates');
});
