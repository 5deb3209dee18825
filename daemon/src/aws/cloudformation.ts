// The narrow CloudFormation interface the stack service uses, and its implementation over the real
// SDK v3 client. Pagination and error mapping live here so callers see plain data and SkyfarmErrors.
import type {
  CloudFormationClient,
  Capability,
  DescribeChangeSetCommandOutput,
  Parameter,
} from '@aws-sdk/client-cloudformation';
import type * as CfnSdk from '@aws-sdk/client-cloudformation';
import type { AwsConfig } from './config.js';
import { awsErrorCode, mapAwsError } from './errors.js';
import { lazySdk } from './lazy-sdk.js';

const cfnSdk = lazySdk<typeof CfnSdk>('@aws-sdk/client-cloudformation');

export interface StackDescription {
  stackId: string;
  stackName: string;
  status: string;
  statusReason?: string;
  outputs: Record<string, string>;
  tags: Record<string, string>;
  parameters: Record<string, string>;
  creationTime?: Date;
  lastUpdatedTime?: Date;
}

export interface StackEventRecord {
  eventId: string;
  stackId: string;
  stackName: string;
  logicalId: string;
  physicalId?: string;
  resourceType: string;
  status: string;
  reason?: string;
  timestamp: Date;
}

export interface ParameterInput {
  key: string;
  value?: string;
  usePrevious?: boolean;
}

export interface StackInput {
  stackName: string;
  templateBody: string;
  parameters: ParameterInput[];
  tags: Record<string, string>;
  capabilities: string[];
}

export interface ResourceChange {
  action: string;
  logicalId: string;
  resourceType: string;
  replacement?: string;
}

export interface ChangeSetDescription {
  changeSetId: string;
  status: string;
  executionStatus: string;
  statusReason?: string;
  changes: ResourceChange[];
}

export interface ICloudFormation {
  /** undefined when no stack has this name (or id). */
  describeStack(nameOrId: string): Promise<StackDescription | undefined>;
  /** Returns the new stack id. Failed creates roll back (the stack ends ROLLBACK_COMPLETE). */
  createStack(input: StackInput): Promise<string>;
  createChangeSet(
    input: StackInput & { changeSetName: string },
  ): Promise<{ changeSetId: string; stackId: string }>;
  describeChangeSet(stackName: string, changeSetId: string): Promise<ChangeSetDescription>;
  executeChangeSet(stackName: string, changeSetId: string): Promise<void>;
  deleteChangeSet(stackName: string, changeSetId: string): Promise<void>;
  deleteStack(nameOrId: string): Promise<void>;
  /**
   * Stack events, newest first, following NextToken until the event `stopAtEventId` (excluded), until
   * `maxEvents` were read, or until the history ends.
   */
  describeStackEvents(
    nameOrId: string,
    options?: { stopAtEventId?: string; maxEvents?: number },
  ): Promise<StackEventRecord[]>;
}

/** Safety bound for one describeStackEvents walk (100 events per real page). */
const MAX_EVENT_PAGES = 200;

function toParameters(params: ParameterInput[]): Parameter[] {
  return params.map((p) =>
    p.usePrevious
      ? { ParameterKey: p.key, UsePreviousValue: true }
      : { ParameterKey: p.key, ParameterValue: p.value ?? '' },
  );
}

