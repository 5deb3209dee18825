// The fake Batch endpoint itself, through the real @aws-sdk/client-batch client: the documented job
// state machine, dependsOn and dependency failure propagation, array jobs with statusSummary and
// `<parent>:<index>` children, retryStrategy/evaluateOnExit (host loss retried, application errors
// not), TerminateJob/CancelJob, ListJobs by name, awslogs into the fake CloudWatch Logs, and
// EventBridge rules read from infra/skyfarm.yaml.
import t, { type Test } from 'tap';
import {
  BatchClient,
  CancelJobCommand,
  DescribeJobsCommand,
  ListJobsCommand,
  SubmitJobCommand,
  TerminateJobCommand,
  type JobDetail,
} from '@aws-sdk/client-batch';
import { CloudWatchLogsClient, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { startFakeBatch, type FakeBatch, type RetryStrategy } from './fakes/batch/server.js';
import { startFakeLogs, type FakeLogs } from './fakes/logs/server.js';
import { farmFromTemplate } from './fakes/batch/template.js';

const RETRY: RetryStrategy = {
  attempts: 3,
  evaluateOnExit: [
    { onStatusReason: 'Host EC2*', action: 'RETRY' },
    { onReason: '*', action: 'EXIT' },
  ],
};

async function setup(t: Test) {
  const logs = await startFakeLogs();
  t.teardown(() => logs.close());
  const fake = await startFakeBatch({
    queues: [{ name: 'q' }, { name: 'other' }],
    jobDefinitions: [
      {
        name: 'ok',
        command: ['sh', '-c', 'echo "hello from $AWS_BATCH_JOB_ID attempt $AWS_BATCH_JOB_ATTEMPT"'],
        logStreamPrefix: 'test',
        retryStrategy: RETRY,
      },
      { name: 'fail', command: ['sh', '-c', 'echo boom; exit 3'], retryStrategy: RETRY },
      {
        name: 'array',
        command: [
          'sh',
          '-c',
          'echo "index $AWS_BATCH_JOB_ARRAY_INDEX"; test "$AWS_BATCH_JOB_ARRAY_INDEX" != "$FAIL_INDEX"',
        ],
        environment: { FAIL_INDEX: 'none' },
        retryStrategy: RETRY,
      },
      { name: 'slow', command: ['sh', '-c', 'echo started; sleep 20; echo finished'], retryStrategy: RETRY },
      {
        name: 'args',
        command: ['sh', '-c', 'echo "arg=$0"', 'Ref::value'],
        parameters: { value: 'default' },
      },
    ],
    logs,
    logGroup: '/skyfarm/test',
    tickMs: 20,
    maxRunning: 4,
  });
  t.teardown(() => fake.close());
  const client = new BatchClient({
    region: 'us-east-1',
    endpoint: fake.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  t.teardown(() => client.destroy());
  const describe = async (id: string): Promise<JobDetail> =>
    (await client.send(new DescribeJobsCommand({ jobs: [id] }))).jobs![0]!;
  const settled = (id: string) =>
    fake.waitFor(
      () => ['SUCCEEDED', 'FAILED'].includes(fake.jobs.get(id)?.status ?? ''),
      30_000,
      `${id} to end`,
    );
  return { fake, logs, client, describe, settled };
}

t.test(
  'a job walks SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING → SUCCEEDED; dependsOn waits',
  { timeout: 60_000 },
  async (t) => {
    const { fake, logs, client, describe, settled } = await setup(t);
    const first = await client.send(
      new SubmitJobCommand({
        jobName: 'first',
        jobQueue: 'q',
        jobDefinition: 'ok',
        tags: { app: 'skyfarm' },
      }),
    );
    const second = await client.send(
      new SubmitJobCommand({
        jobName: 'second',
        jobQueue: 'q',
        jobDefinition: 'ok',
        dependsOn: [{ jobId: first.jobId! }],
      }),
    );
    await settled(second.jobId!);
    t.same(fake.jobs.get(first.jobId!)?.history, [
      'SUBMITTED',
      'RUNNABLE',
      'STARTING',
      'RUNNING',
      'SUCCEEDED',
    ]);
    t.same(fake.jobs.get(second.jobId!)?.history, [
      'SUBMITTED',
      'PENDING',
      'RUNNABLE',
      'STARTING',
      'RUNNING',
      'SUCCEEDED',
    ]);
    const detail = await describe(first.jobId!);
    t.equal(detail.status, 'SUCCEEDED');
    t.equal(detail.container?.exitCode, 0);
    t.same(detail.tags, { app: 'skyfarm' });
    t.ok(detail.startedAt! <= detail.stoppedAt!, 'timestamps are epoch milliseconds');
    const stream = detail.container?.logStreamName;
    t.match(stream, /^test\/default\/[0-9a-f]{32}$/, 'awslogs stream name <prefix>/default/<task id>');
    const logsClient = new CloudWatchLogsClient({
      region: 'us-east-1',
      endpoint: logs.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    t.teardown(() => logsClient.destroy());
    const events = await logsClient.send(
      new GetLogEventsCommand({ logGroupName: '/skyfarm/test', logStreamName: stream!, startFromHead: true }),
    );
    t.same(
      events.events?.map((e) => e.message),
      [`hello from ${first.jobId} attempt 1`],
      'the container output is in CloudWatch Logs',
    );
  },
);

t.test(
  'array jobs: children <parent>:<index>, statusSummary, AWS_BATCH_JOB_ARRAY_INDEX; a failed child fails the parent and its dependents',
  { timeout: 60_000 },
  async (t) => {
    const { fake, client, describe, settled } = await setup(t);
    const array = await client.send(
      new SubmitJobCommand({
        jobName: 'array',
        jobQueue: 'q',
        jobDefinition: 'array',
        arrayProperties: { size: 3 },
        containerOverrides: { environment: [{ name: 'FAIL_INDEX', value: '1' }] },
      }),
    );
    const after = await client.send(
      new SubmitJobCommand({
        jobName: 'after',
        jobQueue: 'q',
        jobDefinition: 'ok',
        dependsOn: [{ jobId: array.jobId! }],
      }),
    );
    await settled(after.jobId!);
    const parent = await describe(array.jobId!);
    t.equal(parent.status, 'FAILED', 'the parent fails when a child fails');
    t.same(parent.arrayProperties?.statusSummary, {
      SUBMITTED: 0,
      PENDING: 0,
      RUNNABLE: 0,
      STARTING: 0,
      RUNNING: 0,
      SUCCEEDED: 2,
      FAILED: 1,
    });
    t.equal(parent.arrayProperties?.size, 3);
    t.notOk(fake.jobs.get(array.jobId!)?.history.includes('RUNNING'), 'a parent is never RUNNING');
    const children = await client.send(
      new DescribeJobsCommand({ jobs: [0, 1, 2].map((i) => `${array.jobId}:${i}`) }),
    );
    t.same(
      children.jobs?.map((j) => [j.jobId, j.arrayProperties?.index, j.status]),
      [
        [`${array.jobId}:0`, 0, 'SUCCEEDED'],
        [`${array.jobId}:1`, 1, 'FAILED'],
        [`${array.jobId}:2`, 2, 'SUCCEEDED'],
      ],
    );
    t.equal(children.jobs?.[1]?.container?.exitCode, 1);
    t.equal(
      children.jobs?.[1]?.attempts?.length,
      1,
      'an application error is not retried (OnReason * → EXIT)',
    );
    const dependent = await describe(after.jobId!);
    t.equal(dependent.status, 'FAILED');
    t.equal(dependent.statusReason, 'Dependent Job failed');
    t.equal(dependent.attempts?.length, 0, 'the dependent never ran');
    const listed = await client.send(
      new ListJobsCommand({ arrayJobId: array.jobId!, jobStatus: 'SUCCEEDED' }),
    );
    t.same(
      listed.jobSummaryList?.map((j) => j.jobId),
      [0, 2].map((i) => `${array.jobId}:${i}`),
      'ListJobs arrayJobId + jobStatus lists those children',
    );
    await t.rejects(
      client.send(
        new SubmitJobCommand({
          jobName: 'big',
          jobQueue: 'q',
          jobDefinition: 'ok',
          arrayProperties: { size: 10_001 },
        }),
      ),
      { name: 'ClientException' },
      'arrays are limited to 10,000 children',
    );
    await t.rejects(
      client.send(new DescribeJobsCommand({ jobs: Array.from({ length: 101 }, (_, i) => `x${i}`) })),
      { name: 'ClientException' },
      'DescribeJobs takes at most 100 ids',
    );
  },
);

t.test(
  'retryStrategy: a lost host (Host EC2 …) is retried, an application error is not',
  { timeout: 60_000 },
  async (t) => {
    const { fake, client, describe, settled } = await setup(t);
    fake.interrupt({ jobName: 'spot', afterLine: /^started$/, instanceId: 'i-0123456789abcdef0' });
    const spot = await client.send(
      new SubmitJobCommand({
        jobName: 'spot',
        jobQueue: 'q',
        jobDefinition: 'slow',
        containerOverrides: { command: ['sh', '-c', 'echo started; sleep 0.2'] },
      }),
    );
    const failing = await client.send(
      new SubmitJobCommand({ jobName: 'failing', jobQueue: 'q', jobDefinition: 'fail' }),
    );
    await settled(spot.jobId!);
    await settled(failing.jobId!);
    const retried = await describe(spot.jobId!);
    t.equal(retried.status, 'SUCCEEDED', 'the second attempt succeeded');
    t.equal(retried.attempts?.length, 2);
    t.equal(retried.attempts?.[0]?.statusReason, 'Host EC2 (instance i-0123456789abcdef0) terminated.');
    t.equal(retried.attempts?.[0]?.container?.exitCode, undefined, 'a lost host has no exit code');
    t.same(
      fake.jobs.get(spot.jobId!)?.history.filter((s) => s === 'RUNNABLE').length,
      2,
      'back to RUNNABLE for the retry',
    );
    const failed = await describe(failing.jobId!);
    t.equal(failed.status, 'FAILED');
    t.equal(failed.attempts?.length, 1);
    t.equal(failed.statusReason, 'Essential container in task exited');
    t.equal(failed.container?.exitCode, 3);
  },
);

t.test(
  'TerminateJob stops a running container; CancelJob only affects jobs that have not started',
  { timeout: 60_000 },
  async (t) => {
    const { fake, client, describe, settled } = await setup(t);
    fake.holdQueue('other', true);
    const running = await client.send(
      new SubmitJobCommand({ jobName: 'long', jobQueue: 'q', jobDefinition: 'slow' }),
    );
    const queued = await client.send(
      new SubmitJobCommand({ jobName: 'queued', jobQueue: 'other', jobDefinition: 'ok' }),
    );
    await fake.waitFor(() => fake.jobs.get(running.jobId!)?.status === 'RUNNING', 10_000, 'RUNNING');
    await fake.waitFor(() => fake.jobs.get(queued.jobId!)?.status === 'RUNNABLE', 10_000, 'RUNNABLE');
    await client.send(new CancelJobCommand({ jobId: running.jobId!, reason: 'cancel is not enough' }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.equal(fake.jobs.get(running.jobId!)?.status, 'RUNNING', 'CancelJob leaves a RUNNING job alone');
    await client.send(new CancelJobCommand({ jobId: queued.jobId!, reason: 'not needed' }));
    await client.send(new TerminateJobCommand({ jobId: running.jobId!, reason: 'canceled by the user' }));
    await settled(running.jobId!);
    const terminated = await describe(running.jobId!);
    t.equal(terminated.status, 'FAILED');
    t.equal(terminated.statusReason, 'canceled by the user');
    t.equal(terminated.attempts?.length, 1, 'a terminated job is not retried');
    const canceled = await describe(queued.jobId!);
    t.equal(canceled.status, 'FAILED');
    t.equal(canceled.statusReason, 'not needed');
    t.notOk(
      fake.jobs.get(running.jobId!)?.attempts[0]?.output.includes('finished'),
      'the container was stopped',
    );
  },
);

t.test(
  'ListJobs by JOB_NAME filter (with a trailing *), parameters into Ref:: of the command',
  { timeout: 60_000 },
  async (t) => {
    const { client, settled, fake } = await setup(t);
    const a = await client.send(
      new SubmitJobCommand({
        jobName: 'skyfarm-j_1-copy',
        jobQueue: 'q',
        jobDefinition: 'args',
        parameters: { value: 'given' },
      }),
    );
    await client.send(
      new SubmitJobCommand({ jobName: 'skyfarm-j_2-copy', jobQueue: 'q', jobDefinition: 'args' }),
    );
    await settled(a.jobId!);
    const byName = await client.send(
      new ListJobsCommand({ jobQueue: 'q', filters: [{ name: 'JOB_NAME', values: ['skyfarm-j_1-*'] }] }),
    );
    t.same(
      byName.jobSummaryList?.map((j) => j.jobName),
      ['skyfarm-j_1-copy'],
    );
    t.same(fake.jobs.get(a.jobId!)?.attempts[0]?.output, ['arg=given'], 'Ref::value became the parameter');
    await t.rejects(client.send(new ListJobsCommand({ filters: [{ name: 'JOB_NAME', values: ['x'] }] })), {
      name: 'ClientException',
    });
  },
);

t.test(
  'the stack template’s EventBridge rule submits publish when a render job fails (not for each child)',
  { timeout: 60_000 },
  async (t) => {
    const farm = farmFromTemplate({ bucket: 'bucket-from-stack', gpu: true });
    const render = farm.jobDefinitions.find((d) => d.name === 'skyfarm-render');
    const after = farm.jobDefinitions.find((d) => d.name === 'skyfarm-publish-after-failure');
    t.ok(render && after, 'the template defines the render and publish-after-failure job definitions');
    t.same(render?.retryStrategy?.evaluateOnExit?.[0], { onStatusReason: 'Host EC2*', action: 'RETRY' });
    t.equal(farm.rules.length, 1, 'one rule submits Batch jobs');
    t.equal(
      farm.rules[0]?.target.jobQueue,
      'skyfarm-transfer',
      'publish after failure runs on the transfer queue',
    );
    t.notOk(farm.queues.find((q) => q.name === farm.rules[0]?.target.jobQueue)?.gpu, 'never on a GPU queue');
    const logs: FakeLogs = await startFakeLogs();
    t.teardown(() => logs.close());
    // Stand-in commands: the render fails, publish-after-failure echoes the parameters it received.
    const fake: FakeBatch = await startFakeBatch({
      queues: farm.queues,
      jobDefinitions: farm.jobDefinitions,
      rules: farm.rules,
      executables: { 'skyfarm-worker': ['sh', '-c', 'echo "$0 $*"; test "$0" = publish'] },
      tickMs: 20,
      maxRunning: 4,
      logs,
    });
    t.teardown(() => fake.close());
    const client = new BatchClient({
      region: 'us-east-1',
      endpoint: fake.endpoint,
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
    });
    t.teardown(() => client.destroy());
    const job = await client.send(
      new SubmitJobCommand({
        jobName: 'skyfarm-j_rule-render',
        jobQueue: 'skyfarm-cpu-spot',
        jobDefinition: 'skyfarm-render',
        arrayProperties: { size: 2 },
        parameters: { skyfarmJobId: 'j_rule', skyfarmStage: 'render' },
        containerOverrides: { command: ['skyfarm-worker', 'render'] },
      }),
    );
    await fake.waitFor(
      () =>
        fake.ruleSubmissions.length > 0 &&
        fake.jobs.get(fake.ruleSubmissions[0]!.jobId)?.status === 'SUCCEEDED',
      30_000,
      'the rule’s publish',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.equal(fake.jobs.get(job.jobId!)?.status, 'FAILED');
    t.equal(fake.ruleSubmissions.length, 1, 'one publish for the failed array, none for its failed children');
    const publish = fake.jobs.get(fake.ruleSubmissions[0]!.jobId)!;
    t.equal(publish.queue.name, 'skyfarm-transfer');
    t.equal(publish.jobName, 'skyfarm-publish-after-failure');
    t.same(publish.attempts[0]?.output, [
      'publish --after-failure --job-id j_rule --reason 2 of 2 child jobs failed',
    ]);
    t.equal(publish.environment['SKYFARM_BUCKET'], 'bucket-from-stack');

    // A job of another stage (copy) failing does not trigger the rule.
    const copy = await client.send(
      new SubmitJobCommand({
        jobName: 'skyfarm-j_rule-copy',
        jobQueue: 'skyfarm-transfer',
        jobDefinition: 'skyfarm-transfer',
        parameters: { skyfarmJobId: 'j_rule', skyfarmStage: 'copy' },
        containerOverrides: { command: ['skyfarm-worker', 'copy'] },
      }),
    );
    await fake.waitFor(() => fake.jobs.get(copy.jobId!)?.status === 'FAILED', 30_000, 'copy to fail');
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.equal(fake.ruleSubmissions.length, 1, 'no publish for a failed copy job itself');
  },
);
