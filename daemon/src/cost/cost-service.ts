// A job's cost from AWS: its Batch jobs (copy, every render chunk, publish; the attempts of each), the
// instances they ran on (ECS container instance → type and zone; EC2 → spot or on-demand) and those
// instances' prices (PriceBook). Instances never change type, so what ECS and EC2 said is kept for
// the daemon's life. The result is a JobCost (protocol) plus its lines for `skyfarm cost --json`.
import type { CostLine, JobCost, StorageCost } from '../../../protocol/generated/protocol.js';
import type { IBatch, BatchJobInfo } from '../batch/batch-api.js';
import { DESCRIBE_LIMIT } from '../batch/batch-api.js';
import type { AwsJobStore, TrackedStage } from '../batch/aws-store.js';
import type { FarmSettings } from '../batch/farm.js';
import { effectiveChunkSize } from '../batch/layout.js';
import { chunkFrames } from '../render/frames.js';
import { FINISHED_STATES, type JobRepo } from '../jobs/job-repo.js';
import { SkyfarmError } from '../errors.js';
import type { IContainerInstances, ContainerInstance } from '../aws/ecs.js';
import { clusterOfContainerInstance, DESCRIBE_CONTAINER_INSTANCES_LIMIT } from '../aws/ecs.js';
import type { IEc2, Ec2Instance } from '../aws/ec2.js';
import type { PriceBook } from './price-book.js';
import {
  basisOf,
  projection,
  runsOf,
  spendLine,
  type Run,
  type SpendLine,
  type SpendSources,
} from './spend.js';
import { CostUnknown, costUnknownFrom, costUnknownText } from './unknown.js';
import { storageCost, type JobObjects } from './storage.js';

export interface CostClients {
  batch: IBatch;
  containerInstances: IContainerInstances;
  ec2: IEc2;
  /** The farm's region (prices are the region's). */
  region: string;
}

export interface CostServiceDeps {
  repo: JobRepo;
  store: AwsJobStore;
  prices: PriceBook;
  clients: (farm: FarmSettings) => CostClients;
  /** The job's objects in its farm's bucket (jobs/<jobId>/), for the storage line. */
  objects?: (farm: FarmSettings, jobId: string) => Promise<JobObjects>;
  now?: () => number;
}

export interface CostReport {
  cost: JobCost;
  lines: CostLine[];
}

const STAGES: TrackedStage[] = ['copy', 'render', 'publish', 'cleanup'];
const SETTLED_LIMIT = 50_000;

export class CostService {
  private readonly containers = new Map<string, ContainerInstance>();
  private readonly instances = new Map<string, Ec2Instance>();
  /**
   * Batch jobs that ended (SUCCEEDED/FAILED) never change again: a job of 10,000 chunks is described
   * whole once, then only its unfinished chunks are. Bounded: the oldest are dropped past the limit.
   */
  private readonly settled = new Map<string, BatchJobInfo>();

  constructor(private readonly deps: CostServiceDeps) {}

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  /** True for jobs that run on AWS (the only ones with a cost here). */
  isAws(jobId: string): boolean {
    return this.deps.store.get(jobId) !== undefined;
  }

  /** The job's cost now. Throws JOB_NOT_FOUND, or BAD_ARGUMENT for a job that did not run on AWS. */
  async report(jobId: string): Promise<CostReport> {
    const job = this.deps.repo.get(jobId);
    if (!job) throw new SkyfarmError('JOB_NOT_FOUND', `no job ${jobId}`);
    const row = this.deps.store.get(jobId);
    if (!row)
      throw new SkyfarmError('BAD_ARGUMENT', `job ${jobId} rendered on this machine: it has no AWS cost`);
    const budget = row.maxCostUsd ?? undefined;
    const at = new Date(this.now()).toISOString();
    let lines: SpendLine[];
    let chunkStatus: Map<number, BatchJobInfo>;
    try {
      const clients = this.deps.clients(row.farm);
      const found = await this.runs(clients, row.batchIds, row.chunks ?? 1);
      chunkStatus = found.chunks;
      await this.prefetch(clients, found.runs);
      const sources = this.sources(clients);
      lines = [];
      for (const run of found.runs) lines.push(await spendLine(run, sources));
    } catch (error) {
      const unknown = error instanceof CostUnknown ? error : costUnknownFrom(error, 'batch:DescribeJobs');
      return {
        cost: {
          known: false,
          unknownReason: unknown.reason,
          ...(unknown.action ? { missingAction: unknown.action } : {}),
          ...(budget !== undefined ? { maxCostUsd: budget } : {}),
          updatedAt: at,
        },
        lines: [],
      };
    }
    const usd = lines.reduce((sum, line) => sum + line.usd, 0);
    const finished = FINISHED_STATES.has(job.state);
    const framesPerChunk = this.framesPerChunk(jobId, row.chunks ?? 1, job.framesTotal);
    const finishedChunks = [...chunkStatus.entries()]
      .filter(([, info]) => info.status === 'SUCCEEDED')
      .map(([chunk]) => ({
        usd: lines.filter((l) => l.stage === 'render' && l.chunk === chunk).reduce((s, l) => s + l.usd, 0),
        frames: framesPerChunk[chunk] ?? 0,
      }));
    const projected = finished
      ? { usd, lowUsd: usd, highUsd: usd }
      : projection(usd, job.progress, job.framesTotal, finishedChunks);
    const cost: JobCost = {
      known: true,
      usd,
      ...(projected
        ? {
            projectedUsd: projected.usd,
            projectedLowUsd: projected.lowUsd,
            projectedHighUsd: projected.highUsd,
          }
        : {}),
      basis: lines.length ? basisOf(lines) : 'nothing has run yet',
      ...(budget !== undefined
        ? {
            maxCostUsd: budget,
            budget:
              usd >= budget ? 'reached' : projected && projected.usd > budget ? 'projected-over' : 'within',
          }
        : {}),
      updatedAt: at,
    };
    return { cost, lines: lines.map(toLine) };
  }

