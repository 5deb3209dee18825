// Region and credentials: found the way the AWS CLI finds them, and when missing, the error says what
// was tried, without any AWS call and without secrets.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { createStackService } from '../daemon/src/stack/index.js';
import { resolveAwsConfig } from '../daemon/src/aws/config.js';
import { FAST_LIMITS, SECRET, awsEnv, recorder, startFake } from './fakes/cloudformation/harness.js';

t.test('no credentials: names every source tried, calls nothing', async (t) => {
  const fake = await startFake(t);
  const env = awsEnv(t, { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url });
  const service = createStackService({ env, limits: FAST_LIMITS });
  const error = (await service.deploy({}, recorder().notify).catch((e: unknown) => e)) as {
    code: string;
    message: string;
  };
  t.equal(error.code, 'AWS_NO_CREDENTIALS');
  t.match(error.message, /^No AWS credentials found\. Tried: /);
  t.match(error.message, 'AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)');
  t.match(
    error.message,
    `default profile=default: keys, SSO, credential_process and role settings in ${env.AWS_SHARED_CREDENTIALS_FILE} (file missing)`,
  );
  t.match(error.message, `${env.AWS_CONFIG_FILE} (file missing)`);
  t.match(error.message, 'AWS_WEB_IDENTITY_TOKEN_FILE (not set)');
  t.match(error.message, 'container credentials (AWS_CONTAINER_CREDENTIALS_* not set)');
  t.match(error.message, 'EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)');
  t.match(error.message, /aws configure/);
  await t.rejects(service.status({}), { code: 'AWS_NO_CREDENTIALS' });
  await t.rejects(service.destroy({}, recorder().notify), { code: 'AWS_NO_CREDENTIALS' });
  t.same(fake.calls, [], 'no request reached CloudFormation');
});

t.test('a selected profile without credentials is named', async (t) => {
  const fake = await startFake(t);
  const env = awsEnv(t, {
    AWS_REGION: 'eu-west-1',
    AWS_PROFILE: 'render-team',
    AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url,
  });
  writeFileSync(env.AWS_CONFIG_FILE as string, '[profile other]\nregion = us-east-1\n');
  const service = createStackService({ env, limits: FAST_LIMITS });
  const error = (await service.status({}).catch((e: unknown) => e)) as { code: string; message: string };
  t.equal(error.code, 'AWS_NO_CREDENTIALS');
  t.match(error.message, 'AWS_PROFILE=render-team');
  t.match(error.message, 'AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (skipped: a profile is selected)');
  t.notMatch(error.message, `${env.AWS_CONFIG_FILE} (file missing)`, 'the config file exists');
  const viaParam = (await service.status({ profile: 'studio' }).catch((e: unknown) => e)) as {
    message: string;
  };
  t.match(viaParam.message, '--profile=studio');
  t.same(fake.calls, []);
});

t.test('a secret key without an access key id is not echoed', async (t) => {
  const fake = await startFake(t);
  const env = awsEnv(t, {
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIDONLY',
    AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url,
  });
  const error = (await resolveAwsConfig({}, env).catch((e: unknown) => e)) as {
    code: string;
    message: string;
  };
  t.equal(error.code, 'AWS_NO_CREDENTIALS');
  t.match(error.message, 'AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (secret key missing)');
  t.notMatch(error.message, 'AKIDONLY');
});

t.test('no region: says where it looked, calls nothing', async (t) => {
  const fake = await startFake(t);
  const env = awsEnv(t, {
    AWS_ACCESS_KEY_ID: 'AKIDNOREGION',
    AWS_SECRET_ACCESS_KEY: SECRET,
    AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url,
  });
  const service = createStackService({ env, limits: FAST_LIMITS });
  const error = (await service.deploy({}, recorder().notify).catch((e: unknown) => e)) as {
    code: string;
    message: string;
  };
  t.equal(error.code, 'AWS_NO_REGION');
  t.match(
    error.message,
    /Tried: --region, AWS_REGION, AWS_DEFAULT_REGION, and "region" of profile "default" in .*config \(file missing\)/,
  );
  t.match(error.message, /--region eu-central-1/);
  t.notMatch(error.message, SECRET);
  t.same(fake.calls, []);
});

t.test('region and credentials from a profile in the shared files', async (t) => {
  const fake = await startFake(t);
  const env = awsEnv(t, { AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url });
  writeFileSync(
    env.AWS_CONFIG_FILE as string,
    '[default]\nregion = us-west-2\n\n[profile farm]\nregion = ap-south-1 ; comment\n',
  );
  writeFileSync(
    env.AWS_SHARED_CREDENTIALS_FILE as string,
    `[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = ${SECRET}\n\n[farm]\naws_access_key_id = AKIDFARM\naws_secret_access_key = ${SECRET}\n`,
  );
  const service = createStackService({ env, limits: FAST_LIMITS });

  await t.rejects(service.status({ profile: 'farm' }), { code: 'STACK_NOT_FOUND', message: /in ap-south-1/ });
  t.match(fake.calls.at(-1), { action: 'DescribeStacks', region: 'ap-south-1', accessKeyId: 'AKIDFARM' });

  await t.rejects(service.status({}), { code: 'STACK_NOT_FOUND', message: /in us-west-2/ });
  t.match(fake.calls.at(-1), { region: 'us-west-2', accessKeyId: 'AKIDDEFAULT' }, 'the default profile');

  await t.rejects(service.status({ profile: 'farm', region: 'eu-north-1' }), { message: /in eu-north-1/ });
  t.match(
    fake.calls.at(-1),
    { region: 'eu-north-1', accessKeyId: 'AKIDFARM' },
    '--region wins over the profile',
  );

  process.env.AWS_DEFAULT_REGION = 'ca-central-1';
  await t.rejects(service.status({}), { message: /in ca-central-1/ });
  t.match(fake.calls.at(-1), { region: 'ca-central-1' }, 'AWS_DEFAULT_REGION wins over the profile');
  process.env.AWS_REGION = 'sa-east-1';
  await t.rejects(service.status({}), { message: /in sa-east-1/ });
  t.match(fake.calls.at(-1), { region: 'sa-east-1' }, 'AWS_REGION wins over AWS_DEFAULT_REGION');

  const cfg = await resolveAwsConfig({ profile: 'farm' }, env);
  t.same(Object.keys(cfg).sort(), ['credentials', 'endpoints', 'profile', 'region']);
  t.equal(cfg.endpoints.cloudformation, fake.url, 'endpoint from AWS_ENDPOINT_URL_CLOUDFORMATION');
  t.notMatch(JSON.stringify(cfg), SECRET, 'the config object does not carry the secret as data');
});
