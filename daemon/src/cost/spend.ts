// What a job's Batch jobs have cost so far: for every attempt of copy, each render chunk and publish,
// its running time (startedAt → stoppedAt, or now) × its share of the instance it ran on (its vCPUs of
// the instance's, or its GPUs of the instance's when it reserved GPUs) × that instance's price (spot:
// the spot prices in effect over the run, time-weighted; on-demand: the Price List's). Every input
// comes from AWS; one that cannot be had makes the figure unknown (CostUnknown), never guessed.
import type { BatchJobInfo } from '../batch/batch-api.js';
import type { ContainerInstance } from '../aws/ecs.js';
import type { Ec2Instance } from '../aws/ec2.js';
import type { InstanceOffer } from '../aws/pricing.js';
import type { SpotPricePoint } from '../aws/ec2.js';
import { spotCost } from './price-book.js';
import { CostUnknown } from './unknown.js';

export type CostStage = 'copy' | 'render' | 'publish' | 'cleanup';

/** One container run: an attempt of a Batch job (the current one runs until now). */
export interface Run {
  batchJobId: string;
  stage: CostStage;
  chunk?: number;
  start: number;
  end: number;
  running: boolean;
  containerInstanceArn?: string;
  vcpus?: number;
  gpus?: number;
}

export interface SpendLine {
  batchJobId: string;
  stage: CostStage;
  chunk?: number;
  seconds: number;
  instanceType: string;
  market: 'spot' | 'on-demand';
  share: number;
  /** The instance's average price over the run, USD per hour. */
  usdPerHour: number;
  usd: number;
  running: boolean;
}

const ACTIVE = new Set(['STARTING', 'RUNNING']);

/** The runs of one Batch job: its finished attempts, and the one running now. */
export function runsOf(info: BatchJobInfo, stage: CostStage, now: number, chunk?: number): Run[] {
  const base = {
    batchJobId: info.jobId,
    stage,
    ...(chunk !== undefined ? { chunk } : {}),
    ...(info.vcpus !== undefined ? { vcpus: info.vcpus } : {}),
    ...(info.gpus !== undefined ? { gpus: info.gpus } : {}),
  };
  const runs: Run[] = [];
  for (const attempt of info.attempts) {
    if (attempt.startedAt === undefined) continue;
    runs.push({
      ...base,
      start: attempt.startedAt,
      end: Math.max(attempt.startedAt, attempt.stoppedAt ?? now),
      running: false,
      ...(attempt.containerInstanceArn ? { containerInstanceArn: attempt.containerInstanceArn } : {}),
    });
  }
  const current = info.startedAt;
  if (
    ACTIVE.has(info.status) &&
    current !== undefined &&
    !info.attempts.some((a) => a.startedAt === current)
  ) {
    runs.push({
      ...base,
      start: current,
      end: Math.max(current, now),
      running: true,
      ...(info.containerInstanceArn ? { containerInstanceArn: info.containerInstanceArn } : {}),
    });
  }
  return runs;
}

/** Where the prices and instances come from (cached by the caller). */
export interface SpendSources {
  region: string;
  containerInstance(arn: string): Promise<ContainerInstance>;
  ec2Instance(instanceId: string): Promise<Ec2Instance>;
  onDemand(region: string, instanceType: string): Promise<InstanceOffer>;
  spot(
    region: string,
    instanceType: string,
    zone: string,
    start: number,
    end: number,
  ): Promise<SpotPricePoint[]>;
}

export function shareOf(run: Run, offer: InstanceOffer): number {
  if ((run.gpus ?? 0) > 0 && offer.gpu > 0) return Math.min(1, run.gpus! / offer.gpu);
  if (run.vcpus === undefined)
    throw new CostUnknown(`AWS Batch did not report the vCPUs of job ${run.batchJobId}`);
  return Math.min(1, run.vcpus / offer.vcpu);
}

export async function spendLine(run: Run, sources: SpendSources): Promise<SpendLine> {
  if (!run.containerInstanceArn)
    throw new CostUnknown(`AWS Batch did not report the instance job ${run.batchJobId} ran on`);
  const container = await sources.containerInstance(run.containerInstanceArn);
  const instance = await sources.ec2Instance(container.ec2InstanceId);
  const offer = await sources.onDemand(sources.region, container.instanceType);
  const share = shareOf(run, offer);
  const hours = (run.end - run.start) / 3_600_000;
  let instanceUsd: number;
  if (instance.spot) {
    const points = await sources.spot(
      sources.region,
      container.instanceType,
      container.availabilityZone,
      run.start,
      run.end,
    );
    instanceUsd = spotCost(points, run.start, run.end);
  } else {
    instanceUsd = hours * offer.usdPerHour;
  }
  return {
    batchJobId: run.batchJobId,
    stage: run.stage,
    ...(run.chunk !== undefined ? { chunk: run.chunk } : {}),
    seconds: (run.end - run.start) / 1000,
    instanceType: container.instanceType,
    market: instance.spot ? 'spot' : 'on-demand',
    share,
    usdPerHour: hours > 0 ? instanceUsd / hours : instance.spot ? 0 : offer.usdPerHour,
    usd: instanceUsd * share,
    running: run.running,
  };
}

/** "c6i.xlarge spot ×3, m6i.large on-demand ×2": the instances the runs were on. */
export function basisOf(lines: SpendLine[]): string {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const key = `${line.instanceType} ${line.market}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()].map(([key, n]) => (n > 1 ? `${key} ×${n}` : key)).join(', ');
}

/**
 * The projected total from the spend and the progress (frames, and samples inside frames): spent /
 * progress, and a range from what finished chunks cost per frame (the cheapest and the dearest rate
 * carried over the rest).
 */
export function projection(
  spentUsd: number,
  progress: number,
  framesTotal: number,
  finishedChunks: Array<{ usd: number; frames: number }>,
): { usd: number; lowUsd: number; highUsd: number } | undefined {
  if (!(progress > 0)) return undefined;
  const usd = spentUsd / Math.min(1, progress);
  const rates = finishedChunks.filter((c) => c.frames > 0).map((c) => c.usd / c.frames);
  const remainingFrames = Math.max(0, 1 - progress) * framesTotal;
  const low = rates.length ? spentUsd + remainingFrames * Math.min(...rates) : usd;
  const high = rates.length ? spentUsd + remainingFrames * Math.max(...rates) : usd;
  return { usd, lowUsd: Math.min(low, usd), highUsd: Math.max(high, usd) };
}
