// The AWS side of cost for tests: fakes of the Price List, EC2 and ECS with a small fleet (a spot
// c6i.xlarge and an on-demand m6i.2xlarge for render chunks, an on-demand c6i.large for copy and
// publish), the placement the fake Batch uses to put containers on them, and the daemon's cost
// clients (the real SDK clients) pointed at the fakes. Prices are per hour and scaled by `scale`, so a test of a few seconds can
// spend whole dollars. `expectedSpend` recomputes a job's spend from the fakes' own records.
import type { Test } from 'tap';
import { startFakePricing, type FakePricing } from '../fakes/pricing/server.js';
import { startFakeEc2, type FakeEc2, type FakeSpotPrice } from '../fakes/ec2/server.js';
import { startFakeEcs, containerInstanceArn, type FakeEcs } from '../fakes/ecs/server.js';
import type { FakeBatch, FakeJob } from '../fakes/batch/server.js';
import { awsEnv } from '../fakes/batch/aws-env.js';
import type { CostClients } from '../../daemon/src/cost/cost-service.js';
import type { IBatch } from '../../daemon/src/batch/batch-api.js';
import { settingsFromEnv } from '../../daemon/src/batch/bucket.js';
import { createPricing, type IPricing } from '../../daemon/src/aws/pricing.js';
import { createEc2 } from '../../daemon/src/aws/ec2.js';
import { createContainerInstances } from '../../daemon/src/aws/ecs.js';

export interface WorldInstance {
  cluster: string;
  id: string;
  ec2InstanceId: string;
  instanceType: string;
  availabilityZone: string;
  vcpu: number;
  spot: boolean;
  /** On-demand USD per hour (already scaled). */
  usdPerHour: number;
}

export interface CostWorld {
  pricing: FakePricing;
  ec2: FakeEc2;
  ecs: FakeEcs;
  instances: { spot: WorldInstance; onDemand: WorldInstance; transfer: WorldInstance };
  spotPrices: FakeSpotPrice[];
  /** For startFakeBatch: render chunks alternate spot (even index) / on-demand; copy and publish on transfer. */
  placeContainer(job: { queue: string; arrayIndex?: number }): string;
  /** The fakes' endpoints, for awsEnv (a daemon's AWS_ENDPOINT_URL_PRICING/EC2/ECS). */
  endpoints: { pricing: string; ec2: string; ecs: string };
  /** The daemon's ECS and EC2 clients (createContainerInstances, createEc2) over the fakes. */
  clients(batch: IBatch): CostClients;
  /** The daemon's Price List client (createPricing) over the fake. */
  pricingClient: IPricing;
  /** A job's spend from the fake Batch's attempts, the fleet and the price tables (not daemon code). */
  expectedSpend(batch: FakeBatch, batchIds: string[], now?: number): number;
}

