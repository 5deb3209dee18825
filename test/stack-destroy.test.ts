// `stack.destroy` empties the farm's bucket (s3rver, real S3 client) and then deletes the stack. The
// fake deletes the bucket in s3rver when the stack deletes its Bucket resource, which S3 refuses for a
// non-empty bucket, just as CloudFormation's delete would fail.
import t, { type Test } from 'tap';
import {
  CreateBucketCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { CloudFormationClient, DeleteStackCommand } from '@aws-sdk/client-cloudformation';
import { createS3 } from '../daemon/src/aws/s3.js';
import { createStackService } from '../daemon/src/stack/index.js';
import {
  FAST_LIMITS,
  REGION,
  awsEnv,
  lines,
  recorder,
  startFakeWithS3,
} from './fakes/cloudformation/harness.js';

async function setup(t: Test) {
  const { s3rver, s3, fake } = await startFakeWithS3(t);
  const env = awsEnv(t, {
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url,
    AWS_ENDPOINT_URL_S3: s3rver.url,
  });
  const forgotten: string[] = [];
  const service = createStackService({
    env,
    limits: FAST_LIMITS,
    // Small pages so that emptying pages through the listing.
    s3: (cfg) => createS3(cfg, { pageSize: 10 }),
    forget: (name, region) => void forgotten.push(`${name}@${region}`),
  });
  const deployed = await service.deploy({}, recorder().notify);
  const bucket = deployed.stack.outputs.BucketName as string;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const keys = [
    ...Array.from({ length: 17 }, (_, i) => `cas/${String(i).padStart(64, 'a')}`),
    ...Array.from({ length: 8 }, (_, i) => `jobs/job-${i}/output/frame ${i} ü.png`),
  ];
  for (const key of keys)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `data ${key}` }));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  t.equal(listed.KeyCount, keys.length, 'the bucket holds objects before destroy');
  return { s3, fake, service, bucket, keys, forgotten };
}

t.test('destroy empties the bucket, deletes the stack and waits for it', async (t) => {
  const { s3, fake, service, bucket, keys, forgotten } = await setup(t);
  const stackId = fake.stack('skyfarm')?.stackId;
  const rec = recorder();
  const result = await service.destroy({}, rec.notify);
  t.same(result, { stackName: 'skyfarm', deleted: true });

  const buckets = await s3.send(new ListBucketsCommand({}));
  t.notOk(
    buckets.Buckets?.some((b) => b.Name === bucket),
    'the (emptied) bucket was deleted with the stack',
  );
  t.equal(fake.stacks.get(stackId as string)?.status, 'DELETE_COMPLETE');
  t.equal(fake.stack('skyfarm'), undefined, 'no live stack of that name');

  const order = lines(rec.events);
  t.same(order.slice(0, 2), ['Bucket EMPTY_IN_PROGRESS', 'Bucket EMPTY_COMPLETE'], 'emptying comes first');
  t.match(rec.events[1]?.reason, `deleted ${keys.length} object(s) from s3://${bucket}`);
  t.equal(order[2], 'skyfarm DELETE_IN_PROGRESS');
  t.equal(order.at(-1), 'skyfarm DELETE_COMPLETE');
  t.ok(order.includes('Bucket DELETE_COMPLETE'));
  t.ok(order.includes('Vpc DELETE_COMPLETE'));
  t.notOk(
    rec.events.some((e) => e.status.startsWith('CREATE_')),
    'the create events are not replayed',
  );

  const actions = fake.calls.map((c) => c.action);
  t.equal(actions.filter((a) => a === 'DeleteStack').length, 1);
  t.equal(
    fake.calls.find((c) => c.action === 'DeleteStack')?.params.StackName,
    stackId,
    'deleted by stack id',
  );
  t.same(forgotten, ['skyfarm@eu-west-1'], 'the daemon forgets the outputs');

  await t.rejects(service.status({}), { code: 'STACK_NOT_FOUND' });
  t.same(
    await service.destroy({}, rec.notify),
    { stackName: 'skyfarm', deleted: false },
    'destroying again is a no-op',
  );
});

t.test('without emptying, the stack delete fails (the fake is honest), and destroy recovers', async (t) => {
  const { s3, fake, service, bucket } = await setup(t);
  const cf = new CloudFormationClient({
    region: REGION,
    endpoint: fake.url,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  t.teardown(() => cf.destroy());
  await cf.send(new DeleteStackCommand({ StackName: 'skyfarm' }));
  for (let i = 0; i < 500 && fake.stack('skyfarm')?.status === 'DELETE_IN_PROGRESS'; i++)
    await new Promise((ok) => setTimeout(ok, 10));
  const stack = fake.stack('skyfarm');
  t.equal(stack?.status, 'DELETE_FAILED');
  t.match(
    stack?.events.find((e) => e.status === 'DELETE_FAILED' && e.logicalId === 'Bucket')?.reason,
    /not empty/i,
  );

  const rec = recorder();
  const result = await service.destroy({}, rec.notify);
  t.same(result, { stackName: 'skyfarm', deleted: true });
  t.notOk((await s3.send(new ListBucketsCommand({}))).Buckets?.some((b) => b.Name === bucket));
  t.equal(lines(rec.events).at(-1), 'skyfarm DELETE_COMPLETE');
});
