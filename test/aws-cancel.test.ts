// Cancel of AWS jobs across daemon restarts and AWS outages, in-process with in-memory stand-ins for
// Batch and the bucket (the HTTP fakes: test/reliability-crash-aws.test.ts for the kills,
// test/reliability-aws-faults.test.ts for the outage through a fault proxy):
// - a daemon killed after recording a cancel, before acting on it, or after terminating the Batch jobs,
//   before marking the job canceled: the next daemon finishes the cancel — terminates what still runs
//   (a stage whose id was never stored is found by name), ends the job `canceled` exactly once (one
//   job.update with that state, one log line) — and a later restart does nothing more;
// - `cancel` while AWS is unreachable returns at once: the job is canceled and says the Batch jobs will
//   be terminated when AWS answers; nothing is downloaded after the cancel; a daemon restarted during
//   the outage carries on; once AWS answers the Batch jobs are terminated and the message is "canceled";
// - AWS that neither answers nor fails does not keep `cancel` waiting longer than cancelAnswerMs.
import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { JobService } from '../daemon/src/jobs/job-service.js';
import type { LocalBackend } from '../daemon/src/pipeline/local-backend.js';
import type { AwsWiring } from '../daemon/src/batch/wiring.js';
import type { AwsBackend, AwsBackendDeps } from '../daemon/src/batch/aws-backend.js';
import type { BatchJobInfo, BatchStatus, IBatch } from '../daemon/src/batch/batch-api.js';
import type { IBucket, ObjectInfo } from '../daemon/src/batch/bucket.js';
import { batchJobName, jobKeys } from '../daemon/src/batch/layout.js';
import { awsBackendHarness } from './helpers/aws-backend.js';
import { until } from './helpers/until.js';

const JOB = 'j_cancel';
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

type Stage = 'copy' | 'render' | 'publish';

/**
 * One AWS job whose copy succeeded and whose render and publish are on Batch with `statuses`;
 * `stored` says which Batch ids the daemon had recorded. `down`: every AWS call fails (reset) or
 * never answers (stall).
 */
function harness(
  t: Test,
  setup: { statuses: Record<Stage, BatchStatus>; stored?: Stage[]; outputs?: string[] },
) {
  const h = awsBackendHarness(t, { jobId: JOB, name: 'cancel test' });
  const { repo, logs, store, farm, updates } = h;
  const cloud = {
    down: null as null | 'reset' | 'stall',
    status: new Map<string, BatchStatus>(),
    names: new Map<string, string>(),
    terminated: [] as string[],
    submitted: [] as string[],
    puts: [] as string[],
    downloads: [] as string[],
    outputs: [...(setup.outputs ?? [])],
  };
  const reach = async () => {
    if (cloud.down === 'reset') throw reset();
    if (cloud.down === 'stall') await new Promise(() => undefined);
  };
  const batch: IBatch = {
    describe: async (ids) => {
      await reach();
      return ids.flatMap((jobId): BatchJobInfo[] => {
        const status = cloud.status.get(jobId);
        return status ? [{ jobId, name: cloud.names.get(jobId) ?? jobId, status, attempts: [] }] : [];
      });
    },
    submit: async (request) => {
      await reach();
      cloud.submitted.push(request.name);
      const jobId = `id-${request.name}`;
      cloud.status.set(jobId, 'SUBMITTED');
      cloud.names.set(jobId, request.name);
      return { jobId };
    },
    findByName: async (_queue, name) => {
      await reach();
      return [...cloud.names.entries()]
        .filter(([, n]) => n === name)
        .map(([jobId]) => ({ jobId, name, status: cloud.status.get(jobId)!, attempts: [] }));
    },
    terminate: async (jobId) => {
      await reach();
      cloud.terminated.push(jobId);
      cloud.status.set(jobId, 'FAILED');
    },
  };
  const keys = jobKeys(JOB);
  const bucket = {
    name: 'bucket',
    list: async (prefix: string): Promise<ObjectInfo[]> => {
      await reach();
      return prefix === keys.outputPrefix
        ? cloud.outputs.map((name) => ({ key: `${prefix}${name}`, size: 10, etag: name }) as ObjectInfo)
        : [];
    },
    getJson: async () => {
      await reach();
      return undefined;
    },
    putJson: async (key: string) => {
      await reach();
      cloud.puts.push(key);
    },
    download: async (key: string) => {
      await reach();
      cloud.downloads.push(key);
      return { size: 10 };
    },
  } as unknown as IBucket;

  store.insert({
    jobId: JOB,
    farm,
    device: 'cpu',
    market: 'spot',
    blenderVersion: '4.2.3',
    notifyEmail: null,
    prepareOnly: false,
  });
  store.setPrepared(JOB, farm.queues.cpuSpot, 2);
  for (const stage of ['copy', 'render', 'publish'] as const) {
    const id = `id-${batchJobName(JOB, stage)}`;
    cloud.status.set(id, setup.statuses[stage]);
    cloud.names.set(id, batchJobName(JOB, stage));
    if (setup.stored?.includes(stage) ?? true) store.setBatchId(JOB, stage, id);
  }
  repo.update(JOB, { state: 'rendering', stage: ['upload', 'done'] });
  repo.update(JOB, { stage: ['copy', 'done'] });
  repo.update(JOB, { stage: ['render', 'running'] });

  const backends: AwsBackend[] = [];
  /** A daemon: a new backend (and job service) over the same database. */
  const daemon = (options: Partial<AwsBackendDeps> = {}) => {
    const backend = h.backend(
      { batch, bucket },
      { pollFastMs: 20, pollSlowMs: 20, random: () => 0, ...options },
    );
    backends.push(backend);
    const jobs = new JobService({
      repo,
      logs,
      notify: () => undefined,
      local: { start: () => undefined, cancel: async () => undefined } as unknown as LocalBackend,
      findBlender: async () => ({ path: 'blender' }),
      probeBlend: async () => {
        throw new Error('not used');
      },
      aws: { backend } as unknown as AwsWiring,
    });
    return { backend, jobs };
  };
  t.teardown(async () => {
    cloud.down = null;
    for (const backend of backends) await backend.stopAll();
  });
  const id = (stage: Stage | 'cleanup') => `id-${batchJobName(JOB, stage)}`;
  const canceledUpdates = () => updates.filter((u) => u.state === 'canceled');
  const canceledLines = () =>
    logs.tail(JOB, 10_000).filter((line) => line.startsWith('[skyfarm] canceled')).length;
  return { repo, logs, store, cloud, updates, daemon, id, canceledUpdates, canceledLines };
}

