// A job's S3/EFS storage and requests, a line apart from its compute spend: a real upload of a small
// project into a local S3 (s3rver), the job's objects under jobs/<id>/, three Batch stages on the fake
// Batch (containers only sleep), and S3/EFS prices from the fake Price List (products shaped like the
// real AmazonS3 / AmazonEFS ones, neighbours included). The figures are recomputed here from the
// bucket's own listing, the project's files on disk, the fake Batch's records and the price table.
// A denied Price List makes the line "cost unknown … allow pricing:GetProducts". No Blender.
import t from 'tap';
import { join } from 'node:path';
import { statSync, writeFileSync, mkdirSync } from 'node:fs';
import { openDatabase } from '../daemon/src/db/database.js';
import { JobRepo } from '../daemon/src/jobs/job-repo.js';
import { AwsJobStore } from '../daemon/src/batch/aws-store.js';
import { createBatch } from '../daemon/src/batch/batch-api.js';
import { farmFromNames } from '../daemon/src/batch/farm.js';
import { S3Bucket, createS3Client, settingsFromEnv } from '../daemon/src/batch/bucket.js';
import { uploadToBucket } from '../daemon/src/batch/prepare.js';
import { createPricing } from '../daemon/src/aws/pricing.js';
import { PriceBook } from '../daemon/src/cost/price-book.js';
import { CostService } from '../daemon/src/cost/cost-service.js';
import { jobObjects, GIB, HOURS_PER_MONTH } from '../daemon/src/cost/storage.js';
import type { JobSpec } from '../daemon/src/jobs/job-spec.js';
import { startFakeBatch } from './fakes/batch/server.js';
import { farmFromTemplate } from './fakes/batch/template.js';
import { startFakePricing } from './fakes/pricing/server.js';
import type { FakeStoragePrices } from './fakes/pricing/storage-products.js';
import { awsEnv, startS3 } from './fakes/batch/aws-env.js';

const JOB = 'j_storage';
// Real us-east-1 list prices (S3 Standard first tier, EFS Standard, requests).
const PRICES: FakeStoragePrices = {
  regionCode: 'us-east-1',
  s3StandardGbMonth: 0.023,
  s3Tier1PerRequest: 0.000005,
  s3Tier2PerRequest: 0.0000004,
  efsStandardGbMonth: 0.3,
};

