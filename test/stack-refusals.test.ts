// Refusals: access denied (naming action and resource), a stack that is not skyfarm's, and a stack
// another operation is changing (wait with a limit, or refuse).
import t from 'tap';
import { createStackService } from '../daemon/src/stack/index.js';
import { mapAwsError, parseAccessDenied } from '../daemon/src/aws/errors.js';
import { FAST_LIMITS, fakeAwsEnv, lines, recorder, startFake } from './fakes/cloudformation/harness.js';

const SKYFARM = { 'skyfarm:stack': 'true' };
const TEMPLATE = 'Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/16 }\n';
const mutating = (calls: Array<{ action: string }>) =>
  calls.map((c) => c.action).filter((a) => !a.startsWith('Describe'));

t.test('access denied names the action and the resource', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  fake.deny('CreateStack');
  const error = (await service
    .deploy({ stackName: 'skyfarm' }, recorder().notify)
    .catch((e: unknown) => e)) as {
    code: string;
    message: string;
  };
  t.equal(error.code, 'AWS_ACCESS_DENIED');
  t.match(
    error.message,
    /^AWS denied cloudformation:CreateStack on arn:aws:cloudformation:eu-west-1:123456789012:stack\/skyfarm\/\* for arn:aws:iam::123456789012:user\/skyfarm-test\./,
  );

  fake.clearFaults();
  fake.deny('DescribeStacks');
  await t.rejects(service.status({ stackName: 'skyfarm' }), {
    code: 'AWS_ACCESS_DENIED',
    message:
      /cloudformation:DescribeStacks on arn:aws:cloudformation:eu-west-1:123456789012:stack\/skyfarm\/\*/,
  });
});

t.test('access denial messages without details fall back to the call', async (t) => {
  const s3Denied = Object.assign(new Error('Access Denied'), {
    name: 'AccessDenied',
    $metadata: { httpStatusCode: 403 },
  });
  const mapped = mapAwsError(s3Denied, { action: 's3:DeleteObject', resource: 'arn:aws:s3:::farm-bucket' });
  t.equal(mapped.code, 'AWS_ACCESS_DENIED');
  t.match(mapped.message, /^AWS denied s3:DeleteObject on arn:aws:s3:::farm-bucket\./);
  t.same(
    parseAccessDenied(
      'User: arn:aws:sts::1:assumed-role/r/x is not authorized to perform: s3:ListBucket on resource: arn:aws:s3:::b',
    ),
    {
      principal: 'arn:aws:sts::1:assumed-role/r/x',
      action: 's3:ListBucket',
      resource: 'arn:aws:s3:::b',
    },
  );
  const expired = mapAwsError(
    Object.assign(new Error('The security token included in the request is expired'), {
      name: 'ExpiredToken',
      $metadata: { httpStatusCode: 403 },
    }),
    {
      action: 'cloudformation:DescribeStacks',
    },
  );
  t.equal(
    expired.code,
    'AWS_NO_CREDENTIALS',
    'expired credentials are a credentials problem, not a permission',
  );
  const refused = mapAwsError(
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
    {
      action: 'cloudformation:DescribeStacks',
      endpoint: 'http://127.0.0.1:9',
    },
  );
  t.match(refused, {
    code: 'AWS_ERROR',
    message: 'Cannot reach AWS for cloudformation:DescribeStacks at http://127.0.0.1:9: ECONNREFUSED',
  });
});

t.test('a stack of that name that is not skyfarm is never touched', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  fake.seedStack({
    name: 'skyfarm',
    status: 'CREATE_COMPLETE',
    tags: { team: 'web' },
    outputs: { BucketName: 'their-bucket' },
  });
  const expected = {
    code: 'STACK_NOT_SKYFARM',
    message: /A stack named skyfarm already exists in eu-west-1 but was not created by skyfarm.*--stack-name/,
  };
  await t.rejects(service.deploy({}, recorder().notify), expected);
  await t.rejects(service.destroy({}, recorder().notify), expected);
  await t.rejects(service.status({}), expected);
  t.same(mutating(fake.calls), [], 'no create, change set or delete was attempted');

  // Even while someone else's stack is busy, it is refused at once rather than waited for.
  fake.seedStack({ name: 'theirs', status: 'UPDATE_IN_PROGRESS', tags: {} });
  const started = Date.now();
  await t.rejects(service.deploy({ stackName: 'theirs' }, recorder().notify), { code: 'STACK_NOT_SKYFARM' });
  t.ok(Date.now() - started < FAST_LIMITS.busyWaitMs, 'not waited for');
});