t.test('killed after the cancel was recorded: the next daemon finishes it, once', async (t) => {
  const h = harness(t, { statuses: { copy: 'SUCCEEDED', render: 'RUNNING', publish: 'PENDING' } });
  h.store.setCanceled(JOB); // what cancel() commits first; the daemon died before acting on it

  const first = h.daemon();
  t.same(first.jobs.resumeUnfinished(), [JOB], 'the job is unfinished');
  await until(
    'the job to end',
    () => h.repo.get(JOB)!.state === 'canceled' && !h.store.pendingCancels().length,
  );
  t.same(
    h.cloud.terminated.sort(),
    [h.id('publish'), h.id('render')].sort(),
    'render and publish terminated',
  );
  t.same(h.cloud.puts, [jobKeys(JOB).cancel], 'cancel.json written for the publish that follows');
  t.same(h.cloud.submitted, [], 'no cleanup job: the stack rule publishes after the terminated render');
  t.equal(h.canceledUpdates().length, 1, 'one job.update with state canceled');
  t.equal(h.canceledLines(), 1, 'one "canceled" log line');
  t.match(h.repo.get(JOB), { state: 'canceled', message: 'canceled', stages: { render: 'canceled' } });

  await first.backend.stopAll();
  const second = h.daemon();
  t.same(second.jobs.resumeUnfinished(), [], 'a later restart has nothing to resume');
  await sleep(100);
  t.equal(h.cloud.terminated.length, 2, 'nothing terminated again');
  t.equal(h.canceledUpdates().length, 1, 'still one job.update with state canceled');
  t.equal(h.canceledLines(), 1);
});

t.test('killed after the Batch jobs were terminated, before the job was marked canceled', async (t) => {
  const h = harness(t, { statuses: { copy: 'SUCCEEDED', render: 'FAILED', publish: 'FAILED' } });
  h.store.setCanceled(JOB);
  h.logs.append(JOB, `[skyfarm] terminated render job ${h.id('render')}`);
  const { jobs } = h.daemon();
  jobs.resumeUnfinished();
  await until(
    'the job to end',
    () => h.repo.get(JOB)!.state === 'canceled' && !h.store.pendingCancels().length,
  );
  t.same(h.cloud.terminated, [], 'nothing left to terminate (TerminateJob only for unfinished jobs)');
  t.equal(h.canceledUpdates().length, 1, 'one job.update with state canceled');
  t.equal(h.canceledLines(), 1, 'one "canceled" log line');
});

t.test('a stage submitted but never stored is found by name and terminated', async (t) => {
  const h = harness(t, {
    statuses: { copy: 'SUCCEEDED', render: 'RUNNING', publish: 'PENDING' },
    stored: ['copy', 'render'],
  });
  h.store.setCanceled(JOB);
  h.daemon().jobs.resumeUnfinished();
  await until(
    'the job to end',
    () => h.repo.get(JOB)!.state === 'canceled' && !h.store.pendingCancels().length,
  );
  t.same(h.cloud.terminated.sort(), [h.id('publish'), h.id('render')].sort());
  t.equal(h.store.get(JOB)!.batchIds.publish, h.id('publish'), 'its id is stored now');
});