t.test('storage and requests: EFS copy × hours, S3 requests, S3 bytes per month', async (t) => {
  const dir = t.testdir({});
  const s3 = await startS3(join(dir, 's3'));
  t.teardown(() => s3.close());
  const pricing = await startFakePricing({ products: [], storage: PRICES, pageLimit: 2 });
  t.teardown(() => pricing.close());
  const env = awsEnv({ s3: s3.endpoint, pricing: pricing.endpoint });
  const client = createS3Client(settingsFromEnv(env, 'S3'));
  t.teardown(() => client.destroy());
  const bucket = new S3Bucket(client, s3.bucket);
  const pricingClient = createPricing(settingsFromEnv(env, 'PRICING'));
  t.teardown(() => pricingClient.destroy());

  // A small project: a .blend, one large texture (stored alone) and small files (packed).
  const project = join(dir, 'project');
  mkdirSync(join(project, 'tex'), { recursive: true });
  const blend = join(project, 'scene.blend');
  writeFileSync(blend, Buffer.concat([Buffer.from('BLENDER-v402'), Buffer.alloc(40_000, 7)]));
  const files = [blend];
  writeFileSync(join(project, 'tex', 'big.exr'), Buffer.alloc(3_000_000, 3));
  files.push(join(project, 'tex', 'big.exr'));
  for (let i = 0; i < 5; i++) {
    const file = join(project, 'tex', `small${i}.png`);
    writeFileSync(file, Buffer.alloc(1000 + i * 10, i + 1));
    files.push(file);
  }
  const upload = await uploadToBucket({
    jobId: JOB,
    blendFile: blend,
    sourceBlendFile: blend,
    projectRoot: project,
    dependencies: files.slice(1).map((path) => ({ path })),
    strict: false,
    bucket,
  });
  // The job's own objects, as its stages write them.
  await bucket.putJson(`jobs/${JOB}/job.json`, { jobId: JOB });
  await bucket.putJson(`jobs/${JOB}/output/frame_0001.png`, { pretend: 'png'.repeat(500) });

  const template = farmFromTemplate({ bucket: s3.bucket });
  const fake = await startFakeBatch({
    queues: template.queues,
    jobDefinitions: template.jobDefinitions,
    executables: { 'skyfarm-worker': ['sh', '-c', 'sleep 0.3'] },
    tickMs: 20,
  });
  t.teardown(() => fake.close());
  const batch = createBatch({ ...settingsFromEnv(env, 'BATCH'), endpoint: fake.endpoint });
  t.teardown(() => batch.destroy());

  const db = openDatabase(join(dir, 'db.sqlite'));
  t.teardown(() => db.close());
  const repo = new JobRepo(db);
  const store = new AwsJobStore(db);
  const spec: JobSpec = {
    jobId: JOB,
    backend: 'aws',
    blendFile: blend,
    sourceBlendFile: blend,
    projectRoot: project,
    temporaryBlend: false,
    scene: 'Scene',
    frames: [1],
    framesSpec: '1',
    chunkSize: 1,
    outputDir: join(dir, 'out'),
    filePattern: 'frame_####',
    fileExtension: '.png',
    dependencies: [],
  };
  repo.create(spec, 'storage');
  const farm = farmFromNames(s3.bucket, { region: 'us-east-1' });
  store.insert({
    jobId: JOB,
    farm,
    device: 'cpu',
    market: 'spot',
    blenderVersion: '4.2.3',
    notifyEmail: null,
    prepareOnly: false,
  });
  const service = new CostService({
    repo,
    store,
    prices: new PriceBook({ db, pricing: () => pricingClient }),
    clients: () => ({
      batch,
      containerInstances: { describe: async () => [] },
      ec2: { spotPrices: async () => [], spotPricesAt: async () => [], instances: async () => [] },
      region: 'us-east-1',
    }),
    objects: (_farm, jobId) => jobObjects(bucket, jobId),
  });

  const before = await service.storage(JOB);
  t.equal(before.known, false);
  t.match(before.text, /not been uploaded yet/, 'before the upload: unknown, and why');

  // What the backend records once the upload is done.
  store.setPrepared(JOB, farm.queues.cpuSpot, 1);
  store.setUploadStats(JOB, {
    bytesTotal: upload.bytesTotal!,
    bytesUploaded: upload.bytesUploaded,
    objectsStored: upload.objectsStored!,
    files: upload.files,
  });
  pricing.deny(true);
  const denied = await service.storage(JOB);
  t.equal(denied.missingAction, 'pricing:GetProducts');
  t.match(denied.text, /cost unknown: AWS denied pricing:GetProducts \(allow pricing:GetProducts/);
  pricing.deny(false);

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
  });
  const publish = await submit('publish', farm.queues.transfer, farm.jobDefinitions.transfer, {
    dependsOn: [render.jobId],
  });
  store.setBatchId(JOB, 'copy', copy.jobId);
  store.setBatchId(JOB, 'render', render.jobId);
  store.setBatchId(JOB, 'publish', publish.jobId);
  await fake.waitFor(() => fake.jobs.get(publish.jobId)?.status === 'SUCCEEDED', 30_000, 'publish');

  const cost = await service.storage(JOB);
  t.equal(cost.known, true, cost.text);

  // Independently: the project on disk, the bucket's listing, the fake Batch's records, the prices.
  const projectBytes = files.reduce((sum, file) => sum + statSync(file).size, 0);
  const listed = await bucket.list('');
  const jobListed = listed.filter((o) => o.key.startsWith(`jobs/${JOB}/`));
  const stored = listed.filter((o) => !o.key.startsWith('jobs/'));
  const attempts = [copy, render, publish].flatMap(({ jobId }) => fake.jobs.get(jobId)!.attempts);
  const hours =
    (Math.max(...attempts.map((a) => a.stoppedAt!)) - Math.min(...attempts.map((a) => a.startedAt!))) /
    3_600_000;
  t.equal(cost.efsBytes, projectBytes, 'EFS: the whole project, as on disk');
  t.ok(Math.abs(cost.efsHours! - hours) < 1e-9, `EFS for the stages' span: ${cost.efsHours} h`);
  t.equal(cost.putRequests, stored.length + jobListed.length, 'one PUT per object in the bucket');
  t.ok(stored.length >= 2, `the upload stored blobs and packs (${stored.map((o) => o.key).join(', ')})`);
  t.equal(cost.getRequests, files.length, 'the copy stage reads each file once at most');
  t.equal(
    cost.s3Bytes,
    listed.reduce((sum, o) => sum + o.size, 0),
    'S3 bytes: everything the job put in the bucket',
  );
  const usd =
    (projectBytes / GIB) * PRICES.efsStandardGbMonth * (hours / HOURS_PER_MONTH) +
    (stored.length + jobListed.length) * PRICES.s3Tier1PerRequest +
    files.length * PRICES.s3Tier2PerRequest;
  t.ok(Math.abs(cost.usd! - usd) < 1e-12, `storage and requests ${cost.usd} = ${usd}`);
  const perMonth = (listed.reduce((sum, o) => sum + o.size, 0) / GIB) * PRICES.s3StandardGbMonth;
  t.ok(Math.abs(cost.s3UsdPerMonth! - perMonth) < 1e-12, `S3 per month ${cost.s3UsdPerMonth} = ${perMonth}`);
  t.match(
    cost.text,
    /^≈ \$0\.\d+ \(EFS 0\.00 GB for 0\.\d\d h; \d+ PUT, up to 7 GET\) · S3 ≈ \$0\.\d+\/month while kept/,
  );
});
