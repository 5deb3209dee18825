// The Blender add-on's Farm panel: its bpy-free logic with plain python3, then real Blender (`-b`)
// against a real daemon whose CloudFormation endpoint is the stateful fake. Deploy pressed in Blender
// streams live stack events into window_manager.skyfarm.farm, ends CREATE_COMPLETE with the stack's
// outputs and makes the AWS backend available; a failed create shows the failing resource's reason;
// without AWS credentials the panel says so with the daemon's message.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeScene } from './helpers/scenes.js';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';
import { awsEnv, fakeAwsEnv, startFake } from './fakes/cloudformation/harness.js';
import { startFakeBatch } from './fakes/batch/server.js';
import { farmFromTemplate } from './fakes/batch/template.js';
import { startFakePricing } from './fakes/pricing/server.js';
import { startFakeEc2 } from './fakes/ec2/server.js';
import { cpuFamilies, onDemandPerVcpu, products, spotPerVcpu, spotPrices } from './helpers/queue-prices.js';
import {
  addonRoot,
  addonTests,
  blenderEnv,
  blenderVersion,
  run,
  runBlenderScript,
  tail,
} from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

const minute = 60_000;
// Slow enough that the daemon's polls (0.2 s, 0.3 s, 0.45 s, …) see the create in several steps.
const STEP_MS = 15;
const REASON =
  'Resource handler returned message: "You have reached the maximum number of file systems (Service: Efs, Status Code: 403)"';

interface FarmResult {
  status: string;
  statusText: string;
  statusDetail: string;
  errorCode: string;
  outputs: Record<string, string>;
  events: Array<[string, string, string, boolean]>;
  outcome: [string, string];
  awsAvailable: boolean;
  awsReason: string;
  /** What the AWS sub-panel says under Max Cost once the farm is deployed. */
  queueLine?: string;
  pressedMs?: number;
  liveViews?: number;
}

function farmResult(stdout: string): FarmResult {
  const line = stdout.split('\n').find((l) => l.startsWith('FARM_RESULT '));
  if (!line) throw new Error('the Blender script printed no FARM_RESULT');
  return JSON.parse(line.slice('FARM_RESULT '.length)) as FarmResult;
}

t.test('test_farm: status text, buttons, bounded events, deploy outcomes (plain python3)', async (t) => {
  const result = await run('python3', ['-m', 'unittest', '-v', 'test_farm'], {
    cwd: addonTests,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    timeoutMs: 120_000,
  });
  t.equal(result.code, 0, 'unittest exits 0', { output: tail(result) });
  const ran = /^Ran (\d+) tests? in/m.exec(result.stderr);
  t.ok(ran && Number(ran[1]) >= 10, `ran the farm tests (${ran?.[1] ?? 0})`);
  t.match(result.stderr, /^OK$/m, 'unittest says OK', { output: tail(result) });
});

t.test('Deploy from Blender: live events, CREATE_COMPLETE with outputs, AWS backend available', async (t) => {
  const fake = await startFake(t, { stepMs: STEP_MS });
  // The deployed farm's queues and compute environments (Batch) and prices (Price List, EC2), for
  // the price per hour the AWS panel shows once the stack is there. Max vCPUs 16, as deployed below.
  const template = farmFromTemplate({ bucket: 'farm-bucket', parameters: { MaxVcpus: '16' } });
  const batch = await startFakeBatch({
    queues: template.queues,
    computeEnvironments: template.computeEnvironments,
    jobDefinitions: template.jobDefinitions,
  });
  t.teardown(() => batch.close());
  const pricing = await startFakePricing({
    products: products.map((p) => ({ ...p, regionCode: 'eu-west-1' })),
  });
  t.teardown(() => pricing.close());
  const ec2 = await startFakeEc2({ spotPrices });
  t.teardown(() => ec2.close());
  fakeAwsEnv(t, fake, {
    AWS_ENDPOINT_URL_BATCH: batch.endpoint,
    AWS_ENDPOINT_URL_PRICING: pricing.endpoint,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
  });
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 2] });
  const result = await runBlenderScript(t, {
    script: 'farm_background.py',
    blendFile,
    args: { scenario: 'deploy', addonSource: addonRoot, deployTimeout: 120 },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 4 * minute,
  });
  const farm = farmResult(result.stdout);
  const stack = fake.stack('skyfarm');
  t.equal(stack?.status, 'CREATE_COMPLETE', 'the fake CloudFormation has the stack');
  t.equal(farm.status, 'CREATE_COMPLETE');
  t.equal(farm.statusText, 'Ready');
  t.same(
    farm.outputs,
    stack?.outputs,
    'the panel shows the stack outputs CloudFormation has (skyfarm stack --json)',
  );
  t.ok(farm.awsAvailable, `the AWS backend is available (${farm.awsReason})`);
  t.match(farm.outcome, ['INFO', /^Created stack skyfarm in /]);
  const create = fake.calls.find((c) => c.action === 'CreateStack');
  t.equal(
    create?.params['Parameters.member.1.ParameterKey'] !== undefined,
    true,
    'CreateStack had parameters',
  );
  const maxVcpus = Object.entries(create?.params ?? {}).find(([, v]) => v === 'MaxVcpus');
  t.ok(maxVcpus, 'the Max vCPUs option reached CreateStack');
  if (maxVcpus) t.equal(create?.params[maxVcpus[0].replace('ParameterKey', 'ParameterValue')], '16');
  t.ok(farm.events.length > 50, `the panel holds the create's events (${farm.events.length})`);
  t.ok((farm.liveViews ?? 0) >= 3, `events arrived in steps while deploying (${farm.liveViews} views)`);
  t.comment(`Deploy returned in ${farm.pressedMs?.toFixed(1)} ms`);
  t.equal(fake.calls.filter((c) => c.action === 'CreateStack').length, 1, 'one CreateStack for one press');
  // The AWS panel: the spot queue at full scale, 16 spot vCPUs then 16 on-demand (the fakes' prices).
  const usd = (spotPerVcpu(cpuFamilies) + onDemandPerVcpu(cpuFamilies)) * 16;
  t.equal(
    farm.queueLine,
    `Queue skyfarm-cpu-spot: up to $${usd.toFixed(2)}/hour at 32 vCPUs (16 spot, ${cpuFamilies.join('/')}; ` +
      `then 16 on-demand, ${cpuFamilies.join('/')})`,
    'the AWS panel shows the deployed queue’s price per hour at full scale under Max Cost',
  );
});

