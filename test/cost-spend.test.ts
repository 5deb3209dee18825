// A job's spend on the fake farm equals the sum, over copy, every render chunk and publish, of each
// run's time × its vCPU share of the instance it ran on × that instance's price (spot: the spot price
// history time-weighted, across a price change in mid-job; on-demand: the Price List's), computed here
// independently from the fakes' records. Also: the spend grows while chunks run and the projection
// (spent / progress) meets the spend at the end; prices are cached (a day on-demand, an hour spot); a
// denied call makes the cost "unknown" naming the IAM action, never a guess. No Blender: the
// containers only sleep.
import t from 'tap';
import { join } from 'node:path';
import { openDatabase } from '../daemon/src/db/database.js';
import { JobRepo } from '../daemon/src/jobs/job-repo.js';
import { AwsJobStore } from '../daemon/src/batch/aws-store.js';
import { createBatch } from '../daemon/src/batch/batch-api.js';
import { farmFromNames } from '../daemon/src/batch/farm.js';
import { PriceBook } from '../daemon/src/cost/price-book.js';
import { CostService } from '../daemon/src/cost/cost-service.js';
import type { JobSpec } from '../daemon/src/jobs/job-spec.js';
import { startFakeBatch } from './fakes/batch/server.js';
import { farmFromTemplate } from './fakes/batch/template.js';
import { startCostWorld } from './helpers/cost-world.js';

const JOB = 'j_cost';
const CHUNKS = 4;