export async function startCostWorld(
  t: Test,
  options: {
    scale?: number;
    spotChangeAt?: number;
    /** On-demand USD/hour per instance (before `scale`), and the spot price of the spot one. */
    prices?: { spot?: number; onDemand?: number; transfer?: number; spotMarket?: number };
  } = {},
): Promise<CostWorld> {
  const scale = options.scale ?? 1;
  const hour = 3_600_000;
  const now = Date.now();
  const instance = (
    cluster: string,
    id: string,
    type: string,
    zone: string,
    vcpu: number,
    spot: boolean,
    usd: number,
  ): WorldInstance => ({
    cluster,
    id,
    ec2InstanceId: `i-0${id}`,
    instanceType: type,
    availabilityZone: zone,
    vcpu,
    spot,
    usdPerHour: usd * scale,
  });
  const instances = {
    spot: instance(
      'skyfarm-cpu-spot_Batch_1a2b',
      'a11ce5',
      'c6i.xlarge',
      'us-east-1a',
      4,
      true,
      options.prices?.spot ?? 0.17,
    ),
    onDemand: instance(
      'skyfarm-cpu-od_Batch_3c4d',
      'b0b0d0',
      'm6i.2xlarge',
      'us-east-1b',
      8,
      false,
      options.prices?.onDemand ?? 0.384,
    ),
    transfer: instance(
      'skyfarm-transfer_Batch_5e6f',
      'c0ffee',
      'c6i.large',
      'us-east-1a',
      2,
      false,
      options.prices?.transfer ?? 0.085,
    ),
  };
  const spotPrices: FakeSpotPrice[] = [
    {
      instanceType: 'c6i.xlarge',
      availabilityZone: 'us-east-1a',
      since: now - 3 * hour,
      usdPerHour: (options.prices?.spotMarket ?? 0.0612) * scale,
    },
    {
      instanceType: 'c6i.xlarge',
      availabilityZone: 'us-east-1b',
      since: now - 3 * hour,
      usdPerHour: 0.09 * scale,
    },
    {
      instanceType: 'c6i.xlarge',
      availabilityZone: 'us-east-1a',
      since: options.spotChangeAt ?? now + 365 * 24 * hour,
      usdPerHour: 0.0733 * scale,
    },
  ];
  const all = Object.values(instances);
  const pricing = await startFakePricing({
    products: all.map((i) => ({
      instanceType: i.instanceType,
      regionCode: 'us-east-1',
      vcpu: i.vcpu,
      memoryGiB: i.vcpu * 2,
      usdPerHour: i.usdPerHour,
    })),
    // S3/EFS (us-east-1 list prices), for the storage and requests line.
    storage: {
      regionCode: 'us-east-1',
      s3StandardGbMonth: 0.023,
      s3Tier1PerRequest: 0.000005,
      s3Tier2PerRequest: 0.0000004,
      efsStandardGbMonth: 0.3,
    },
  });
  t.teardown(() => pricing.close());
  const ec2 = await startFakeEc2({
    spotPrices,
    instances: all.map((i) => ({
      instanceId: i.ec2InstanceId,
      instanceType: i.instanceType,
      availabilityZone: i.availabilityZone,
      spot: i.spot,
    })),
  });
  t.teardown(() => ec2.close());
  const ecs = await startFakeEcs({ instances: all.map((i) => ({ ...i, memoryMiB: i.vcpu * 2048 })) });
  t.teardown(() => ecs.close());
  const endpoints = { pricing: pricing.endpoint, ec2: ec2.endpoint, ecs: ecs.endpoint };
  // Settings as the daemon reads them from its environment (dummy keys, the fakes' endpoints).
  const env = awsEnv({ s3: 'http://127.0.0.1:9', ...endpoints });
  const pricingClient = createPricing(settingsFromEnv(env, 'PRICING'));
  const containerInstances = createContainerInstances(settingsFromEnv(env, 'ECS'));
  const ec2Client = createEc2(settingsFromEnv(env, 'EC2'));
  t.teardown(() => {
    pricingClient.destroy();
    containerInstances.destroy();
    ec2Client.destroy();
  });

  const placed = (job: FakeJob, attemptArn: string | undefined) =>
    all.find((i) => containerInstanceArn(i) === attemptArn);
  const vcpusOf = (job: FakeJob) =>
    Number(job.definition.resourceRequirements?.find((r) => r.type === 'VCPU')?.value ?? NaN);
  const spotUsd = (type: string, zone: string, start: number, end: number) => {
    const points = spotPrices
      .filter((p) => p.instanceType === type && p.availabilityZone === zone)
      .sort((a, b) => a.since - b.since);
    let usd = 0;
    for (let i = 0; i < points.length; i++) {
      const from = Math.max(start, points[i]!.since);
      const to = Math.min(end, points[i + 1]?.since ?? Infinity);
      if (to > from) usd += ((to - from) / hour) * points[i]!.usdPerHour;
    }
    return usd;
  };

  return {
    pricing,
    ec2,
    ecs,
    instances,
    spotPrices,
    endpoints,
    placeContainer: (job) => {
      if (!/render|cpu|gpu/.test(job.queue)) return containerInstanceArn(instances.transfer);
      return containerInstanceArn((job.arrayIndex ?? 0) % 2 === 0 ? instances.spot : instances.onDemand);
    },
    clients: (batch) => ({
      batch,
      containerInstances,
      ec2: ec2Client,
      region: 'us-east-1',
    }),
    pricingClient,
    expectedSpend: (batch, batchIds, at = Date.now()) => {
      let usd = 0;
      for (const id of batchIds) {
        const job = batch.jobs.get(id);
        if (!job) continue;
        const runs = job.children?.length ? job.children : [job];
        for (const run of runs) {
          const attempts = [...run.attempts, ...(run.current ? [run.current] : [])];
          for (const attempt of attempts) {
            if (attempt.startedAt === undefined) continue;
            const on = placed(run, attempt.container.containerInstanceArn);
            if (!on) throw new Error(`attempt of ${run.jobId} was placed nowhere`);
            const end = attempt.stoppedAt ?? at;
            const share = Math.min(1, vcpusOf(run) / on.vcpu);
            const instanceUsd = on.spot
              ? spotUsd(on.instanceType, on.availabilityZone, attempt.startedAt, end)
              : ((end - attempt.startedAt) / hour) * on.usdPerHour;
            usd += share * instanceUsd;
          }
        }
      }
      return usd;
    },
  };
}
