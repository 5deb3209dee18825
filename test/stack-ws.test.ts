// The stack methods through the daemon's real WebSocket layer (buildApp + RpcRegistry + ClientHub):
// one client deploys, every connected client (say, the Blender panel) sees the stack events live, the
// outputs are remembered in SQLite, and errors arrive as protocol error codes.
import t from 'tap';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { StackEvent } from '../protocol/generated/protocol.js';
import { buildApp } from '../daemon/src/app.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import { openDatabase } from '../daemon/src/db/database.js';
import { RpcRegistry } from '../daemon/src/rpc/registry.js';
import { ClientHub } from '../daemon/src/ws/hub.js';
import { RememberedStacks } from '../daemon/src/stack/remembered.js';
import { setupStack } from '../daemon/src/stack/setup.js';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { FAST_LIMITS, fakeAwsEnv, startFake, startS3rver } from './fakes/cloudformation/harness.js';

t.test('deploy, status and destroy over the WebSocket, events to every client', async (t) => {
  const fake = await startFake(t);
  const s3rver = await startS3rver(t);
  const env = fakeAwsEnv(t, fake, {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_ENDPOINT_URL_S3: s3rver.url,
  });
  const dir = t.testdir({});
  const db = openDatabase(join(dir, 'skyfarm.sqlite'));
  t.teardown(() => db.close());
  const stack = setupStack({ db, env, limits: FAST_LIMITS });
  const registry = new RpcRegistry();
  stack.register(registry);
  const hub = new ClientHub();
  const token = randomBytes(16).toString('hex');
  const app = await buildApp({ token, version: 'test', registry, hub, logger: false });
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const connect = async (name: string) => {
    const client = await DaemonClient.connect({
      stateDir: dir,
      port,
      token,
      clientName: name,
      clientVersion: '1',
    });
    t.teardown(() => client.close());
    const events: StackEvent[] = [];
    client.onEvent((event, data) => {
      if (event === 'stack.event') events.push(data as StackEvent);
    });
    return { client, events };
  };
  const cli = await connect('cli');
  const panel = await connect('blender');

  t.same(stack.backendInfo(), { available: false, reason: 'no AWS stack deployed (skyfarm deploy)' });
  const deployed = await cli.client.request('stack.deploy', { stackName: 'skyfarm', maxVcpus: 16 });
  t.equal(deployed.stack.status, 'CREATE_COMPLETE');
  t.equal(deployed.changed, true);
  await new Promise((ok) => setTimeout(ok, 50));
  t.ok(cli.events.length > 50, `the deploying client saw the events (${cli.events.length})`);
  t.same(panel.events, cli.events, 'so did every other client');
  t.match(panel.events.at(-1), { resource: 'skyfarm', status: 'CREATE_COMPLETE' });

  // Remembered for the AWS backend, in the daemon's database.
  const remembered = new RememberedStacks(db).get();
  t.match(remembered, {
    stackName: 'skyfarm',
    status: 'CREATE_COMPLETE',
    region: 'eu-west-1',
    outputs: deployed.stack.outputs,
  });
  t.type(remembered?.seenAt, 'string');
  t.equal(await stack.resolveBucket('skyfarm'), deployed.stack.outputs.BucketName);
  const calls = fake.calls.length;
  t.same(await stack.resolveStack('skyfarm'), deployed.stack, 'the AWS backend gets region and outputs');
  t.equal(fake.calls.length, calls, 'from the database, without asking CloudFormation');
  t.same(stack.backendInfo(), { available: true });

  const bucket = deployed.stack.outputs.BucketName as string;
  const s3 = new S3Client({
    region: 'eu-west-1',
    endpoint: s3rver.url,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  t.teardown(() => s3.destroy());
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'jobs/a/job.json', Body: '{}' }));

  const status = await panel.client.request('stack.status', {});
  t.same(status.stack, deployed.stack);

  const destroyed = await cli.client.request('stack.destroy', {});
  t.same(destroyed, { stackName: 'skyfarm', deleted: true });
  t.match(
    panel.events.find((e) => e.status === 'EMPTY_COMPLETE'),
    { reason: `skyfarm: deleted 1 object(s) from s3://${bucket}` },
  );
  t.equal(new RememberedStacks(db).get(), undefined, 'forgotten after destroy');
  t.same(stack.backendInfo(), { available: false, reason: 'no AWS stack deployed (skyfarm deploy)' });

  await t.rejects(cli.client.request('stack.status', {}), { code: 'STACK_NOT_FOUND' });
  await t.rejects(
    cli.client.request('stack.deploy', { maxVcpus: 0 }),
    { code: 'INVALID_MESSAGE' },
    'schema first',
  );
  await t.rejects(cli.client.request('stack.deploy', { stackName: 'bad_name' }), { code: 'BAD_ARGUMENT' });
  await t.rejects(stack.resolveBucket('skyfarm'), { code: 'STACK_NOT_FOUND' });
});