t.test('spend, projection, cache and denial on the fake farm', async (t) => {
  const dir = t.testdir({});
  const started = Date.now();
  // The spot price of the chunks' instance changes while the job runs.
  const world = await startCostWorld(t, { scale: 3600, spotChangeAt: started + 900 });
  const template = farmFromTemplate({ bucket: 'bucket' });
  const fake = await startFakeBatch({
    queues: template.queues,
    jobDefinitions: template.jobDefinitions,
    executables: {
      'skyfarm-worker': ['sh', '-c', 'sleep 0.$((3 + ${AWS_BATCH_JOB_ARRAY_INDEX:-0}))'],
    },
    tickMs: 20,
    maxRunning: 2,
    placeContainer: (job) => world.placeContainer(job),
  });
  t.teardown(() => fake.close());
  const batch = createBatch({
    region: 'us-east-1',
    endpoint: fake.endpoint,
    credentials: { accessKeyId: 'k', secretAccessKey: 's' },
  });
  t.teardown(() => batch.destroy());

  const db = openDatabase(join(dir, 'db.sqlite'));
  t.teardown(() => db.close());
  const repo = new JobRepo(db);
  const store = new AwsJobStore(db);
  const frames = [1, 2, 3, 4, 5, 6, 7, 8];
  const spec: JobSpec = {
    jobId: JOB,
    backend: 'aws',
    blendFile: join(dir, 'scene.blend'),
    sourceBlendFile: join(dir, 'scene.blend'),
    projectRoot: dir,
    temporaryBlend: false,
    scene: 'Scene',
    frames,
    framesSpec: '1-8',
    chunkSize: 2,
    outputDir: join(dir, 'out'),
    filePattern: 'frame_####',
    fileExtension: '.png',
    dependencies: [],
  };
  repo.create(spec, 'cost');
  const farm = farmFromNames('bucket', { region: 'us-east-1' });
  store.insert({
    jobId: JOB,
    farm,
    device: 'cpu',
    market: 'spot',
    blenderVersion: '4.2.3',
    notifyEmail: null,
    prepareOnly: false,
    maxCostUsd: null,
  });
  store.setPrepared(JOB, farm.queues.cpuSpot, CHUNKS);
  const submit = (stage: string, queue: string, definition: string, more = {}) =>
    batch.submit({
      name: `skyfarm-${JOB}-${stage}`,
      queue,
      definition,
      command: ['skyfarm-worker', stage],
      environment: {},
      ...more,
    });
  const copy = await submit('copy', farm.queues.transfer, farm.jobDefinitions.transfer);
  const render = await submit('render', farm.queues.cpuSpot, farm.jobDefinitions.render, {
    dependsOn: [copy.jobId],
    arraySize: CHUNKS,
  });
  const publish = await submit('publish', farm.queues.transfer, farm.jobDefinitions.transfer, {
    dependsOn: [render.jobId],
  });
  store.setBatchId(JOB, 'copy', copy.jobId);
  store.setBatchId(JOB, 'render', render.jobId);
  store.setBatchId(JOB, 'publish', publish.jobId);
  const ids = [copy.jobId, render.jobId, publish.jobId];

  let clock = () => Date.now();
  const prices = new PriceBook({ db, pricing: () => world.pricingClient, now: () => clock() });
  const service = new CostService({
    repo,
    store,
    prices,
    clients: () => world.clients(batch),
  });

  // While it runs: frames are marked done as their chunk succeeds (what the backend does from its
  // markers), and the cost is asked for again and again. Once chunk 0 runs, its spot price changes.
  const seen: Array<{ usd: number; projected?: number; low?: number; high?: number; running: boolean }> = [];
  let changed = false;
  while (fake.jobs.get(publish.jobId)?.status !== 'SUCCEEDED') {
    const children = fake.jobs.get(render.jobId)?.children ?? [];
    const first = children[0]?.attempts[0]?.startedAt ?? children[0]?.current?.startedAt;
    if (!changed && first !== undefined) {
      changed = true;
      world.spotPrices.push({
        instanceType: 'c6i.xlarge',
        availabilityZone: 'us-east-1a',
        since: first + 150,
        usdPerHour: 0.0733 * 3600,
      });
    }
    for (const child of children) {
      if (child.status === 'SUCCEEDED')
        for (const frame of frames.slice(child.arrayIndex! * 2, child.arrayIndex! * 2 + 2))
          repo.setFrame(JOB, frame, 'done', {});
    }
    const { cost, lines } = await service.report(JOB);
    if (cost.known && cost.usd !== undefined)
      seen.push({
        usd: cost.usd,
        ...(cost.projectedUsd !== undefined
          ? { projected: cost.projectedUsd, low: cost.projectedLowUsd!, high: cost.projectedHighUsd! }
          : {}),
        running: lines.some((l) => l.running),
      });
    if (Date.now() - started > 30_000) throw new Error('the job did not end');
    await new Promise((resolve) => setTimeout(resolve, 120));
  }
  const chunk0 = fake.jobs.get(render.jobId)!.children![0]!.attempts[0]!;
  t.ok(
    chunk0.startedAt! + 150 < chunk0.stoppedAt!,
    'the spot price changed while chunk 0 ran (its cost is time-weighted across the change)',
  );
  t.ok(seen.length >= 5, `the cost was known throughout (${seen.length} reports)`);
  t.ok(
    seen.every((s, i) => i === 0 || s.usd >= seen[i - 1]!.usd - 1e-12),
    'the spend only grows',
  );
  t.ok(
    seen.some((s) => s.running && s.usd > 0),
    'running chunks count until now',
  );
  const projected = seen.filter((s) => s.projected !== undefined);
  t.ok(projected.length > 0, 'a projection once frames finished');
  t.ok(
    projected.every((s) => s.low! <= s.projected! + 1e-12 && s.projected! <= s.high! + 1e-12),
    'each projection lies in its range',
  );
  const last = projected.at(-1)!;
  t.ok(Math.abs(last.projected! - last.usd) < 1e-9, 'with every frame done the projection is the spend');
  // The spot history cached at the start lacks the change: an hour later it is asked again.
  const spotCalls = () => world.ec2.calls.filter((c) => c.action === 'DescribeSpotPriceHistory').length;
  const productCalls = () => world.pricing.calls.length;
  t.equal(productCalls(), 3, 'one GetProducts per instance type, then the cache');
  const spotBefore = spotCalls();
  t.equal(spotBefore, 1, 'one spot history for the spot type and zone');
  clock = () => Date.now() + 61 * 60_000;

  const report = await service.report(JOB);
  t.ok(report.cost.known, 'the cost is known');
  const expected = world.expectedSpend(fake, ids);
  t.ok(expected > 0, 'the job cost something');
  t.ok(
    Math.abs(report.cost.usd! - expected) < 1e-9 * Math.max(1, expected),
    `spend ${report.cost.usd} = independent sum ${expected}`,
  );
  t.equal(report.lines.filter((l) => l.stage === 'render').length, CHUNKS, 'one line per chunk');
  t.same([...new Set(report.lines.map((l) => `${l.instanceType} ${l.market}`))].sort(), [
    'c6i.large on-demand',
    'c6i.xlarge spot',
    'm6i.2xlarge on-demand',
  ]);
  const spotLine = report.lines.find((l) => l.market === 'spot')!;
  t.equal(spotLine.share, 1, 'a render job reserves 4 vCPUs: all of a c6i.xlarge');
  t.equal(report.lines.find((l) => l.instanceType === 'm6i.2xlarge')!.share, 0.5, 'half of an m6i.2xlarge');
  t.equal(report.lines.find((l) => l.stage === 'copy')!.share, 0.5, 'copy: 1 of 2 vCPUs');
  t.match(report.cost.basis, /c6i\.xlarge spot ×2/);
  t.equal(spotCalls(), spotBefore + 1, 'spot prices are cached for an hour');
  t.equal(productCalls(), 3, 'on-demand prices for a day');

  // Denied: "cost unknown" with the action to allow, and no figure at all.
  clock = () => Date.now() + 25 * 3_600_000;
  world.pricing.deny(true);
  let denied = (await service.report(JOB)).cost;
  t.same(
    { known: denied.known, usd: denied.usd, action: denied.missingAction },
    { known: false, usd: undefined, action: 'pricing:GetProducts' },
  );
  t.match(denied.unknownReason, /AWS denied pricing:GetProducts/);
  world.pricing.deny(false);
  world.ec2.deny(['DescribeSpotPriceHistory']);
  denied = (await service.report(JOB)).cost;
  t.equal(denied.missingAction, 'ec2:DescribeSpotPriceHistory');
  world.ec2.deny(false);
  const fresh = () => new CostService({ repo, store, prices, clients: () => world.clients(batch) });
  world.ecs.deny(true);
  denied = (await fresh().report(JOB)).cost;
  t.equal(denied.missingAction, 'ecs:DescribeContainerInstances');
  world.ecs.deny(false);
  world.ec2.deny(['DescribeInstances']);
  denied = (await fresh().report(JOB)).cost;
  t.equal(denied.missingAction, 'ec2:DescribeInstances');
  world.ec2.deny(false);
  t.ok((await fresh().report(JOB)).cost.known, 'allowed again: known again');
});