  /**
   * The job's S3/EFS storage and requests (a line apart from the compute cost). Unknown, with the
   * reason, when a price, the job's objects or its upload record cannot be had.
   */
  async storage(jobId: string): Promise<StorageCost> {
    const row = this.deps.store.get(jobId);
    if (!row)
      throw new SkyfarmError('BAD_ARGUMENT', `job ${jobId} rendered on this machine: it has no AWS cost`);
    try {
      if (!row.uploadStats)
        throw new CostUnknown(
          row.preparedAt
            ? 'this job was uploaded by a skyfarm that did not record what its upload stored'
            : 'the job has not been uploaded yet',
        );
      if (!this.deps.objects)
        throw new CostUnknown('this daemon cannot list the job’s objects in the bucket');
      const clients = this.deps.clients(row.farm);
      const prices = await this.deps.prices.storage(clients.region);
      let objects: JobObjects;
      try {
        objects = await this.deps.objects(row.farm, jobId);
      } catch (error) {
        throw costUnknownFrom(error, 's3:ListBucket');
      }
      let found: Run[];
      try {
        found = (await this.runs(clients, row.batchIds, row.chunks ?? 1)).runs;
      } catch (error) {
        throw costUnknownFrom(error, 'batch:DescribeJobs');
      }
      const span = found.length
        ? { start: Math.min(...found.map((r) => r.start)), end: Math.max(...found.map((r) => r.end)) }
        : undefined;
      return storageCost(row.uploadStats, objects, span, prices);
    } catch (error) {
      const unknown = error instanceof CostUnknown ? error : costUnknownFrom(error, 'pricing:GetProducts');
      const cost = {
        unknownReason: unknown.reason,
        ...(unknown.action ? { missingAction: unknown.action } : {}),
      };
      return { known: false, ...cost, text: costUnknownText(cost) };
    }
  }

  private framesPerChunk(jobId: string, chunks: number, framesTotal: number): number[] {
    const spec = this.deps.repo.spec(jobId);
    if (spec) {
      const split = chunkFrames(spec.frames, effectiveChunkSize(spec.frames.length, spec.chunkSize));
      if (split.length === chunks) return split.map((c) => c.length);
    }
    return Array.from({ length: chunks }, () => framesTotal / chunks);
  }

  /** Every run of the job's Batch jobs; render chunks are the array's children (or the render itself). */
  private async runs(
    clients: CostClients,
    batchIds: Partial<Record<TrackedStage, string>>,
    chunks: number,
  ): Promise<{ runs: Run[]; chunks: Map<number, BatchJobInfo> }> {
    const now = this.now();
    const ids = STAGES.flatMap((stage) => (batchIds[stage] ? [batchIds[stage]] : []));
    const infos = await this.describe(clients.batch, ids);
    const runs: Run[] = [];
    const chunkInfo = new Map<number, BatchJobInfo>();
    for (const stage of STAGES) {
      const info = batchIds[stage] ? infos.get(batchIds[stage]) : undefined;
      if (!info) continue;
      if (stage === 'render' && info.arraySize !== undefined) {
        const childIds = Array.from({ length: info.arraySize }, (_, i) => `${info.jobId}:${i}`);
        const children = await this.describe(clients.batch, childIds);
        for (const child of children.values()) {
          const index = child.arrayIndex ?? Number(child.jobId.split(':').pop());
          chunkInfo.set(index, child);
          runs.push(...runsOf(child, 'render', now, index));
        }
      } else {
        if (stage === 'render') chunkInfo.set(0, info);
        runs.push(...runsOf(info, stage, now, stage === 'render' && chunks === 1 ? 0 : undefined));
      }
    }
    return { runs, chunks: chunkInfo };
  }

