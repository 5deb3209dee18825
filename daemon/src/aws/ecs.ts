// The instance a Batch job's container ran on: ECS DescribeContainerInstances (Batch's DescribeJobs
// gives `container.containerInstanceArn`), behind a narrow interface over the real SDK v3 client
// (@aws-sdk/client-ecs).
import type { ContainerInstance as EcsContainerInstance, ECSClient } from '@aws-sdk/client-ecs';
import type * as EcsSdk from '@aws-sdk/client-ecs';
import type { ClientSettings } from '../batch/bucket.js';
import { lazySdk } from './lazy-sdk.js';

const ecsSdk = lazySdk<typeof EcsSdk>('@aws-sdk/client-ecs');

export interface ContainerInstance {
  arn: string;
  ec2InstanceId: string;
  instanceType: string;
  availabilityZone: string;
}

export interface IContainerInstances {
  /** At most 100 ARNs of one cluster; unknown ones are left out. */
  describe(cluster: string, arns: string[]): Promise<ContainerInstance[]>;
}

export const DESCRIBE_CONTAINER_INSTANCES_LIMIT = 100;

/** `arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>` → the cluster's name. */
export function clusterOfContainerInstance(arn: string): string | undefined {
  const match = /:container-instance\/([^/]+)\/[^/]+$/.exec(arn);
  return match?.[1];
}

/** A container instance as DescribeContainerInstances answers it → the instance type and zone. */
export function toContainerInstance(
  item: Pick<EcsContainerInstance, 'containerInstanceArn' | 'ec2InstanceId' | 'attributes'>,
): ContainerInstance | undefined {
  const attribute = (name: string) => item.attributes?.find((a) => a.name === name)?.value;
  const instanceType = attribute('ecs.instance-type');
  const availabilityZone = attribute('ecs.availability-zone');
  if (!item.containerInstanceArn || !item.ec2InstanceId || !instanceType || !availabilityZone)
    return undefined;
  return {
    arn: item.containerInstanceArn,
    ec2InstanceId: item.ec2InstanceId,
    instanceType,
    availabilityZone,
  };
}

export function createContainerInstances(
  settings: ClientSettings,
): IContainerInstances & { destroy(): void } {
  let client: ECSClient | undefined;
  return {
    async describe(cluster, arns) {
      if (arns.length === 0) return [];
      if (arns.length > DESCRIBE_CONTAINER_INSTANCES_LIMIT)
        throw new Error(
          `DescribeContainerInstances takes at most ${DESCRIBE_CONTAINER_INSTANCES_LIMIT} ARNs`,
        );
      client ??= new ecsSdk.ECSClient({
        region: settings.region,
        ...(settings.credentials ? { credentials: settings.credentials } : {}),
        ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      });
      const out = await client.send(
        new ecsSdk.DescribeContainerInstancesCommand({ cluster, containerInstances: arns }),
      );
      return (out.containerInstances ?? []).flatMap((item) => {
        const found = toContainerInstance(item);
        return found ? [found] : [];
      });
    },
    destroy: () => client?.destroy(),
  };
}