t.test('a user cancel and the resume path at once: one cancel', async (t) => {
  const h = harness(t, { statuses: { copy: 'SUCCEEDED', render: 'RUNNING', publish: 'PENDING' } });
  h.store.setCanceled(JOB);
  const { backend, jobs } = h.daemon();
  jobs.resumeUnfinished();
  await jobs.cancel(JOB).catch(() => undefined); // JOB_FINISHED when the resume was first: fine
  await backend.cancel(JOB);
  await until('the job to end', () => !h.store.pendingCancels().length);
  t.equal(h.cloud.terminated.length, 2, 'render and publish terminated once each');
  t.equal(h.canceledUpdates().length, 1);
  t.equal(h.canceledLines(), 1);
});

t.test('cancel while AWS is unreachable: recorded at once, carried out when AWS answers', async (t) => {
  const h = harness(t, {
    statuses: { copy: 'SUCCEEDED', render: 'SUCCEEDED', publish: 'RUNNING' },
    outputs: ['frame_0001.png'],
  });
  const first = h.daemon();
  first.jobs.resumeUnfinished(); // following the job: publish runs, frame 1 is downloaded
  await until('frame 1 to download', () => h.cloud.downloads.length === 1);

  h.cloud.down = 'reset';
  h.cloud.outputs.push('frame_0002.png'); // published meanwhile: must not be downloaded after the cancel
  const asked = Date.now();
  const job = await first.jobs.cancel(JOB);
  const took = Date.now() - asked;
  t.ok(took < 2000, `cancel returned at once (${took} ms)`);
  t.equal(job.state, 'canceled', 'the job shows canceled');
  t.match(
    job.message,
    /^AWS unreachable since \d\d:\d\d: ECONNRESET: socket hang up; the Batch jobs will be terminated when it answers$/,
    'and says the Batch jobs will be terminated when AWS answers',
  );
  t.same(h.store.pendingCancels(), [JOB], 'the cancel is still to be carried out on AWS');
  await sleep(200); // a few retries
  t.same(h.cloud.terminated, [], 'nothing could be terminated yet');

  // The daemon restarts during the outage: the next one carries on.
  await first.backend.stopAll();
  const second = h.daemon();
  t.same(second.jobs.resumeUnfinished(), [], 'the job is not resumed (it is canceled)…');
  await sleep(100);
  h.cloud.down = null;
  await until('the job to say canceled', () => h.repo.get(JOB)!.message === 'canceled');
  await until('the cancel to be carried out', () => !h.store.pendingCancels().length);
  t.same(h.cloud.terminated, [h.id('publish')], '…but its publish job is terminated once AWS answers');
  t.same(
    h.cloud.submitted,
    [batchJobName(JOB, 'cleanup')],
    'a cleanup job removes the working folder (the render had succeeded: no rule runs)',
  );
  t.same(
    h.cloud.downloads,
    [`${jobKeys(JOB).outputPrefix}frame_0001.png`],
    'nothing downloaded after the cancel',
  );
  t.equal(
    h.canceledUpdates().filter((u, i, all) => i === 0 || all[i - 1]!.message !== u.message).length,
    2,
    'state canceled once, then only its message changed',
  );
  t.equal(
    h.updates.filter((u, i, all) => u.state === 'canceled' && all[i - 1]?.state !== 'canceled').length,
    1,
    'the job became canceled once',
  );
  t.equal(h.canceledLines(), 1, 'one "canceled" log line');
  t.match(h.logs.tail(JOB, 1000).join('\n'), /AWS answers again/, 'the log notes when AWS answered');
});

t.test('AWS that does not answer at all keeps cancel waiting cancelAnswerMs at most', async (t) => {
  const h = harness(t, { statuses: { copy: 'SUCCEEDED', render: 'RUNNING', publish: 'PENDING' } });
  const { jobs } = h.daemon({ cancelAnswerMs: 1000 });
  h.cloud.down = 'stall';
  const alive = setInterval(() => undefined, 100); // a stalled request holds no handle of its own
  t.teardown(() => clearInterval(alive));
  const asked = Date.now();
  const job = await jobs.cancel(JOB);
  const took = Date.now() - asked;
  t.ok(took >= 900 && took < 5000, `cancel returned after ${took} ms`);
  t.match(job, {
    state: 'canceled',
    message: 'AWS has not answered for 1 s; the Batch jobs will be terminated when it answers',
  });
  t.same(h.store.pendingCancels(), [JOB]);
});
