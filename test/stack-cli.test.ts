// The built CLI end to end: `skyfarm deploy --yes` creates the stack through the daemon (fake
// CloudFormation, real SDK) and prints its outputs while streaming events, `skyfarm stack --json`
// reports CREATE_COMPLETE with the outputs, `skyfarm destroy --yes` empties the bucket (s3rver) and
// removes the stack.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { runCli } from './helpers/cli.js';
import { REGION, startFakeWithS3 } from './fakes/cloudformation/harness.js';

t.test('skyfarm deploy / stack / destroy', async (t) => {
  const { s3rver, s3, fake } = await startFakeWithS3(t);
  const dir = t.testdir({});
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))),
    SKYFARM_HOME: join(dir, 'home'),
    SKYFARM_PORT: '0',
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url,
    AWS_ENDPOINT_URL_S3: s3rver.url,
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(dir, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'aws-credentials'),
  };
  t.teardown(async () => {
    await runCli(['daemon', 'stop'], { env, timeoutMs: 60_000 }).catch(() => undefined);
    // If stopping through the CLI failed (a loaded machine), stop the daemon this test started by its pid.
    try {
      const { pid } = JSON.parse(readFileSync(join(dir, 'home', 'daemon.json'), 'utf8')) as { pid: number };
      process.kill(pid, 'SIGTERM');
    } catch {
      // already stopped: daemon.json is removed on a clean stop
    }
  });

  const deploy = await runCli(['deploy', '--yes', '--max-vcpus', '32'], { env });
  t.equal(deploy.code, 0, `deploy exits 0 (stderr: ${deploy.stderr.slice(-400)})`);
  t.match(deploy.stdout, /^stack skyfarm: CREATE_COMPLETE \(eu-west-1\)\n/);
  t.match(deploy.stdout, /\n {2}BucketName +skyfarm-bucket-[0-9a-f]+\n/, 'outputs are printed');
  t.match(
    deploy.stdout,
    /\n {2}CpuSpotQueueArn +arn:aws:batch:eu-west-1:123456789012:job-queue\/skyfarm-cpu-spot\n/,
  );
  t.match(deploy.stderr, /CREATE_IN_PROGRESS +Vpc \(AWS::EC2::VPC\)/, 'events are streamed to stderr');
  t.match(deploy.stderr, /CREATE_COMPLETE +skyfarm \(AWS::CloudFormation::Stack\)/);
  t.equal(fake.stack('skyfarm')?.rawParams.MaxVcpus, '32');

  const stack = await runCli(['stack', '--json'], { env });
  t.equal(stack.code, 0);
  const info = JSON.parse(stack.stdout) as {
    stackName: string;
    status: string;
    region: string;
    outputs: Record<string, string>;
  };
  t.match(info, { stackName: 'skyfarm', status: 'CREATE_COMPLETE', region: 'eu-west-1' });
  t.same(info.outputs, fake.stack('skyfarm')?.outputs, 'outputs as a map');

  const unconfirmed = await runCli(['destroy'], { env });
  t.equal(unconfirmed.code, 1, 'destroy without --yes outside a terminal is refused');
  t.match(unconfirmed.stderr, /pass --yes to confirm/);
  t.equal(fake.stack('skyfarm')?.status, 'CREATE_COMPLETE', 'nothing was deleted');

  const bucket = info.outputs.BucketName as string;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'jobs/j1/output/frame_0001.png', Body: 'png' }));
  const destroy = await runCli(['destroy', '--yes'], { env });
  t.equal(destroy.code, 0, `destroy exits 0 (stderr: ${destroy.stderr.slice(-400)})`);
  t.equal(destroy.stdout, 'deleted stack skyfarm\n');
  t.match(destroy.stderr, /EMPTY_COMPLETE +Bucket \(AWS::S3::Bucket\) +skyfarm: deleted 1 object\(s\)/);
  t.match(destroy.stderr, /DELETE_COMPLETE +skyfarm \(AWS::CloudFormation::Stack\)/);
  t.notOk(
    (await s3.send(new ListBucketsCommand({}))).Buckets?.some((b) => b.Name === bucket),
    'bucket gone',
  );

  const gone = await runCli(['stack', '--json'], { env });
  t.equal(gone.code, 1);
  t.match(JSON.parse(gone.stdout), { error: { code: 'STACK_NOT_FOUND' } });

  const bad = await runCli(['deploy', '--yes', '--json', '--stack-name', 'bad_name'], { env });
  t.equal(bad.code, 1);
  t.match(JSON.parse(bad.stdout), {
    error: { code: 'BAD_ARGUMENT', message: /Invalid stack name "bad_name"/ },
  });
  t.notOk(
    fake.calls.some((c) => c.params.StackName === 'bad_name'),
    'invalid input never reached AWS',
  );
});