t.test('a busy stack: refuse at once when waiting is off', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  fake.seedStack({ name: 'skyfarm', status: 'UPDATE_IN_PROGRESS', tags: SKYFARM, templateBody: TEMPLATE });
  const service = createStackService({ env, limits: { ...FAST_LIMITS, busyWaitMs: 0 } });
  await t.rejects(service.deploy({}, recorder().notify), {
    code: 'STACK_BUSY',
    message:
      /^Stack skyfarm is UPDATE_IN_PROGRESS: another deploy or destroy is running\. Try again when it has finished/,
  });
  await t.rejects(service.destroy({}, recorder().notify), { code: 'STACK_BUSY' });
  t.same(mutating(fake.calls), []);
});

t.test('a busy stack: wait up to the limit, then refuse', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  fake.seedStack({ name: 'skyfarm', status: 'UPDATE_IN_PROGRESS', tags: SKYFARM, templateBody: TEMPLATE });
  const service = createStackService({ env, limits: { ...FAST_LIMITS, busyWaitMs: 300 } });
  const started = Date.now();
  await t.rejects(service.deploy({}, recorder().notify), {
    code: 'STACK_BUSY',
    message: /is UPDATE_IN_PROGRESS: another deploy or destroy is running and did not finish within 300 ms/,
  });
  const waited = Date.now() - started;
  t.ok(waited >= 300, `waited for the limit (${waited} ms)`);
  t.ok(fake.calls.filter((c) => c.action === 'DescribeStacks').length > 3, 'polled meanwhile');
  t.same(mutating(fake.calls), []);
});

t.test('a busy stack: wait for it, stream its events, then update', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  await service.deploy({}, recorder().notify);
  const stack = fake.stack('skyfarm');
  if (!stack) throw new Error('no stack');
  // Someone else's update is running and finishes after 250 ms.
  stack.status = 'UPDATE_IN_PROGRESS';
  const settle = setTimeout(() => {
    stack.status = 'UPDATE_COMPLETE';
    stack.events.push({
      ...stack.events.at(-1)!,
      eventId: 'other-update-done',
      status: 'UPDATE_COMPLETE',
      timestamp: new Date(),
    });
  }, 250);
  t.teardown(() => clearTimeout(settle));
  const rec = recorder();
  const result = await service.deploy({ maxVcpus: 32 }, rec.notify);
  t.equal(result.changed, true);
  t.equal(lines(rec.events)[0], 'skyfarm UPDATE_COMPLETE', 'the other operation’s end was streamed first');
  t.equal(lines(rec.events)[1], 'skyfarm UPDATE_IN_PROGRESS', 'then our update');
  t.equal(fake.stack('skyfarm')?.rawParams.MaxVcpus, '32');
});

t.test('two operations on one stack in one daemon: the second is refused', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  const first = service.deploy({}, recorder().notify);
  await t.rejects(service.deploy({}, recorder().notify), {
    code: 'STACK_BUSY',
    message: /already deploying or destroying stack skyfarm/,
  });
  await t.rejects(service.destroy({}, recorder().notify), { code: 'STACK_BUSY' });
  t.equal((await first).stack.status, 'CREATE_COMPLETE');
  t.equal(fake.calls.filter((c) => c.action === 'CreateStack').length, 1);
  t.equal((await service.deploy({}, recorder().notify)).changed, false, 'free again afterwards');
});

t.test('cancel stops following; the operation continues in AWS', async (t) => {
  const fake = await startFake(t, { stepMs: 20 });
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  const controller = new AbortController();
  const rec = recorder();
  const deploying = service.deploy({}, rec.notify, controller.signal);
  while (rec.events.length < 3) await new Promise((ok) => setTimeout(ok, 5));
  controller.abort();
  await t.rejects(deploying, { code: 'CANCELED', message: /continues in AWS/ });
  t.equal(fake.stack('skyfarm')?.status, 'CREATE_IN_PROGRESS', 'the stack is still being created');
});
