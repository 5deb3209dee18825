// Deploying over an existing stack updates it through a change set: only the new events stream,
// unchanged settings are kept, "no changes" is success, and a failed update reports the resource.
import t from 'tap';
import { createStackService } from '../daemon/src/stack/index.js';
import { FAST_LIMITS, fakeAwsEnv, lines, recorder, startFake } from './fakes/cloudformation/harness.js';
import type { FakeCall } from './fakes/cloudformation/server.js';

function parameters(call: FakeCall | undefined) {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(call?.params ?? {})) {
    const m = /^Parameters\.member\.(\d+)\.ParameterKey$/.exec(k);
    if (!m) continue;
    const prefix = `Parameters.member.${m[1]}`;
    out[v] =
      call?.params[`${prefix}.UsePreviousValue`] === 'true'
        ? '(previous)'
        : (call?.params[`${prefix}.ParameterValue`] ?? '');
  }
  return out;
}

t.test('update, no-change update, GPU on, settings kept', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const remembered: string[] = [];
  const service = createStackService({
    env,
    limits: FAST_LIMITS,
    remember: (s) => void remembered.push(s.status),
  });
  await service.deploy({ maxVcpus: 64 }, recorder().notify);
  const stackId = fake.stack('skyfarm')?.stackId;

  // 1. A changed setting: one change set, executed; only this update's events stream.
  const rec = recorder();
  const calls = fake.calls.length;
  const updated = await service.deploy({ maxVcpus: 128 }, rec.notify);
  t.equal(updated.changed, true);
  t.equal(updated.stack.status, 'UPDATE_COMPLETE');
  t.equal(fake.stack('skyfarm')?.stackId, stackId, 'same stack, updated in place');
  const mine = fake.calls.slice(calls);
  t.same(
    mine.map((c) => c.action).filter((a) => !a.startsWith('Describe')),
    ['CreateChangeSet', 'ExecuteChangeSet'],
    'update goes through a change set',
  );
  const cs = mine.find((c) => c.action === 'CreateChangeSet');
  t.equal(cs?.params.ChangeSetType, 'UPDATE');
  t.equal(cs?.params['Capabilities.member.1'], 'CAPABILITY_IAM');
  t.same(parameters(cs), {
    NamePrefix: 'skyfarm',
    MaxVcpus: '128',
    GpuInstanceTypes: '(previous)',
    EnableGpu: '(previous)',
    NotifyEmail: '(previous)',
    RetentionDays: '(previous)',
    DefaultBlenderVersion: '(previous)',
  });
  t.equal(fake.stack('skyfarm')?.rawParams.MaxVcpus, '128');
  t.match(rec.events[0], { resource: 'skyfarm', status: 'UPDATE_IN_PROGRESS', reason: 'User Initiated' });
  t.match(rec.events.at(-1), { resource: 'skyfarm', status: 'UPDATE_COMPLETE' });
  t.notOk(
    rec.events.some((e) => e.status.startsWith('CREATE_')),
    'events of the earlier create are not repeated',
  );
  const modified = [
    ...new Set(
      rec.events
        .filter((e) => e.status === 'UPDATE_COMPLETE' && e.resource !== 'skyfarm')
        .map((e) => e.resource),
    ),
  ];
  t.same(
    modified.sort(),
    ['CpuOnDemandEnvironment', 'CpuSpotEnvironment'],
    'only the environments using MaxVcpus changed',
  );

  // 2. Nothing changed: success with changed:false, the failed change set is cleaned up, no events.
  const quiet = recorder();
  const before = fake.calls.length;
  const same = await service.deploy({ maxVcpus: 128 }, quiet.notify);
  t.equal(same.changed, false);
  t.equal(same.stack.status, 'UPDATE_COMPLETE');
  t.same(same.stack.outputs, updated.stack.outputs);
  t.same(quiet.events, [], 'nothing to stream');
  const noop = fake.calls.slice(before).map((c) => c.action);
  t.ok(
    noop.includes('CreateChangeSet') && noop.includes('DeleteChangeSet'),
    'the empty change set was deleted',
  );
  t.notOk(noop.includes('ExecuteChangeSet'));
  t.equal(fake.stack('skyfarm')?.changeSets.size, 1, 'only the executed change set remains');

  // 3. Turning GPU on adds resources; a later deploy without --gpu keeps it on.
  const gpu = recorder();
  const withGpu = await service.deploy({ gpu: true }, gpu.notify);
  t.equal(withGpu.changed, true);
  t.type(withGpu.stack.outputs.GpuSpotQueueArn, 'string');
  t.same(lines(gpu.events.filter((e) => e.resource === 'GpuSpotQueue')), [
    'GpuSpotQueue CREATE_IN_PROGRESS',
    'GpuSpotQueue CREATE_COMPLETE',
  ]);
  const kept = await service.deploy({}, recorder().notify);
  t.equal(kept.changed, false, 'deploy without flags keeps the previous settings');
  t.equal(fake.stack('skyfarm')?.rawParams.EnableGpu, 'true');
  t.equal(fake.stack('skyfarm')?.rawParams.MaxVcpus, '128');

  // 4. Turning GPU off removes them again (cleanup phase).
  const off = recorder();
  const withoutGpu = await service.deploy({ gpu: false }, off.notify);
  t.notOk('GpuSpotQueueArn' in withoutGpu.stack.outputs);
  t.ok(off.events.some((e) => e.resource === 'GpuSpotEnvironment' && e.status === 'DELETE_COMPLETE'));
  t.ok(
    lines(off.events).indexOf('skyfarm UPDATE_COMPLETE_CLEANUP_IN_PROGRESS') <
      lines(off.events).indexOf('GpuSpotQueue DELETE_COMPLETE'),
  );
  t.same(remembered, [
    'CREATE_COMPLETE',
    'UPDATE_COMPLETE',
    'UPDATE_COMPLETE',
    'UPDATE_COMPLETE',
    'UPDATE_COMPLETE',
    'UPDATE_COMPLETE',
  ]);
});

t.test('a failed update reports the resource and its reason; the stack stays usable', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  const service = createStackService({ env, limits: FAST_LIMITS });
  await service.deploy({}, recorder().notify);
  fake.failOnUpdate(
    'CpuSpotEnvironment',
    'Resource handler returned message: "maxvCpus exceeds the account quota"',
  );
  const rec = recorder();
  await t.rejects(service.deploy({ maxVcpus: 9000 }, rec.notify), {
    code: 'STACK_FAILED',
    message:
      /Updating stack skyfarm failed: CpuSpotEnvironment \(AWS::Batch::ComputeEnvironment\): Resource handler returned message: "maxvCpus exceeds the account quota".*rolled back/,
  });
  t.ok(
    rec.events.some((e) => e.resource === 'CpuSpotEnvironment' && e.status === 'UPDATE_FAILED'),
    'the failure was streamed',
  );
  t.match(rec.events.at(-1), { resource: 'skyfarm', status: 'UPDATE_ROLLBACK_COMPLETE' });
  t.equal(fake.stack('skyfarm')?.status, 'UPDATE_ROLLBACK_COMPLETE');
  t.equal(fake.stack('skyfarm')?.rawParams.MaxVcpus, '256', 'the previous settings are back');

  fake.clearFaults();
  const retried = await service.deploy({ maxVcpus: 512 }, recorder().notify);
  t.equal(retried.stack.status, 'UPDATE_COMPLETE', 'UPDATE_ROLLBACK_COMPLETE can be updated again');
});
