// The ICloudFormation wrapper over the real SDK client against the fake: pagination of stack events,
// "does not exist" as undefined, error shapes, and the Query/XML wire format itself.
import t from 'tap';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { createCloudFormation } from '../daemon/src/aws/cloudformation.js';
import { resolveAwsConfig } from '../daemon/src/aws/config.js';
import { createStackService } from '../daemon/src/stack/index.js';
import {
  ACCESS_KEY_ID,
  FAST_LIMITS,
  REGION,
  SECRET,
  fakeAwsEnv,
  recorder,
  startFake,
} from './fakes/cloudformation/harness.js';
import { NO_CHANGES_REASON, XMLNS } from './fakes/cloudformation/server.js';

t.test('stack events page through NextToken; stopAtEventId and maxEvents bound the walk', async (t) => {
  const fake = await startFake(t, { eventsPageSize: 7 });
  const env = fakeAwsEnv(t, fake);
  await createStackService({ env, limits: FAST_LIMITS }).deploy({}, recorder().notify);
  const cf = createCloudFormation(await resolveAwsConfig({}, env));
  const stack = fake.stack('skyfarm');
  const total = stack?.events.length ?? 0;
  t.ok(total > 50, `many events (${total})`);

  let before = fake.calls.length;
  const all = await cf.describeStackEvents('skyfarm');
  const pages = fake.calls.slice(before).filter((c) => c.action === 'DescribeStackEvents');
  t.equal(all.length, total, 'every event, across pages');
  t.equal(pages.length, Math.ceil(total / 7));
  t.ok(
    pages.slice(1).every((c) => typeof c.params.NextToken === 'string'),
    'later pages carried NextToken',
  );
  t.same(
    all.map((e) => e.eventId),
    [...(stack?.events ?? [])].reverse().map((e) => e.eventId),
    'newest first',
  );
  t.type(all[0]?.timestamp, Date, 'timestamps parsed as dates');
  t.match(all.at(-1), {
    logicalId: 'skyfarm',
    status: 'CREATE_IN_PROGRESS',
    reason: 'User Initiated',
    resourceType: 'AWS::CloudFormation::Stack',
  });

  const marker = all[10]?.eventId;
  before = fake.calls.length;
  const newer = await cf.describeStackEvents(stack?.stackId ?? '', { stopAtEventId: marker });
  t.same(
    newer.map((e) => e.eventId),
    all.slice(0, 10).map((e) => e.eventId),
    'only events newer than the marker',
  );
  t.equal(fake.calls.length - before, 2, 'stopped paging at the marker');

  before = fake.calls.length;
  t.equal((await cf.describeStackEvents('skyfarm', { maxEvents: 1 })).length, 1);
  t.equal(fake.calls.length - before, 1);
});

t.test('describeStack: missing is undefined; fields and outputs come through', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const cf = createCloudFormation(await resolveAwsConfig({}, env));
  t.equal(await cf.describeStack('nothing'), undefined);
  fake.seedStack({
    name: 'seeded',
    status: 'UPDATE_ROLLBACK_COMPLETE',
    statusReason: 'reason with <xml> & "quotes"',
    tags: { 'skyfarm:stack': 'true', other: 'ü' },
    outputs: { BucketName: 'b-1', Weird: 'a&b<c>' },
  });
  const d = await cf.describeStack('seeded');
  t.match(d, {
    stackName: 'seeded',
    status: 'UPDATE_ROLLBACK_COMPLETE',
    statusReason: 'reason with <xml> & "quotes"',
    tags: { 'skyfarm:stack': 'true', other: 'ü' },
    outputs: { BucketName: 'b-1', Weird: 'a&b<c>' },
  });
  t.match(d?.stackId, /^arn:aws:cloudformation:eu-west-1:123456789012:stack\/seeded\/[0-9a-f-]{36}$/);
  t.type(d?.creationTime, Date);
});

