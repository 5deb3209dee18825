// Invalid stack.* parameters are refused with BAD_ARGUMENT before any AWS work: no credential lookup,
// no request to CloudFormation.
import t from 'tap';
import type { StackDeployParams } from '../protocol/generated/protocol.js';
import { createStackService } from '../daemon/src/stack/index.js';
import { validateDeploy } from '../daemon/src/stack/validate.js';
import { FAST_LIMITS, fakeAwsEnv, recorder, startFake } from './fakes/cloudformation/harness.js';

const invalid: Array<[string, StackDeployParams, RegExp]> = [
  ['empty stack name', { stackName: '' }, /Invalid stack name ""/],
  [
    'stack name with underscore',
    { stackName: 'my_farm' },
    /Invalid stack name "my_farm": use 1-32 letters, digits and single hyphens/,
  ],
  ['stack name with a leading digit', { stackName: '1farm' }, /Invalid stack name/],
  ['stack name with a double hyphen', { stackName: 'sky--farm' }, /Invalid stack name/],
  ['stack name ending in a hyphen', { stackName: 'skyfarm-' }, /Invalid stack name/],
  ['stack name too long', { stackName: 'a'.repeat(33) }, /Invalid stack name/],
  ['stack name with a slash', { stackName: 'sky/farm' }, /Invalid stack name/],
  ['zero vCPUs', { maxVcpus: 0 }, /Invalid --max-vcpus 0: expected a whole number from 1 to 10000/],
  ['too many vCPUs', { maxVcpus: 10001 }, /Invalid --max-vcpus 10001/],
  ['fractional vCPUs', { maxVcpus: 2.5 }, /Invalid --max-vcpus 2.5/],
  ['vCPUs as text', { maxVcpus: '64' as unknown as number }, /Invalid --max-vcpus "64"/],
  ['NaN vCPUs', { maxVcpus: Number.NaN }, /Invalid --max-vcpus/],
  ['email without domain', { notifyEmail: 'me@' }, /Invalid --notify-email "me@": expected an address/],
  ['email without at', { notifyEmail: 'me.example.com' }, /Invalid --notify-email/],
  ['email with spaces', { notifyEmail: 'me @example.com' }, /Invalid --notify-email/],
  ['email with a newline', { notifyEmail: 'me@example.com\nBcc: x@y.z' }, /Invalid --notify-email/],
  ['email too long', { notifyEmail: `${'a'.repeat(320)}@example.com` }, /Invalid --notify-email/],
  [
    'region typo',
    { region: 'eu-central' },
    /Invalid region "eu-central": expected an AWS region code such as "eu-central-1"/,
  ],
  ['region upper case', { region: 'EU-WEST-1' }, /Invalid region/],
  ['profile with spaces', { profile: 'my profile' }, /Invalid profile name "my profile"/],
  ['gpu as text', { gpu: 'yes' as unknown as boolean }, /gpu must be true or false/],
];

t.test('invalid deploy parameters: BAD_ARGUMENT, nothing contacted', async (t) => {
  const fake = await startFake(t);
  const env = fakeAwsEnv(t, fake);
  let configLookups = 0;
  const service = createStackService({
    env,
    limits: FAST_LIMITS,
    resolveConfig: async () => {
      configLookups++;
      throw new Error('must not be reached');
    },
  });
  for (const [what, params, message] of invalid) {
    await t.rejects(service.deploy(params, recorder().notify), { code: 'BAD_ARGUMENT', message }, what);
  }
  for (const params of [{ stackName: 'bad_name' }, { region: 'mars-1' }, { profile: 'a b' }]) {
    await t.rejects(service.status(params), { code: 'BAD_ARGUMENT' }, `status ${JSON.stringify(params)}`);
    await t.rejects(
      service.destroy(params, recorder().notify),
      { code: 'BAD_ARGUMENT' },
      `destroy ${JSON.stringify(params)}`,
    );
  }
  t.equal(configLookups, 0, 'no credential or region lookup happened');
  t.same(fake.calls, [], 'no request reached CloudFormation');
});

t.test('valid edge values pass validation unchanged', async (t) => {
  t.same(validateDeploy({}), { stackName: 'skyfarm' });
  t.same(
    validateDeploy({
      stackName: 'Farm-2',
      maxVcpus: 1,
      notifyEmail: '',
      gpu: false,
      region: 'us-gov-west-1',
      profile: 'team.render@acme',
    }),
    {
      stackName: 'Farm-2',
      maxVcpus: 1,
      notifyEmail: '',
      gpu: false,
      region: 'us-gov-west-1',
      profile: 'team.render@acme',
    },
  );
  t.same(
    validateDeploy({
      maxVcpus: 10000,
      notifyEmail: 'render+farm@studio.example.co.uk',
      stackName: 'a'.repeat(32),
    }).maxVcpus,
    10000,
  );
});