t.test("a failed create shows the failing resource's reason and Recreate", async (t) => {
  const fake = await startFake(t, { stepMs: STEP_MS });
  fakeAwsEnv(t, fake);
  fake.failOnCreate('FileSystem', REASON);
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 2] });
  const result = await runBlenderScript(t, {
    script: 'farm_background.py',
    blendFile,
    args: { scenario: 'failed-create', addonSource: addonRoot, reason: REASON },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 4 * minute,
  });
  const farm = farmResult(result.stdout);
  t.equal(fake.stack('skyfarm')?.status, 'ROLLBACK_COMPLETE');
  t.equal(farm.status, 'ROLLBACK_COMPLETE');
  t.match(farm.outcome, ['ERROR', `FileSystem (AWS::EFS::FileSystem): ${REASON}`]);
  t.match(
    farm.events.find((e) => e[3]),
    ['FileSystem', 'CREATE_FAILED', REASON, true],
    'the failing event is listed and flagged',
  );
  t.notOk(farm.awsAvailable, 'AWS stays unavailable');
});

t.test('a deploy from another client (the CLI) shows live in the panel and enables AWS', async (t) => {
  const fake = await startFake(t, { stepMs: STEP_MS });
  fakeAwsEnv(t, fake);
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 2] });
  const readyMarker = path.join(dir, 'ready');
  let stop = false;
  // What `skyfarm deploy` does: another WebSocket client asks for stack.deploy.
  const cli = (async () => {
    while (!stop && !existsSync(readyMarker)) await sleep(50);
    if (stop) return undefined;
    const client = await connectTestClient(t, daemon);
    return client.request('stack.deploy', {});
  })();
  const result = await runBlenderScript(t, {
    script: 'farm_background.py',
    blendFile,
    args: { scenario: 'external-deploy', addonSource: addonRoot, readyMarker },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 4 * minute,
  });
  stop = true;
  const deployed = await cli;
  t.equal(deployed?.stack.status, 'CREATE_COMPLETE', 'the CLI-side deploy succeeded');
  const farm = farmResult(result.stdout);
  t.equal(farm.status, 'CREATE_COMPLETE');
  t.same(farm.outputs, deployed?.stack.outputs, 'the panel fetched the outputs after the stack completed');
  t.ok(farm.awsAvailable, 'the AWS backend became available');
  t.ok(farm.events.length > 50, `the panel shows the events (${farm.events.length})`);
});

t.test('no AWS credentials: the panel shows the daemon’s message, nothing reaches AWS', async (t) => {
  const fake = await startFake(t);
  awsEnv(t, { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url });
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 2] });
  const result = await runBlenderScript(t, {
    script: 'farm_background.py',
    blendFile,
    args: { scenario: 'no-credentials', addonSource: addonRoot },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 3 * minute,
  });
  const farm = farmResult(result.stdout);
  t.equal(farm.errorCode, 'AWS_NO_CREDENTIALS');
  t.match(farm.statusDetail, /AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY \(not set\)/);
  t.same(fake.calls, [], 'no request reached CloudFormation');
});