t.test('errors parse with the real SDK: ValidationError, AccessDenied, ChangeSetNotFound', async (t) => {
  const fake = await startFake(t);
  fakeAwsEnv(t, fake);
  const client = new CloudFormationClient({
    region: REGION,
    endpoint: fake.url,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
  });
  t.teardown(() => client.destroy());
  const missing = (await client
    .send(new DescribeStacksCommand({ StackName: 'ghost' }))
    .catch((e: unknown) => e)) as {
    name: string;
    message: string;
    $fault: string;
    $metadata: { httpStatusCode: number; requestId?: string };
  };
  t.equal(missing.name, 'ValidationError');
  t.equal(missing.message, 'Stack with id ghost does not exist');
  t.equal(missing.$fault, 'client');
  t.equal(missing.$metadata.httpStatusCode, 400);
  t.match(missing.$metadata.requestId, /^[0-9a-f-]{36}$/, 'request id from the response');

  fake.deny('DescribeStacks');
  const denied = (await client
    .send(new DescribeStacksCommand({ StackName: 'x' }))
    .catch((e: unknown) => e)) as {
    name: string;
    $metadata: { httpStatusCode: number };
  };
  t.equal(denied.name, 'AccessDenied');
  t.equal(denied.$metadata.httpStatusCode, 403);
  fake.clearFaults();

  const cf = createCloudFormation(await resolveAwsConfig({}, process.env));
  await t.rejects(cf.describeChangeSet('skyfarm', 'nope'), {
    code: 'AWS_ERROR',
    message: /cloudformation:DescribeChangeSet \(nope\) failed: ChangeSetNotFound/,
  });
  await t.rejects(cf.executeChangeSet('skyfarm', 'nope'), { code: 'AWS_ERROR' });
});

t.test('the wire format: form-encoded Query requests, namespaced XML responses', async (t) => {
  const fake = await startFake(t);
  fakeAwsEnv(t, fake);
  const auth =
    'AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0';
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(fake.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        authorization: auth,
        ...headers,
      },
      body,
    });

  const ok = await post('Action=DescribeStacks&Version=2010-05-15');
  t.equal(ok.status, 200);
  t.match(ok.headers.get('content-type'), /text\/xml/);
  const okText = await ok.text();
  t.match(
    okText,
    new RegExp(
      `^<DescribeStacksResponse xmlns="${XMLNS}"><DescribeStacksResult><Stacks></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>[0-9a-f-]{36}</RequestId></ResponseMetadata></DescribeStacksResponse>$`,
    ),
  );

  const err = await post('Action=DescribeStacks&Version=2010-05-15&StackName=ghost');
  t.equal(err.status, 400);
  t.match(
    await err.text(),
    new RegExp(
      `^<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id ghost does not exist</Message></Error><RequestId>[0-9a-f-]{36}</RequestId></ErrorResponse>$`,
    ),
  );
  t.equal((await post('Action=DescribeStacks&Version=2011-01-01')).status, 400, 'wrong API version');
  t.equal((await post('Action=Nope&Version=2010-05-15')).status, 400, 'unknown action');
  t.equal(
    (await post('Action=DescribeStacks&Version=2010-05-15', { authorization: '' })).status,
    403,
    'unsigned',
  );

  // A template without IAM capability acknowledgement is refused as CloudFormation does.
  const create = await post(
    new URLSearchParams({
      Action: 'CreateStack',
      Version: '2010-05-15',
      StackName: 'caps',
      TemplateBody: 'Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties: {}\n',
    }).toString(),
  );
  t.equal(create.status, 400);
  t.match(
    await create.text(),
    '<Code>InsufficientCapabilitiesException</Code><Message>Requires capabilities : [CAPABILITY_IAM]</Message>',
  );
  t.equal(
    NO_CHANGES_REASON,
    "The submitted information didn't contain changes. Submit different information to create a change set.",
  );
});
