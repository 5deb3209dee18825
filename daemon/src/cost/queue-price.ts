// A render queue's price per hour at full scale, said before submitting ("up to $6.10/hour at 256
// vCPUs, spot"). Each of the queue's compute environments can run up to its maxvCpus, and Batch fills
// the next one in the queue's order when one is full, so the bound is the sum over them of maxvCpus ×
// the highest price per vCPU among the sizes it may launch: on-demand from the Price List, spot from
// EC2's current spot prices (the dearest zone). Anything AWS does not tell makes the figure unknown.
import type { QueueCost, QueueEnvironmentCost } from '../../../protocol/generated/protocol.js';
import type { InstanceOffer } from '../aws/pricing.js';
import type { IEc2 } from '../aws/ec2.js';
import type { IQueueEnvironments, QueueEnvironment } from '../batch/queue-environments.js';
import type { PriceBook } from './price-book.js';
import { formatUsd } from './format.js';
import { CostUnknown, costUnknownFrom, costUnknownText } from './unknown.js';

export interface QueuePriceSources {
  environments: IQueueEnvironments;
  ec2: IEc2;
  prices: PriceBook;
  /** The farm's region (prices are the region's). */
  region: string;
  now?: () => number;
}

/**
 * Batch's own instance choices, as the Batch API reference (ComputeResource.instanceTypes) names
 * their families: `optimal` is the same as `default_x86_64`.
 */
export const BATCH_CHOICES: Record<string, string[]> = {
  optimal: ['m6i', 'c6i', 'r6i', 'c7i'],
  default_x86_64: ['m6i', 'c6i', 'r6i', 'c7i'],
  default_arm64: ['m6g', 'c6g', 'r6g', 'c7g'],
};

export async function queuePrice(
  queue: string,
  sources: QueuePriceSources,
  about: Pick<QueueCost, 'device' | 'market'> = {},
): Promise<QueueCost> {
  const updatedAt = new Date(sources.now?.() ?? Date.now()).toISOString();
  try {
    let environments: QueueEnvironment[] | undefined;
    try {
      environments = await sources.environments.environments(queue);
    } catch (error) {
      // The first call is DescribeJobQueues; a denial names the action it was.
      const action = /DescribeComputeEnvironments/i.test(String((error as Error)?.message))
        ? 'batch:DescribeComputeEnvironments'
        : 'batch:DescribeJobQueues';
      throw costUnknownFrom(error, action);
    }
    if (!environments) throw new CostUnknown(`AWS Batch does not know the job queue ${queue}`);
    if (environments.length === 0)
      throw new CostUnknown(`the job queue ${queue} has no compute environments`);
    const parts: QueueEnvironmentCost[] = [];
    for (const environment of environments) parts.push(await environmentPrice(environment, sources));
    const usdPerHour = parts.reduce((sum, p) => sum + p.usdPerHour, 0);
    const vcpus = parts.reduce((sum, p) => sum + p.maxVcpus, 0);
    return {
      queue,
      ...about,
      known: true,
      usdPerHour,
      vcpus,
      environments: parts,
      text: `Queue ${queue}: up to ${formatUsd(usdPerHour)}/hour at ${vcpus} vCPUs (${basis(parts)})`,
      updatedAt,
    };
  } catch (error) {
    const unknown = error instanceof CostUnknown ? error : costUnknownFrom(error, 'batch:DescribeJobQueues');
    const cost = {
      unknownReason: unknown.reason,
      ...(unknown.action ? { missingAction: unknown.action } : {}),
    };
    return {
      queue,
      ...about,
      known: false,
      ...cost,
      text: `Queue ${queue}: ${costUnknownText(cost)}`,
      updatedAt,
    };
  }
}

