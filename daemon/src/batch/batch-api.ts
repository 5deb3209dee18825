// The narrow AWS Batch interface the AWS backend needs, and its implementation over the real SDK v3
// client. Everything the backend knows about a Batch job comes through `BatchJobInfo`.
import type { JobDetail } from '@aws-sdk/client-batch';
import type * as BatchSdk from '@aws-sdk/client-batch';
import type { ClientSettings } from './bucket.js';
import { lazySdk } from '../aws/lazy-sdk.js';

const batchSdk = lazySdk<typeof BatchSdk>('@aws-sdk/client-batch');

export type BatchStatus =
  'SUBMITTED' | 'PENDING' | 'RUNNABLE' | 'STARTING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';

export interface SubmitRequest {
  name: string;
  queue: string;
  definition: string;
  command: string[];
  environment: Record<string, string>;
  parameters?: Record<string, string>;
  dependsOn?: string[];
  /** ≥ 2 makes an array job. */
  arraySize?: number;
  tags?: Record<string, string>;
}

export interface BatchAttempt {
  statusReason?: string;
  exitCode?: number;
  logStreamName?: string;
  startedAt?: number;
  stoppedAt?: number;
  /** The ECS container instance the attempt ran on (what it cost is read from its instance type). */
  containerInstanceArn?: string;
}

export interface BatchJobInfo {
  jobId: string;
  name: string;
  status: BatchStatus;
  statusReason?: string;
  createdAt?: number;
  startedAt?: number;
  stoppedAt?: number;
  exitCode?: number;
  logStreamName?: string;
  attempts: BatchAttempt[];
  arraySize?: number;
  arrayIndex?: number;
  /** Children per status (array parents). */
  statusSummary?: Partial<Record<BatchStatus, number>>;
  /** The current (else last) attempt's container instance. */
  containerInstanceArn?: string;
  /** What the container reserved of its instance (resourceRequirements, else the legacy `vcpus`). */
  vcpus?: number;
  gpus?: number;
}

function requirement(job: JobDetail, type: 'VCPU' | 'GPU'): number | undefined {
  const value = job.container?.resourceRequirements?.find((r) => r.type === type)?.value;
  const parsed = value === undefined ? undefined : Number(value);
  if (parsed !== undefined && Number.isFinite(parsed)) return parsed;
  return type === 'VCPU' ? job.container?.vcpus : undefined;
}

export interface IBatch {
  submit(request: SubmitRequest): Promise<{ jobId: string }>;
  /**
   * At most 100 ids per call (the AWS limit); unknown ids are left out of the answer. `poll`: one
   * attempt, no SDK retries — the status poll backs off and tries again itself (daemon/src/batch/outage.ts),
   * so a throttled poll does not become three throttled requests.
   */
  describe(jobIds: string[], options?: { poll?: boolean }): Promise<BatchJobInfo[]>;
  /** Jobs on `queue` whose name matches exactly (any status, newest first). */
  findByName(
    queue: string,
    name: string,
  ): Promise<Array<{ jobId: string; status: BatchStatus; createdAt?: number }>>;
  terminate(jobId: string, reason: string): Promise<void>;
}

export const DESCRIBE_LIMIT = 100;

