// `stack.deploy` creates the stack through the fake CloudFormation endpoint with the real SDK client,
// streams every stack event to a WebSocket client while it happens, and remembers the outputs.
import t from 'tap';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import type { StackEvent, StackInfo } from '../protocol/generated/protocol.js';
import { decodeServerMessage } from '../daemon/src/protocol/codec.js';
import type { Notify } from '../daemon/src/notify.js';
import { createStackService } from '../daemon/src/stack/index.js';
import { loadTemplate } from '../daemon/src/stack/template.js';
import {
  ACCESS_KEY_ID,
  FAST_LIMITS,
  REGION,
  SECRET,
  fakeAwsEnv,
  lines,
  recorder,
  startFake,
} from './fakes/cloudformation/harness.js';

t.test('creates the stack and streams its events to a WebSocket client as they happen', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const remembered: StackInfo[] = [];
  const service = createStackService({ env, limits: FAST_LIMITS, remember: (s) => void remembered.push(s) });

  // A broadcaster like the daemon's: every notify goes to every connected client as an event message.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.teardown(() => new Promise<void>((ok) => wss.close(() => ok())));
  await once(wss, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`);
  t.teardown(() => client.close());
  const received: StackEvent[] = [];
  const invalid: string[] = [];
  client.on('message', (raw: Buffer) => {
    const decoded = decodeServerMessage(raw);
    if (!decoded.ok) return void invalid.push(decoded.message);
    if (decoded.message.type === 'event' && decoded.message.event === 'stack.event')
      received.push(decoded.message.data as StackEvent);
  });
  await once(client, 'open');
  await new Promise((ok) => setTimeout(ok, 20));

  const statusWhenNotified: string[] = [];
  let sent = 0;
  const notify: Notify = (event, data) => {
    statusWhenNotified.push(fake.stack('skyfarm')?.status ?? 'none');
    sent++;
    const message = JSON.stringify({ type: 'event', event, data });
    for (const c of wss.clients) c.send(message);
  };

  const result = await service.deploy({ stackName: 'skyfarm', maxVcpus: 64 }, notify);

  t.equal(result.changed, true);
  t.equal(result.stack.status, 'CREATE_COMPLETE');
  t.equal(result.stack.region, REGION);
  t.equal(result.stack.stackName, 'skyfarm');
  for (const key of [
    'BucketName',
    'CpuSpotQueueArn',
    'TransferQueueArn',
    'RenderJobDefinitionArn',
    'RepositoryUri',
    'FileSystemId',
  ]) {
    t.type(result.stack.outputs[key], 'string', `output ${key}`);
  }
  t.notOk('GpuSpotQueueArn' in result.stack.outputs, 'GPU is off by default');
  t.same(result.stack.outputs, fake.stack('skyfarm')?.outputs, 'outputs are the stack outputs');
  t.same(remembered, [result.stack], 'the outputs were handed to the daemon for the AWS backend');

  // What went over the wire to CloudFormation.
  const create = fake.calls.find((c) => c.action === 'CreateStack');
  t.ok(create, 'CreateStack was called');
  t.equal(create?.region, REGION, 'signed for the configured region');
  t.equal(create?.accessKeyId, ACCESS_KEY_ID, 'signed with the configured credentials');
  t.equal(create?.params['Capabilities.member.1'], 'CAPABILITY_IAM');
  t.equal(create?.params.OnFailure, 'ROLLBACK');
  const tags = Object.fromEntries(
    Object.entries(create?.params ?? {})
      .filter(([k]) => /^Tags\.member\.\d+\.Key$/.test(k))
      .map(([k, v]) => [v, create?.params[k.replace(/Key$/, 'Value')]]),
  );
  t.equal(tags['skyfarm:stack'], 'true', 'the stack is tagged as skyfarm');
  const given = Object.fromEntries(
    Object.entries(create?.params ?? {})
      .filter(([k]) => /^Parameters\.member\.\d+\.ParameterKey$/.test(k))
      .map(([k, v]) => [v, create?.params[k.replace(/Key$/, 'Value')]]),
  );
  t.same(given, { NamePrefix: 'skyfarm', MaxVcpus: '64' });
  t.match(create?.params.TemplateBody, /^AWSTemplateFormatVersion/, 'the template text is sent as is');

  // Streaming: the client got every event, schema-valid, in order, and the first ones before the end.
  const deadline = Date.now() + 5_000;
  while (received.length < sent && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 10));
  t.same(invalid, [], 'every message is valid per protocol/schema.json');
  t.equal(received.length, sent);
  const stack = fake.stack('skyfarm');
  t.equal(received.length, stack?.events.length, 'each stack event exactly once');
  t.same(
    lines(received),
    stack?.events.map((e) => `${e.logicalId} ${e.status}`),
    'oldest first, as they happened',
  );
  t.match(received[0], {
    stackName: 'skyfarm',
    resource: 'skyfarm',
    resourceType: 'AWS::CloudFormation::Stack',
    status: 'CREATE_IN_PROGRESS',
    reason: 'User Initiated',
  });
  t.match(received.at(-1), { resource: 'skyfarm', status: 'CREATE_COMPLETE' });
  t.equal(
    statusWhenNotified[0],
    'CREATE_IN_PROGRESS',
    'events were streamed while the stack was being created',
  );
  t.ok(
    statusWhenNotified.filter((s) => s === 'CREATE_IN_PROGRESS').length > 10,
    'most events arrived before the end',
  );
  for (const [logicalId, res] of stack?.resources ?? []) {
    const mine = received.filter((e) => e.resource === logicalId);
    t.same(
      mine.map((e) => e.status),
      ['CREATE_IN_PROGRESS', 'CREATE_IN_PROGRESS', 'CREATE_COMPLETE'],
      `${logicalId} progressed`,
    );
    t.equal(mine[0]?.resourceType, res.type);
    t.ok(!Number.isNaN(Date.parse(mine[0]?.timestamp ?? '')), 'timestamps are ISO dates');
  }
  const { template } = loadTemplate();
  const expected = Object.entries(template.Resources)
    .filter(([, r]) => r.Condition !== 'GpuEnabled')
    .map(([id]) => id)
    .sort();
  t.ok(expected.length > 30);
  t.same(
    [...(stack?.resources.keys() ?? [])].sort(),
    expected,
    'every resource of the template was created, GPU ones not',
  );
  t.ok(
    fake.calls.filter((c) => c.action === 'DescribeStackEvents').length > 2,
    'events were polled repeatedly',
  );

  // status() reports the same stack.
  const status = await service.status({ stackName: 'skyfarm' });
  t.same(status, result.stack);
  t.notMatch(
    JSON.stringify({ received, result, calls: fake.calls.map((c) => c.params) }),
    SECRET,
    'no secret anywhere',
  );
});

t.test('--gpu creates the GPU environments and queues', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  const rec = recorder();
  const result = await service.deploy(
    { stackName: 'farm-gpu', gpu: true, notifyEmail: 'render@example.com' },
    rec.notify,
  );
  t.equal(result.stack.status, 'CREATE_COMPLETE');
  t.match(result.stack.outputs.GpuSpotQueueArn, /job-queue\/farm-gpu-gpu-spot$/);
  t.match(result.stack.outputs.GpuOnDemandQueueArn, /job-queue\/farm-gpu-gpu-on-demand$/);
  t.equal(result.stack.outputs.NotifyEmail, 'render@example.com');
  t.ok(rec.events.some((e) => e.resource === 'GpuSpotEnvironment' && e.status === 'CREATE_COMPLETE'));
  t.equal(fake.stack('farm-gpu')?.rawParams.EnableGpu, 'true');
  t.equal(fake.stack('farm-gpu')?.rawParams.NamePrefix, 'farm-gpu');
});

t.test('a status request for a stack that does not exist says so', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  await t.rejects(service.status({ stackName: 'nothing-here' }), {
    code: 'STACK_NOT_FOUND',
    message: /No stack named nothing-here in eu-west-1.*skyfarm deploy/,
  });
});
