// Before submitting: a render queue's price per hour at full scale, from the queue's own compute
// environments (fake Batch configured from infra/skyfarm.yaml, MaxVcpus 96) and AWS's prices (fake
// Price List, fake EC2 spot prices). Each figure is recomputed here from the fakes' tables; a denied
// call says "cost unknown … allow <action>". Shown by `skyfarm cost --queue` and by `skyfarm render
// --backend aws` before it submits (text and --json).
import t from 'tap';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { startFakeBatch } from './fakes/batch/server.js';
import { farmFromTemplate } from './fakes/batch/template.js';
import { startFakePricing } from './fakes/pricing/server.js';
import { startFakeEc2 } from './fakes/ec2/server.js';
import { cpuFamilies, onDemandPerVcpu, products, spotPerVcpu, spotPrices } from './helpers/queue-prices.js';
import { awsEnv } from './fakes/batch/aws-env.js';
import { runSkyfarm, startAwsTestDaemon, startFarm } from './fakes/batch/farm.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import type { Job, QueueCost } from '../protocol/generated/protocol.js';

const MAX_VCPUS = 96;

t.test(
  'a queue at full scale: the sum of its environments’ maxvCpus × the dearest price per vCPU',
  async (t) => {
    const dir = t.testdir({});
    const template = farmFromTemplate({
      bucket: 'farm-bucket',
      gpu: true,
      parameters: { MaxVcpus: String(MAX_VCPUS) },
    });
    const batch = await startFakeBatch({
      queues: template.queues,
      computeEnvironments: template.computeEnvironments,
      jobDefinitions: template.jobDefinitions,
      pageLimit: 1,
    });
    t.teardown(() => batch.close());
    const pricing = await startFakePricing({ products, pageLimit: 3 });
    t.teardown(() => pricing.close());
    const ec2 = await startFakeEc2({ spotPrices, pageLimit: 5 });
    t.teardown(() => ec2.close());
    const stateDir = path.join(dir, 'home');
    await startAwsTestDaemon(t, {
      stateDir,
      runnableWarnMs: 60_000,
      env: {
        ...awsEnv({
          s3: 'http://127.0.0.1:9',
          batch: batch.endpoint,
          pricing: pricing.endpoint,
          ec2: ec2.endpoint,
        }),
        SKYFARM_AWS_BUCKET: 'farm-bucket',
      },
    });
    const skyfarm = (...args: string[]) => runSkyfarm(args, stateDir, dir, 60_000);
    const queueCost = async (...args: string[]): Promise<QueueCost> => {
      const run = await skyfarm('cost', '--queue', ...args, '--json');
      t.equal(run.code, 0, `skyfarm cost --queue ${args.join(' ')} exits 0`, { stderr: run.stderr });
      return JSON.parse(run.stdout) as QueueCost;
    };

    // Denials first, before any price is cached: each names the IAM action the identity lacks.
    pricing.deny(true);
    let cost = await queueCost('--market', 'on-demand');
    t.equal(cost.known, false, 'Price List denied: unknown');
    t.equal(cost.missingAction, 'pricing:GetProducts');
    t.match(cost.text, /^Queue skyfarm-cpu-on-demand: cost unknown: .*allow pricing:GetProducts/);
    pricing.deny(false);
    ec2.deny(true);
    cost = await queueCost();
    t.equal(
      cost.missingAction,
      'ec2:DescribeSpotPriceHistory',
      'spot prices denied: unknown, names the action',
    );
    t.notOk(cost.usdPerHour, 'no figure at all while a part is unknown');
    ec2.deny(false);
    batch.deny(['DescribeComputeEnvironments']);
    let text = await skyfarm('cost', '--queue');
    t.match(
      text.stdout,
      /Queue skyfarm-cpu-spot: cost unknown: AWS denied batch:DescribeComputeEnvironments \(allow batch:DescribeComputeEnvironments for your AWS identity\)/,
    );
    batch.deny(['DescribeJobQueues']);
    t.equal((await queueCost()).missingAction, 'batch:DescribeJobQueues');
    batch.deny([]);

    // On-demand CPU queue: one environment.
    cost = await queueCost('--market', 'on-demand');
    const onDemand = onDemandPerVcpu(cpuFamilies) * MAX_VCPUS;
    t.equal(cost.known, true);
    t.equal(cost.vcpus, MAX_VCPUS, 'the environment’s maxvCpus');
    t.ok(Math.abs(cost.usdPerHour! - onDemand) < 1e-9, `on-demand ${cost.usdPerHour} = ${onDemand}`);
    t.same(cost.environments?.[0]?.instanceTypes, cpuFamilies, 'the families as the environment lists them');

    // Spot CPU queue: the spot environment, then its on-demand fallback, both at full scale.
    cost = await queueCost();
    const spot = spotPerVcpu(cpuFamilies) * MAX_VCPUS;
    t.same(
      cost.environments?.map((e) => [e.market, e.maxVcpus]),
      [
        ['spot', MAX_VCPUS],
        ['on-demand', MAX_VCPUS],
      ],
    );
    t.ok(
      Math.abs(cost.environments![0]!.usdPerHour - spot) < 1e-9,
      `spot part ${cost.environments![0]!.usdPerHour} = ${spot}`,
    );
    t.ok(Math.abs(cost.usdPerHour! - (spot + onDemand)) < 1e-9, 'the queue: both environments together');
    t.equal(cost.vcpus, 2 * MAX_VCPUS);
    t.equal(
      cost.environments![0]!.priciestType,
      'c7i.large',
      'the dearest size now (its price rose an hour ago)',
    );

    // GPU on-demand queue: priced by the GPU instance types.
    cost = await queueCost('--device', 'gpu', '--market', 'on-demand');
    const gpu = onDemandPerVcpu(['g4dn', 'g5', 'g6']) * MAX_VCPUS;
    t.equal(cost.queue, 'skyfarm-gpu-on-demand');
    t.ok(Math.abs(cost.usdPerHour! - gpu) < 1e-9, `GPU on-demand ${cost.usdPerHour} = ${gpu}`);

    // A queue by name, and the text form with its one line per environment.
    text = await skyfarm('cost', '--queue', 'skyfarm-cpu-on-demand');
    t.equal(text.code, 0);
    t.match(
      text.stdout,
      `Queue skyfarm-cpu-on-demand: up to $${onDemand.toFixed(2)}/hour at ${MAX_VCPUS} vCPUs (on-demand, c6i/c6a/c7i/m6i/m6a/m7i)`,
    );
    const unknownQueue = await queueCost('no-such-queue');
    t.match(unknownQueue.unknownReason, /does not know the job queue no-such-queue/);

    // `render --backend aws` says it before submitting: on stderr in text mode, in the JSON with --json.
    const blend = path.join(dir, 'not-a-scene.blend');
    writeFileSync(blend, 'not a blend file');
    const render = await skyfarm('render', blend, '--backend', 'aws', '--market', 'on-demand');
    t.match(
      render.stderr,
      `Queue skyfarm-cpu-on-demand: up to $${onDemand.toFixed(2)}/hour at ${MAX_VCPUS} vCPUs`,
    );
    t.ok(
      render.stderr.indexOf('Queue skyfarm-cpu-on-demand') < render.stderr.indexOf('is not a Blender file'),
      'said before the submit was answered (here: refused)',
      { stderr: render.stderr },
    );
    t.equal(batch.calls.filter((c) => c.operation === 'submitjob').length, 0, 'nothing was submitted');
  },
);

