// What a Batch job queue can run on: its compute environments in order (DescribeJobQueues →
// DescribeComputeEnvironments), behind a narrow interface over the real SDK v3 client. The queue's
// price at full scale (daemon/src/cost/queue-price.ts) is read from these.
import type { BatchClient, ComputeEnvironmentDetail } from '@aws-sdk/client-batch';
import type * as BatchSdk from '@aws-sdk/client-batch';
import type { ClientSettings } from './bucket.js';
import { lazySdk } from '../aws/lazy-sdk.js';

const batchSdk = lazySdk<typeof BatchSdk>('@aws-sdk/client-batch');

export interface QueueEnvironment {
  name: string;
  /** computeResources.type; UNMANAGED: an environment without computeResources (its own instances). */
  kind: 'EC2' | 'SPOT' | 'FARGATE' | 'FARGATE_SPOT' | 'UNMANAGED' | string;
  maxvCpus?: number;
  /** Exact types (`c6i.xlarge`), families (`c6i`) or Batch's choices (`optimal`, `default_x86_64`). */
  instanceTypes: string[];
  /** SPOT: the most it pays, as a percentage of the on-demand price (absent: up to on-demand). */
  bidPercentage?: number;
  state?: string;
}

export interface IQueueEnvironments {
  /** The queue's compute environments in its order; undefined when Batch does not know the queue. */
  environments(queue: string): Promise<QueueEnvironment[] | undefined>;
}

/** Pages followed at most per call (100 items a page: far more than a queue can have). */
const MAX_PAGES = 10;

function toEnvironment(detail: ComputeEnvironmentDetail): QueueEnvironment {
  const compute = detail.computeResources;
  return {
    name: detail.computeEnvironmentName ?? detail.computeEnvironmentArn ?? '?',
    kind: compute?.type ?? 'UNMANAGED',
    ...(compute?.maxvCpus !== undefined ? { maxvCpus: compute.maxvCpus } : {}),
    instanceTypes: compute?.instanceTypes ?? [],
    ...(compute?.bidPercentage !== undefined ? { bidPercentage: compute.bidPercentage } : {}),
    ...(detail.state ? { state: detail.state } : {}),
  };
}

export function createQueueEnvironments(settings: ClientSettings): IQueueEnvironments & { destroy(): void } {
  let client: BatchClient | undefined;
  const batch = () =>
    (client ??= new batchSdk.BatchClient({
      region: settings.region,
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    }));
  return {
    async environments(queue) {
      let order: Array<{ order: number; arn: string }> | undefined;
      let token: string | undefined;
      for (let page = 0; page < MAX_PAGES && !order; page++) {
        const out: BatchSdk.DescribeJobQueuesCommandOutput = await batch().send(
          new batchSdk.DescribeJobQueuesCommand({
            jobQueues: [queue],
            ...(token ? { nextToken: token } : {}),
          }),
        );
        const found = out.jobQueues?.find((q) => q.jobQueueName === queue || q.jobQueueArn === queue);
        if (found)
          order = (found.computeEnvironmentOrder ?? []).flatMap((o) =>
            o.computeEnvironment ? [{ order: o.order ?? 0, arn: o.computeEnvironment }] : [],
          );
        token = out.nextToken;
        if (!token) break;
      }
      if (!order) return undefined;
      order.sort((a, b) => a.order - b.order);
      const details = new Map<string, ComputeEnvironmentDetail>();
      token = undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const out: BatchSdk.DescribeComputeEnvironmentsCommandOutput = await batch().send(
          new batchSdk.DescribeComputeEnvironmentsCommand({
            computeEnvironments: order.map((o) => o.arn),
            ...(token ? { nextToken: token } : {}),
          }),
        );
        for (const detail of out.computeEnvironments ?? []) {
          if (detail.computeEnvironmentArn) details.set(detail.computeEnvironmentArn, detail);
          if (detail.computeEnvironmentName) details.set(detail.computeEnvironmentName, detail);
        }
        token = out.nextToken;
        if (!token) break;
      }
      return order.map(({ arn }) => {
        const detail = details.get(arn);
        // Listed by the queue but not described: said as such, never treated as empty.
        return detail ? toEnvironment(detail) : { name: arn, kind: 'MISSING', instanceTypes: [] };
      });
    },
    destroy: () => client?.destroy(),
  };
}
