// Reads what the fake Batch endpoint needs from the real stack template (infra/skyfarm.yaml): the
// job queues, the job definitions (command, environment, parameters, retry strategy, log prefix) and
// the EventBridge rules that submit Batch jobs, so tests exercise the template's own settings.
import { loadTemplate, type TemplateValue } from '../../../daemon/src/stack/template.js';
import {
  ACCOUNT,
  REGION,
  type ComputeEnvironmentSpec,
  type EventRule,
  type JobDefinitionSpec,
  type QueueSpec,
} from './server.js';
import type { Pattern } from './events.js';

export interface TemplateFarm {
  queues: QueueSpec[];
  /** The compute environments (CloudFormation generates their names: `<LogicalId>-fake`). */
  computeEnvironments: ComputeEnvironmentSpec[];
  jobDefinitions: JobDefinitionSpec[];
  rules: EventRule[];
  /** Logical id → physical name (queues, job definitions). */
  names: Record<string, string>;
}

const COMPUTE_PARAMETERS = ['MaxVcpus', 'GpuInstanceTypes'];

export function farmFromTemplate(options: {
  bucket: string;
  namePrefix?: string;
  gpu?: boolean;
  /** Stack parameters other than the defaults (e.g. MaxVcpus: '64'); others take the template's Default. */
  parameters?: Record<string, string>;
}): TemplateFarm {
  const { template } = loadTemplate();
  const prefix = options.namePrefix ?? 'skyfarm';
  const names: Record<string, string> = {};
  const included = (resource: { Condition?: string }) =>
    resource.Condition !== 'GpuEnabled' || options.gpu !== false;

  const resolve = (value: TemplateValue | undefined): TemplateValue | undefined => {
    if (value === null || value === undefined || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((v) => resolve(v)!) as TemplateValue;
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === 'Ref') {
      const ref = value['Ref'] as string;
      if (ref === 'NamePrefix') return prefix;
      if (ref === 'Bucket') return options.bucket;
      if (ref === 'AWS::Region') return REGION;
      if (ref === 'AWS::AccountId') return ACCOUNT;
      if (ref === 'AWS::Partition') return 'aws';
      if (ref === 'Repository.RepositoryUri')
        return `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${prefix}/worker`;
      if (ref === 'DefaultBlenderVersion')
        return String(
          (template.Parameters?.['DefaultBlenderVersion'] as { Default?: string })?.Default ?? '4.2.3',
        );
      if (names[ref]) return names[ref]!;
      // The compute environments' parameters only: other references stay visibly unresolved.
      const parameter = COMPUTE_PARAMETERS.includes(ref)
        ? (template.Parameters?.[ref] as { Type?: string; Default?: unknown } | undefined)
        : undefined;
      const given =
        options.parameters?.[ref] ??
        (parameter?.Default === undefined ? undefined : String(parameter.Default));
      if (parameter && given !== undefined) {
        if (parameter.Type === 'Number') return Number(given);
        if (parameter.Type === 'CommaDelimitedList') return given.split(',').map((v) => v.trim());
        return given;
      }
      return `unresolved:${ref}`;
    }
    if (keys.length === 1 && keys[0] === 'Fn::Sub' && typeof value['Fn::Sub'] === 'string') {
      return (value['Fn::Sub'] as string).replace(/\$\{([^}]+)\}/g, (_, name: string) => {
        const resolved = resolve({ Ref: name === 'Repository.RepositoryUri' ? name : name.split('.')[0]! });
        return typeof resolved === 'string' ? resolved : `unresolved:${name}`;
      });
    }
    if (keys.length === 1 && keys[0]!.startsWith('Fn::')) return `unresolved:${keys[0]}`;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)!]));
  };

  const resources = Object.entries(template.Resources).filter(([, r]) => included(r));
  // Names first, so references between resources resolve.
  for (const [id, resource] of resources) {
    if (resource.Type === 'AWS::Batch::JobQueue')
      names[id] = String(resolve(resource.Properties?.['JobQueueName']));
    if (resource.Type === 'AWS::Batch::JobDefinition')
      names[id] = String(resolve(resource.Properties?.['JobDefinitionName']));
    if (resource.Type === 'AWS::Batch::ComputeEnvironment') names[id] = `${id}-fake`;
  }
  const queues: QueueSpec[] = [];
  const computeEnvironments: ComputeEnvironmentSpec[] = [];
  const jobDefinitions: JobDefinitionSpec[] = [];
  const rules: EventRule[] = [];
  for (const [id, resource] of resources) {
    const props = (resolve(resource.Properties as TemplateValue) ?? {}) as Record<string, TemplateValue>;
    if (resource.Type === 'AWS::Batch::JobQueue') {
      const order =
        (props['ComputeEnvironmentOrder'] as Array<{ Order: number; ComputeEnvironment: string }>) ?? [];
      queues.push({
        name: names[id]!,
        gpu: /gpu/i.test(id),
        computeEnvironments: [...order]
          .sort((a, b) => a.Order - b.Order)
          .map((o) => String(o.ComputeEnvironment)),
      });
    } else if (resource.Type === 'AWS::Batch::ComputeEnvironment') {
      const compute = props['ComputeResources'] as Record<string, TemplateValue> | undefined;
      computeEnvironments.push({
        name: names[id]!,
        ...(compute
          ? {
              resourceType: String(compute['Type']) as ComputeEnvironmentSpec['resourceType'] & string,
              maxvCpus: Number(compute['MaxvCpus']),
              ...(Array.isArray(compute['InstanceTypes'])
                ? { instanceTypes: (compute['InstanceTypes'] as TemplateValue[]).map(String) }
                : {}),
              ...(compute['AllocationStrategy']
                ? { allocationStrategy: String(compute['AllocationStrategy']) }
                : {}),
              ...(compute['BidPercentage'] !== undefined
                ? { bidPercentage: Number(compute['BidPercentage']) }
                : {}),
            }
          : {}),
      });
    } else if (resource.Type === 'AWS::Batch::JobDefinition') {
      const container = (props['ContainerProperties'] ?? {}) as Record<string, TemplateValue>;
      const env = ((container['Environment'] as Array<{ Name: string; Value: string }>) ?? []).map((e) => [
        e.Name,
        e.Value,
      ]);
      const retry = (props['RetryStrategy'] ?? {}) as {
        Attempts?: number;
        EvaluateOnExit?: Array<Record<string, string>>;
      };
      const logOptions =
        ((container['LogConfiguration'] as { Options?: Record<string, string> }) ?? {}).Options ?? {};
      jobDefinitions.push({
        name: names[id]!,
        command: (container['Command'] as string[]) ?? [],
        environment: Object.fromEntries(env),
        parameters: (props['Parameters'] as Record<string, string>) ?? {},
        retryStrategy: {
          attempts: retry.Attempts ?? 1,
          evaluateOnExit: (retry.EvaluateOnExit ?? []).map((rule) => ({
            ...(rule['OnStatusReason'] ? { onStatusReason: rule['OnStatusReason'] } : {}),
            ...(rule['OnReason'] ? { onReason: rule['OnReason'] } : {}),
            ...(rule['OnExitCode'] ? { onExitCode: rule['OnExitCode'] } : {}),
            action: (rule['Action'] ?? 'EXIT').toUpperCase() as 'RETRY' | 'EXIT',
          })),
        },
        ...(logOptions['awslogs-stream-prefix']
          ? { logStreamPrefix: logOptions['awslogs-stream-prefix'] }
          : {}),
        propagateTags: Boolean(props['PropagateTags']),
        ...(typeof container['Image'] === 'string' ? { image: container['Image'] } : {}),
        ...(Array.isArray(container['ResourceRequirements'])
          ? {
              resourceRequirements: (
                container['ResourceRequirements'] as Array<{ Type: string; Value: string }>
              ).map((r) => ({ type: r.Type, value: String(r.Value) })),
            }
          : {}),
      });
    } else if (resource.Type === 'AWS::Events::Rule') {
      const targets = (props['Targets'] as Array<Record<string, TemplateValue>>) ?? [];
      for (const target of targets) {
        const batch = target['BatchParameters'] as Record<string, TemplateValue> | undefined;
        if (!batch) continue;
        const transformer = target['InputTransformer'] as EventRule['target']['inputTransformer'];
        const arraySize = (batch['ArrayProperties'] as { Size?: number } | undefined)?.Size;
        const attempts = (batch['RetryStrategy'] as { Attempts?: number } | undefined)?.Attempts;
        rules.push({
          name: `${id}/${String(target['Id'])}`,
          pattern: props['EventPattern'] as Pattern,
          target: {
            jobQueue: String(target['Arn']),
            jobDefinition: String(batch['JobDefinition']),
            jobName: String(batch['JobName']),
            ...(arraySize ? { arraySize } : {}),
            ...(attempts ? { attempts } : {}),
            ...(transformer ? { inputTransformer: transformer } : {}),
          },
        });
      }
    }
  }
  return { queues, computeEnvironments, jobDefinitions, rules, names };
}