t.test(
  'render --backend aws --json: the submitted job carries the queue’s price (the farm’s MaxVcpus 256)',
  { skip: blenderSkip, timeout: 90_000 },
  async (t) => {
    const farm = await startFarm(t);
    // Nothing runs: copy waits for transfer capacity, the render waits for copy.
    farm.batch.holdQueue('skyfarm-transfer', true);
    const pricing = await startFakePricing({ products });
    t.teardown(() => pricing.close());
    const ec2 = await startFakeEc2({ spotPrices });
    t.teardown(() => ec2.close());
    const daemon = await startAwsTestDaemon(t, {
      stateDir: farm.stateDir,
      runnableWarnMs: 60_000,
      env: {
        ...farm.daemonEnv,
        AWS_ENDPOINT_URL_PRICING: pricing.endpoint,
        AWS_ENDPOINT_URL_EC2: ec2.endpoint,
      },
    });
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 1] });
    const run = await runSkyfarm(
      ['render', scene, '--backend', 'aws', '--market', 'on-demand', '--json'],
      farm.stateDir,
      farm.dir,
      60_000,
    );
    t.equal(run.code, 0, 'submitted', { stderr: run.stderr });
    const job = JSON.parse(run.stdout) as Job & { queueCost?: QueueCost };
    t.match(job.id, /^j_/, 'the job as ever');
    const expected = onDemandPerVcpu(cpuFamilies) * 256;
    t.equal(job.queueCost?.queue, 'skyfarm-cpu-on-demand');
    t.equal(job.queueCost?.vcpus, 256, 'the template’s default MaxVcpus');
    t.ok(
      Math.abs((job.queueCost?.usdPerHour ?? NaN) - expected) < 1e-9,
      `${job.queueCost?.usdPerHour} = ${expected}`,
    );
    t.notMatch(run.stderr, /Queue skyfarm/, '--json: the line is in the JSON, not on stderr');
    const firstCall = (op: string) => farm.batch.calls.find((c) => c.operation === op)?.at ?? Infinity;
    t.ok(firstCall('describecomputeenvironments') < firstCall('submitjob'), 'asked before submitting');
    // The job is still waiting for capacity: the daemon stops before the farm's folders go.
    await daemon.stop();
  },
);
