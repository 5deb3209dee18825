// A fake Amazon ECS endpoint (JSON 1.1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`, as the
// real @aws-sdk/client-ecs speaks it): the container instances of AWS Batch's clusters, for
// DescribeContainerInstances. Behaviour: see SPEC.md beside this file.
import { AwsJsonError, startJsonEndpoint } from '../json11.js';

export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';

export interface FakeContainerInstance {
  cluster: string;
  /** The id part of the ARN (`…:container-instance/<cluster>/<id>`). */
  id: string;
  ec2InstanceId: string;
  instanceType: string;
  availabilityZone: string;
  vcpu: number;
  memoryMiB: number;
  gpu?: number;
}

export interface FakeEcs {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown>; at: number }>;
  /** Every call answers AccessDeniedException while set. */
  deny(denied: boolean): void;
  close(): Promise<void>;
}

export function containerInstanceArn(instance: Pick<FakeContainerInstance, 'cluster' | 'id'>): string {
  return `arn:aws:ecs:${REGION}:${ACCOUNT}:container-instance/${instance.cluster}/${instance.id}`;
}

function clusterName(value: string): string {
  const match = /^arn:aws:ecs:[^:]*:\d{12}:cluster\/(.+)$/.exec(value);
  return match ? match[1]! : value;
}

function describe(instance: FakeContainerInstance): Record<string, unknown> {
  const resources = [
    { name: 'CPU', type: 'INTEGER', integerValue: instance.vcpu * 1024, doubleValue: 0, longValue: 0 },
    { name: 'MEMORY', type: 'INTEGER', integerValue: instance.memoryMiB, doubleValue: 0, longValue: 0 },
    ...(instance.gpu
      ? [
          {
            name: 'GPU',
            type: 'STRINGSET',
            stringSetValue: Array.from({ length: instance.gpu }, (_, i) => `GPU-${instance.id}-${i}`),
            doubleValue: 0,
            longValue: 0,
            integerValue: 0,
          },
        ]
      : []),
  ];
  return {
    containerInstanceArn: containerInstanceArn(instance),
    ec2InstanceId: instance.ec2InstanceId,
    version: 12,
    versionInfo: { agentVersion: '1.88.0', agentHash: 'a1b2c3d', dockerVersion: 'DockerVersion: 25.0.6' },
    remainingResources: resources,
    registeredResources: resources,
    status: 'ACTIVE',
    agentConnected: true,
    runningTasksCount: 1,
    pendingTasksCount: 0,
    attributes: [
      { name: 'ecs.instance-type', value: instance.instanceType },
      { name: 'ecs.availability-zone', value: instance.availabilityZone },
      { name: 'ecs.os-type', value: 'linux' },
      { name: 'ecs.cpu-architecture', value: 'x86_64' },
      { name: 'ecs.capability.execution-role-awslogs' },
    ],
    registeredAt: 1_765_000_000,
    tags: [],
  };
}

export async function startFakeEcs(options: { instances: FakeContainerInstance[] }): Promise<FakeEcs> {
  let denied = false;
  const endpoint = await startJsonEndpoint('AmazonEC2ContainerServiceV20141113', {
    DescribeContainerInstances: (input) => {
      if (denied) {
        throw new AwsJsonError(
          'AccessDeniedException',
          'User: arn:aws:iam::123456789012:user/artist is not authorized to perform: ecs:DescribeContainerInstances on resource: * because no identity-based policy allows the ecs:DescribeContainerInstances action',
        );
      }
      const cluster = clusterName(String(input['cluster'] ?? 'default'));
      const known = options.instances.filter((i) => i.cluster === cluster);
      if (known.length === 0) throw new AwsJsonError('ClusterNotFoundException', 'Cluster not found.');
      const wanted = input['containerInstances'];
      if (!Array.isArray(wanted) || wanted.length === 0)
        throw new AwsJsonError('InvalidParameterException', 'containerInstances can not be empty.');
      if (wanted.length > 100)
        throw new AwsJsonError('InvalidParameterException', 'containerInstances can have at most 100 items.');
      const found: Array<Record<string, unknown>> = [];
      const failures: Array<Record<string, unknown>> = [];
      for (const ref of wanted.map(String)) {
        // A container instance is named by its full ARN or by its id.
        const instance = known.find((i) => containerInstanceArn(i) === ref || i.id === ref);
        if (instance) found.push(describe(instance));
        else
          failures.push({
            arn: ref.startsWith('arn:') ? ref : containerInstanceArn({ cluster, id: ref }),
            reason: 'MISSING',
          });
      }
      return { containerInstances: found, failures };
    },
  });
  return {
    endpoint: endpoint.endpoint,
    calls: endpoint.calls,
    deny: (value) => void (denied = value),
    close: () => endpoint.close(),
  };
}
