// A create that fails rolls back to ROLLBACK_COMPLETE and is reported with the failing resource's
// reason; the next deploy says it deletes that stack, deletes it, and creates it again.
import t from 'tap';
import { createStackService } from '../daemon/src/stack/index.js';
import { FAST_LIMITS, fakeAwsEnv, lines, recorder, startFake } from './fakes/cloudformation/harness.js';

const REASON =
  'Resource handler returned message: "You have reached the maximum number of file systems (Service: Efs, Status Code: 403)"';

t.test('failed create, then redeploy deletes and recreates after saying so', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const remembered: string[] = [];
  const service = createStackService({
    env,
    limits: FAST_LIMITS,
    remember: (s) => void remembered.push(s.status),
  });
  fake.failOnCreate('FileSystem', REASON);

  const first = recorder();
  const error = await service.deploy({ stackName: 'skyfarm' }, first.notify).then(
    () => undefined,
    (e: unknown) => e as { code: string; message: string },
  );
  t.equal(error?.code, 'STACK_FAILED');
  t.match(error?.message, 'Creating stack skyfarm failed: FileSystem (AWS::EFS::FileSystem): ' + REASON);
  t.match(error?.message, /now ROLLBACK_COMPLETE; the next `skyfarm deploy` deletes it and creates it again/);
  const failed = fake.stack('skyfarm');
  t.equal(failed?.status, 'ROLLBACK_COMPLETE');
  t.match(
    first.events.find((e) => e.status === 'CREATE_FAILED'),
    { resource: 'FileSystem', reason: REASON },
    'the failure was streamed',
  );
  t.match(
    first.events.find((e) => e.status === 'ROLLBACK_IN_PROGRESS'),
    {
      resource: 'skyfarm',
      reason: /failed to create: \[FileSystem\]/,
    },
  );
  t.match(first.events.at(-1), { resource: 'skyfarm', status: 'ROLLBACK_COMPLETE' });
  t.ok(
    first.events.some((e) => e.status === 'DELETE_COMPLETE' && e.resource === 'Vpc'),
    'created resources were rolled back',
  );
  t.same(remembered, [], 'a failed stack is not remembered');

  // status shows the failed stack with its reason.
  const status = await service.status({});
  t.equal(status.status, 'ROLLBACK_COMPLETE');
  t.match(status.reason, /FileSystem/);
  t.same(remembered, [], 'nor by status');

  fake.clearFaults();
  const second = recorder();
  const before = fake.calls.length;
  const result = await service.deploy({ stackName: 'skyfarm' }, second.notify);
  t.equal(result.stack.status, 'CREATE_COMPLETE');
  t.equal(result.changed, true);

  // It said so first, then the old stack's deletion streamed, then the new create.
  t.match(second.events[0], {
    resource: 'skyfarm',
    resourceType: 'AWS::CloudFormation::Stack',
    status: 'ROLLBACK_COMPLETE',
    reason: /never finished creating .*deleting it before creating it again/,
  });
  const order = lines(second.events);
  const deleting = order.indexOf('skyfarm DELETE_IN_PROGRESS');
  const deleted = order.indexOf('skyfarm DELETE_COMPLETE');
  const creating = order.indexOf('skyfarm CREATE_IN_PROGRESS');
  t.ok(
    deleting > 0 && deleted > deleting && creating > deleted,
    `delete then create (${deleting}, ${deleted}, ${creating})`,
  );
  t.notOk(
    second.events.slice(1).some((e) => e.status === 'CREATE_FAILED'),
    'old events are not replayed',
  );

  const actions = fake.calls
    .slice(before)
    .map((c) => c.action)
    .filter((a) => !a.startsWith('Describe'));
  t.same(actions, ['DeleteStack', 'CreateStack']);
  const deleteCall = fake.calls.slice(before).find((c) => c.action === 'DeleteStack');
  t.equal(deleteCall?.params.StackName, failed?.stackId, 'the failed stack was deleted by its id');
  t.equal(failed?.status, 'DELETE_COMPLETE');
  t.not(fake.stack('skyfarm')?.stackId, failed?.stackId, 'a new stack was created');
  t.same(remembered, ['CREATE_COMPLETE']);
});

t.test('a stack whose create cannot be cleaned up is reported, not recreated blindly', async (t) => {
  const fake = await startFake(t, {
    onDeleteResource: (r) => {
      if (r.logicalId === 'Vpc') throw new Error('The vpc has dependencies and cannot be deleted.');
    },
  });
  const env = fakeAwsEnv(t, fake);
  fake.seedStack({
    name: 'skyfarm',
    status: 'ROLLBACK_COMPLETE',
    statusReason: 'The following resource(s) failed to create: [Bucket]. Rollback requested by user.',
    tags: { 'skyfarm:stack': 'true' },
    templateBody: 'Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/16 }\n',
  });
  const service = createStackService({ env, limits: FAST_LIMITS });
  const rec = recorder();
  await t.rejects(service.deploy({}, rec.notify), {
    code: 'STACK_FAILED',
    message:
      /Deleting stack skyfarm failed \(DELETE_FAILED\): Vpc \(AWS::EC2::VPC\): The vpc has dependencies/,
  });
  t.notOk(
    fake.calls.some((c) => c.action === 'CreateStack'),
    'no create over a stack that still exists',
  );
  t.match(rec.events[0], { status: 'ROLLBACK_COMPLETE', reason: /deleting it before creating it again/ });
});