function toInfo(job: JobDetail): BatchJobInfo {
  return {
    jobId: job.jobId ?? '',
    name: job.jobName ?? '',
    status: (job.status ?? 'SUBMITTED') as BatchStatus,
    ...(job.statusReason ? { statusReason: job.statusReason } : {}),
    ...(job.createdAt !== undefined ? { createdAt: job.createdAt } : {}),
    ...(job.startedAt !== undefined ? { startedAt: job.startedAt } : {}),
    ...(job.stoppedAt !== undefined ? { stoppedAt: job.stoppedAt } : {}),
    ...(job.container?.exitCode !== undefined ? { exitCode: job.container.exitCode } : {}),
    ...(job.container?.logStreamName ? { logStreamName: job.container.logStreamName } : {}),
    attempts: (job.attempts ?? []).map((a) => ({
      ...(a.statusReason ? { statusReason: a.statusReason } : {}),
      ...(a.container?.exitCode !== undefined ? { exitCode: a.container.exitCode } : {}),
      ...(a.container?.logStreamName ? { logStreamName: a.container.logStreamName } : {}),
      ...(a.startedAt !== undefined ? { startedAt: a.startedAt } : {}),
      ...(a.stoppedAt !== undefined ? { stoppedAt: a.stoppedAt } : {}),
      ...(a.container?.containerInstanceArn
        ? { containerInstanceArn: a.container.containerInstanceArn }
        : {}),
    })),
    ...(job.arrayProperties?.size !== undefined ? { arraySize: job.arrayProperties.size } : {}),
    ...(job.arrayProperties?.index !== undefined ? { arrayIndex: job.arrayProperties.index } : {}),
    ...(job.arrayProperties?.statusSummary
      ? { statusSummary: job.arrayProperties.statusSummary as Partial<Record<BatchStatus, number>> }
      : {}),
    ...(job.container?.containerInstanceArn
      ? { containerInstanceArn: job.container.containerInstanceArn }
      : {}),
    ...(requirement(job, 'VCPU') !== undefined ? { vcpus: requirement(job, 'VCPU') } : {}),
    ...(requirement(job, 'GPU') !== undefined ? { gpus: requirement(job, 'GPU') } : {}),
  };
}

export function createBatch(settings: ClientSettings): IBatch & { destroy(): void } {
  const config = {
    region: settings.region,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
  };
  const client = new batchSdk.BatchClient(config);
  let pollClient: BatchSdk.BatchClient | undefined;
  return {
    async submit(request) {
      const out = await client.send(
        new batchSdk.SubmitJobCommand({
          jobName: request.name,
          jobQueue: request.queue,
          jobDefinition: request.definition,
          containerOverrides: {
            command: request.command,
            environment: Object.entries(request.environment).map(([name, value]) => ({ name, value })),
          },
          ...(request.parameters ? { parameters: request.parameters } : {}),
          ...(request.dependsOn?.length ? { dependsOn: request.dependsOn.map((jobId) => ({ jobId })) } : {}),
          ...(request.arraySize !== undefined && request.arraySize >= 2
            ? { arrayProperties: { size: request.arraySize } }
            : {}),
          ...(request.tags ? { tags: request.tags, propagateTags: true } : {}),
        }),
      );
      if (!out.jobId) throw new Error(`SubmitJob ${request.name} returned no job id`);
      return { jobId: out.jobId };
    },
    async describe(jobIds, options = {}) {
      if (jobIds.length === 0) return [];
      if (jobIds.length > DESCRIBE_LIMIT) throw new Error(`DescribeJobs takes at most ${DESCRIBE_LIMIT} ids`);
      const sender = options.poll
        ? (pollClient ??= new batchSdk.BatchClient({ ...config, maxAttempts: 1 }))
        : client;
      const out = await sender.send(new batchSdk.DescribeJobsCommand({ jobs: jobIds }));
      return (out.jobs ?? []).map(toInfo);
    },
    async findByName(queue, name) {
      const found: Array<{ jobId: string; status: BatchStatus; createdAt?: number }> = [];
      let nextToken: string | undefined;
      for (let page = 0; page < 50; page++) {
        const out = await client.send(
          new batchSdk.ListJobsCommand({
            jobQueue: queue,
            filters: [{ name: 'JOB_NAME', values: [name] }],
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        for (const job of out.jobSummaryList ?? []) {
          if (job.jobName === name && job.jobId) {
            found.push({
              jobId: job.jobId,
              status: (job.status ?? 'SUBMITTED') as BatchStatus,
              ...(job.createdAt !== undefined ? { createdAt: job.createdAt } : {}),
            });
          }
        }
        nextToken = out.nextToken;
        if (!nextToken) break;
      }
      return found.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0));
    },
    async terminate(jobId, reason) {
      await client.send(new batchSdk.TerminateJobCommand({ jobId, reason }));
    },
    destroy: () => {
      client.destroy();
      pollClient?.destroy();
    },
  };
}