/** "spot, c6i/c6a/c7i; then 256 on-demand, c6i/c6a/c7i" */
function basis(parts: QueueEnvironmentCost[]): string {
  const families = (p: QueueEnvironmentCost) => p.instanceTypes.join('/');
  if (parts.length === 1) return `${parts[0]!.market}, ${families(parts[0]!)}`;
  return parts.map((p, i) => `${i === 0 ? '' : 'then '}${p.maxVcpus} ${p.market}, ${families(p)}`).join('; ');
}

async function environmentPrice(
  environment: QueueEnvironment,
  sources: QueuePriceSources,
): Promise<QueueEnvironmentCost> {
  const { name, kind } = environment;
  if (kind === 'MISSING') throw new CostUnknown(`AWS Batch did not describe the compute environment ${name}`);
  if (kind === 'FARGATE' || kind === 'FARGATE_SPOT')
    throw new CostUnknown(
      `the compute environment ${name} is ${kind}: skyfarm prices EC2 instances, not Fargate tasks`,
    );
  if (kind !== 'EC2' && kind !== 'SPOT')
    throw new CostUnknown(
      `the compute environment ${name} is ${kind === 'UNMANAGED' ? 'unmanaged' : kind}: ` +
        'Batch does not choose its instances, so their prices are not known',
    );
  if (environment.maxvCpus === undefined)
    throw new CostUnknown(`AWS Batch reports no maxvCpus for the compute environment ${name}`);
  if (environment.instanceTypes.length === 0)
    throw new CostUnknown(`AWS Batch reports no instance types for the compute environment ${name}`);
  const offers = await offersOf(environment.instanceTypes, sources);
  const spot = kind === 'SPOT';
  let priciest: { type: string; perVcpu: number } | undefined;
  if (spot) {
    const points = await sources.prices.spotNow(
      sources.ec2,
      sources.region,
      offers.map((o) => o.instanceType),
    );
    for (const offer of offers) {
      const prices = points.filter((p) => p.instanceType === offer.instanceType).map((p) => p.usdPerHour);
      // A size with no spot price in any zone is not offered as spot here: Batch cannot launch it.
      if (prices.length === 0) continue;
      let usd = Math.max(...prices);
      // Batch launches no spot instance above bidPercentage of the on-demand price.
      if (environment.bidPercentage !== undefined)
        usd = Math.min(usd, (offer.usdPerHour * environment.bidPercentage) / 100);
      const perVcpu = usd / offer.vcpu;
      if (!priciest || perVcpu > priciest.perVcpu) priciest = { type: offer.instanceType, perVcpu };
    }
    if (!priciest)
      throw new CostUnknown(
        `EC2 reports no current spot price in ${sources.region} for any size of ${environment.instanceTypes.join('/')}`,
      );
  } else {
    for (const offer of offers) {
      const perVcpu = offer.usdPerHour / offer.vcpu;
      if (!priciest || perVcpu > priciest.perVcpu) priciest = { type: offer.instanceType, perVcpu };
    }
  }
  return {
    name,
    market: spot ? 'spot' : 'on-demand',
    maxVcpus: environment.maxvCpus,
    instanceTypes: environment.instanceTypes,
    priciestType: priciest!.type,
    usdPerVcpuHour: priciest!.perVcpu,
    usdPerHour: priciest!.perVcpu * environment.maxvCpus,
  };
}

/** The offers of every size the environment may launch: exact types, and each family's sizes. */
async function offersOf(entries: string[], sources: QueuePriceSources): Promise<InstanceOffer[]> {
  const offers = new Map<string, InstanceOffer>();
  for (const entry of entries.flatMap((e) => BATCH_CHOICES[e] ?? [e])) {
    if (entry.includes('.')) {
      const offer = await sources.prices.onDemand(sources.region, entry);
      offers.set(offer.instanceType, offer);
    } else {
      for (const offer of await sources.prices.familyOffers(sources.region, entry))
        offers.set(offer.instanceType, offer);
    }
  }
  return [...offers.values()].filter((o) => o.vcpu > 0);
}