function toTags(tags: Record<string, string>) {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export function isStackMissing(error: unknown): boolean {
  return (
    awsErrorCode(error) === 'ValidationError' && /does not exist/.test(String((error as Error)?.message))
  );
}

export function createCloudFormation(cfg: AwsConfig, client?: CloudFormationClient): ICloudFormation {
  const endpoint = cfg.endpoints.cloudformation;
  const cf =
    client ??
    new cfnSdk.CloudFormationClient({
      region: cfg.region,
      credentials: cfg.credentials,
      ...(cfg.profile ? { profile: cfg.profile } : {}),
      ...(endpoint ? { endpoint } : {}),
    });
  const call = async <T>(action: string, resource: string | undefined, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw mapAwsError(error, { action: `cloudformation:${action}`, resource, endpoint });
    }
  };

  return {
    async describeStack(nameOrId) {
      let out;
      try {
        out = await cf.send(new cfnSdk.DescribeStacksCommand({ StackName: nameOrId }));
      } catch (error) {
        if (isStackMissing(error)) return undefined;
        throw mapAwsError(error, { action: 'cloudformation:DescribeStacks', resource: nameOrId, endpoint });
      }
      const s = out.Stacks?.[0];
      if (!s) return undefined;
      const description: StackDescription = {
        stackId: s.StackId ?? nameOrId,
        stackName: s.StackName ?? nameOrId,
        status: s.StackStatus ?? 'UNKNOWN',
        outputs: Object.fromEntries((s.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? ''])),
        tags: Object.fromEntries((s.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
        parameters: Object.fromEntries(
          (s.Parameters ?? []).map((p) => [p.ParameterKey ?? '', p.ParameterValue ?? '']),
        ),
      };
      if (s.StackStatusReason) description.statusReason = s.StackStatusReason;
      if (s.CreationTime) description.creationTime = s.CreationTime;
      if (s.LastUpdatedTime) description.lastUpdatedTime = s.LastUpdatedTime;
      return description;
    },

    createStack(input) {
      return call('CreateStack', input.stackName, async () => {
        const out = await cf.send(
          new cfnSdk.CreateStackCommand({
            StackName: input.stackName,
            TemplateBody: input.templateBody,
            Parameters: toParameters(input.parameters),
            Capabilities: input.capabilities as Capability[],
            Tags: toTags(input.tags),
            OnFailure: 'ROLLBACK',
          }),
        );
        if (!out.StackId) throw new Error('CreateStack returned no StackId');
        return out.StackId;
      });
    },

    createChangeSet(input) {
      return call('CreateChangeSet', input.stackName, async () => {
        const out = await cf.send(
          new cfnSdk.CreateChangeSetCommand({
            StackName: input.stackName,
            ChangeSetName: input.changeSetName,
            ChangeSetType: 'UPDATE',
            TemplateBody: input.templateBody,
            Parameters: toParameters(input.parameters),
            Capabilities: input.capabilities as Capability[],
            Tags: toTags(input.tags),
          }),
        );
        if (!out.Id) throw new Error('CreateChangeSet returned no Id');
        return { changeSetId: out.Id, stackId: out.StackId ?? input.stackName };
      });
    },

    describeChangeSet(stackName, changeSetId) {
      return call('DescribeChangeSet', changeSetId, async () => {
        const changes: ResourceChange[] = [];
        let token: string | undefined;
        let first: DescribeChangeSetCommandOutput | undefined;
        for (let page = 0; page < MAX_EVENT_PAGES; page++) {
          const out = await cf.send(
            new cfnSdk.DescribeChangeSetCommand({
              StackName: stackName,
              ChangeSetName: changeSetId,
              NextToken: token,
            }),
          );
          first ??= out;
          for (const c of out.Changes ?? []) {
            const rc = c.ResourceChange;
            if (!rc) continue;
            const change: ResourceChange = {
              action: rc.Action ?? '',
              logicalId: rc.LogicalResourceId ?? '',
              resourceType: rc.ResourceType ?? '',
            };
            if (rc.Replacement) change.replacement = rc.Replacement;
            changes.push(change);
          }
          token = out.NextToken;
          if (!token) break;
        }
        const result: ChangeSetDescription = {
          changeSetId: first?.ChangeSetId ?? changeSetId,
          status: first?.Status ?? 'UNKNOWN',
          executionStatus: first?.ExecutionStatus ?? 'UNAVAILABLE',
          changes,
        };
        if (first?.StatusReason) result.statusReason = first.StatusReason;
        return result;
      });
    },

    executeChangeSet(stackName, changeSetId) {
      return call('ExecuteChangeSet', stackName, async () => {
        await cf.send(
          new cfnSdk.ExecuteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetId }),
        );
      });
    },

    deleteChangeSet(stackName, changeSetId) {
      return call('DeleteChangeSet', stackName, async () => {
        await cf.send(
          new cfnSdk.DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetId }),
        );
      });
    },

    deleteStack(nameOrId) {
      return call('DeleteStack', nameOrId, async () => {
        await cf.send(new cfnSdk.DeleteStackCommand({ StackName: nameOrId }));
      });
    },

    describeStackEvents(nameOrId, options = {}) {
      return call('DescribeStackEvents', nameOrId, async () => {
        const events: StackEventRecord[] = [];
        const max = options.maxEvents ?? Number.POSITIVE_INFINITY;
        let token: string | undefined;
        for (let page = 0; page < MAX_EVENT_PAGES; page++) {
          const out = await cf.send(
            new cfnSdk.DescribeStackEventsCommand({ StackName: nameOrId, NextToken: token }),
          );
          for (const e of out.StackEvents ?? []) {
            if (options.stopAtEventId !== undefined && e.EventId === options.stopAtEventId) return events;
            const record: StackEventRecord = {
              eventId: e.EventId ?? '',
              stackId: e.StackId ?? '',
              stackName: e.StackName ?? '',
              logicalId: e.LogicalResourceId ?? '',
              resourceType: e.ResourceType ?? '',
              status: e.ResourceStatus ?? '',
              timestamp: e.Timestamp ?? new Date(0),
            };
            if (e.PhysicalResourceId) record.physicalId = e.PhysicalResourceId;
            if (e.ResourceStatusReason) record.reason = e.ResourceStatusReason;
            events.push(record);
            if (events.length >= max) return events;
          }
          token = out.NextToken;
          if (!token) break;
        }
        return events;
      });
    },
  };
}