  private async describe(batch: IBatch, ids: string[]): Promise<Map<string, BatchJobInfo>> {
    const out = new Map<string, BatchJobInfo>();
    const ask: string[] = [];
    for (const id of ids) {
      const known = this.settled.get(id);
      if (known) out.set(id, known);
      else ask.push(id);
    }
    for (let start = 0; start < ask.length; start += DESCRIBE_LIMIT) {
      for (const info of await batch.describe(ask.slice(start, start + DESCRIBE_LIMIT))) {
        out.set(info.jobId, info);
        if (info.status === 'SUCCEEDED' || info.status === 'FAILED') this.settled.set(info.jobId, info);
      }
    }
    while (this.settled.size > SETTLED_LIMIT) this.settled.delete(this.settled.keys().next().value!);
    return out;
  }

  /** The instances of many runs in few calls: up to 100 container instances of a cluster, 100 EC2 ids. */
  private async prefetch(clients: CostClients, runs: Run[]): Promise<void> {
    const byCluster = new Map<string, string[]>();
    for (const arn of new Set(
      runs.flatMap((r) => (r.containerInstanceArn ? [r.containerInstanceArn] : [])),
    )) {
      const cluster = clusterOfContainerInstance(arn);
      if (this.containers.has(arn) || !cluster) continue;
      byCluster.set(cluster, [...(byCluster.get(cluster) ?? []), arn]);
    }
    for (const [cluster, arns] of byCluster) {
      for (let start = 0; start < arns.length; start += DESCRIBE_CONTAINER_INSTANCES_LIMIT) {
        let answer: ContainerInstance[];
        try {
          answer = await clients.containerInstances.describe(
            cluster,
            arns.slice(start, start + DESCRIBE_CONTAINER_INSTANCES_LIMIT),
          );
        } catch (error) {
          throw costUnknownFrom(error, 'ecs:DescribeContainerInstances');
        }
        for (const found of answer) this.containers.set(found.arn, found);
      }
    }
    const ids = [
      ...new Set(
        runs.flatMap((r) => {
          const id = r.containerInstanceArn
            ? this.containers.get(r.containerInstanceArn)?.ec2InstanceId
            : undefined;
          return id && !this.instances.has(id) ? [id] : [];
        }),
      ),
    ];
    for (let start = 0; start < ids.length; start += 100) {
      let answer: Ec2Instance[];
      try {
        answer = await clients.ec2.instances(ids.slice(start, start + 100));
      } catch (error) {
        throw costUnknownFrom(error, 'ec2:DescribeInstances');
      }
      for (const found of answer) this.instances.set(found.instanceId, found);
    }
  }

  private sources(clients: CostClients): SpendSources {
    return {
      region: clients.region,
      containerInstance: async (arn) => {
        const known = this.containers.get(arn);
        if (known) return known;
        const cluster = clusterOfContainerInstance(arn);
        if (!cluster) throw new CostUnknown(`cannot tell the ECS cluster of container instance ${arn}`);
        let answer: ContainerInstance[];
        try {
          answer = await clients.containerInstances.describe(cluster, [arn]);
        } catch (error) {
          throw costUnknownFrom(error, 'ecs:DescribeContainerInstances');
        }
        for (const found of answer) this.containers.set(found.arn, found);
        const found = this.containers.get(arn);
        if (!found) throw new CostUnknown(`ECS no longer knows container instance ${arn}`);
        return found;
      },
      ec2Instance: async (instanceId) => {
        const known = this.instances.get(instanceId);
        if (known) return known;
        let answer: Ec2Instance[];
        try {
          answer = await clients.ec2.instances([instanceId]);
        } catch (error) {
          throw costUnknownFrom(error, 'ec2:DescribeInstances');
        }
        const found = answer.find((i) => i.instanceId === instanceId);
        if (!found) throw new CostUnknown(`EC2 does not know instance ${instanceId}`);
        this.instances.set(instanceId, found);
        return found;
      },
      onDemand: (region, type) => this.deps.prices.onDemand(region, type),
      spot: (region, type, zone, start, end) =>
        this.deps.prices.spot(clients.ec2, region, type, zone, start, end),
    };
  }
}

function toLine(line: SpendLine): CostLine {
  return { ...line, share: Math.min(1, line.share) };
}
