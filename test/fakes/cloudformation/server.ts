// A stateful fake of the CloudFormation Query API on 127.0.0.1 (see SPEC.md beside this file).
// It speaks the real wire protocol (form-encoded POST, XML in the 2010-05-15 namespace) so that the
// real @aws-sdk/client-cloudformation serialises requests and parses responses, and walks stacks
// through their status life cycle on timers, emitting per-resource events.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { parseTemplate, type CfnTemplate } from '../../../daemon/src/stack/template.js';
import {
  TemplateError,
  checkTemplate,
  evaluateConditions,
  orderByDependencies,
  planResources,
  resolveOutputs,
  resolveParameters,
  type Scope,
} from './template-eval.js';

export const XMLNS = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
export const NO_CHANGES_REASON =
  "The submitted information didn't contain changes. Submit different information to create a change set.";

export interface FakeEvent {
  eventId: string;
  stackId: string;
  stackName: string;
  logicalId: string;
  physicalId: string;
  resourceType: string;
  status: string;
  reason?: string;
  timestamp: Date;
}

interface FakeResource {
  type: string;
  physicalId: string;
  props: unknown;
}

interface FakeChangeSet {
  id: string;
  name: string;
  stackId: string;
  status: string;
  executionStatus: string;
  statusReason?: string;
  creationTime: Date;
  templateBody: string;
  template: CfnTemplate;
  rawParams: Record<string, string>;
  tags: Array<[string, string]>;
  capabilities: string[];
  changes: Array<{
    action: 'Add' | 'Modify' | 'Remove';
    logicalId: string;
    type: string;
    physicalId?: string;
  }>;
}

export interface FakeStack {
  stackId: string;
  stackName: string;
  status: string;
  statusReason?: string;
  creationTime: Date;
  lastUpdatedTime?: Date;
  deletionTime?: Date;
  templateBody: string;
  template?: CfnTemplate;
  rawParams: Record<string, string>;
  tags: Array<[string, string]>;
  capabilities: string[];
  resources: Map<string, FakeResource>;
  outputs: Record<string, string>;
  events: FakeEvent[];
  changeSets: Map<string, FakeChangeSet>;
}

export interface FakeCall {
  action: string;
  params: Record<string, string>;
  region?: string;
  accessKeyId?: string;
}

export interface FakeOptions {
  /** Delay between two simulated steps (one resource event each). */
  stepMs?: number;
  /** Events per DescribeStackEvents page (real pages are bounded by size; small pages exercise paging). */
  eventsPageSize?: number;
  accountId?: string;
  /** Called when a resource is deleted; throw to make the deletion fail (DELETE_FAILED with the message). */
  onDeleteResource?: (resource: {
    logicalId: string;
    type: string;
    physicalId: string;
  }) => Promise<void> | void;
}

export interface SeedOptions {
  name: string;
  status: string;
  statusReason?: string;
  tags?: Record<string, string>;
  outputs?: Record<string, string>;
  templateBody?: string;
  parameters?: Record<string, string>;
  /** For *_IN_PROGRESS seeds: move to `settleTo` after this many ms (never, if absent). */
  settleAfterMs?: number;
  settleTo?: string;
}

export interface FakeCloudFormation {
  url: string;
  calls: FakeCall[];
  stacks: Map<string, FakeStack>;
  /** The live (not deleted) stack with this name. */
  stack(name: string): FakeStack | undefined;
  failOnCreate(logicalId: string, reason: string): void;
  failOnUpdate(logicalId: string, reason: string): void;
  /** Every call of `action` answers 403 AccessDenied as IAM does. */
  deny(action: string): void;
  /** Forgets every failOnCreate / failOnUpdate / deny. */
  clearFaults(): void;
  seedStack(seed: SeedOptions): FakeStack;
  close(): Promise<void>;
}

class QueryError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: 'Sender' | 'Receiver' = 'Sender',
  ) {
    super(message);
  }
}

const validation = (message: string) => new QueryError(400, 'ValidationError', message);

// ------------------------------------------------------------------------------------------------
// XML
// ------------------------------------------------------------------------------------------------

function esc(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );
}

type XmlValue = string | number | boolean | Date | undefined | XmlValue[] | { [key: string]: XmlValue };

/** Query-protocol XML: objects become elements, arrays become <member> lists, undefined is omitted. */
function toXml(value: XmlValue): string {
  if (value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => `<member>${toXml(v)}</member>`).join('');
  if (typeof value === 'object') {
    return Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `<${k}>${toXml(v)}</${k}>`)
      .join('');
  }
  return esc(String(value));
}

// ------------------------------------------------------------------------------------------------
// Form parameters: "Parameters.member.1.ParameterKey=…", "Capabilities.member.1=…"
// ------------------------------------------------------------------------------------------------

function memberList(params: Record<string, string>, name: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (let i = 1; i < 1000; i++) {
    const prefix = `${name}.member.${i}`;
    const entry: Record<string, string> = {};
    let found = false;
    for (const [k, v] of Object.entries(params)) {
      if (k === prefix) {
        entry[''] = v;
        found = true;
      } else if (k.startsWith(prefix + '.')) {
        entry[k.slice(prefix.length + 1)] = v;
        found = true;
      }
    }
    if (!found) break;
    out.push(entry);
  }
  return out;
}

const STACK_NAME = /^[a-zA-Z][-a-zA-Z0-9]{0,127}$/;
const UPDATABLE = new Set([
  'CREATE_COMPLETE',
  'UPDATE_COMPLETE',
  'UPDATE_ROLLBACK_COMPLETE',
  'IMPORT_COMPLETE',
  'IMPORT_ROLLBACK_COMPLETE',
]);

// ------------------------------------------------------------------------------------------------

export async function startFakeCloudFormation(options: FakeOptions = {}): Promise<FakeCloudFormation> {
  const stepMs = options.stepMs ?? 4;
  const pageSize = options.eventsPageSize ?? 20;
  const accountId = options.accountId ?? '123456789012';
  const stacks = new Map<string, FakeStack>(); // by stack id, deleted ones included
  const calls: FakeCall[] = [];
  const createFaults = new Map<string, string>();
  const updateFaults = new Map<string, string>();
  const denied = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  let region = 'us-east-1';
  let closed = false;

  const later = (ms: number, fn: () => void) => {
    if (closed) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  };

  const live = (name: string) =>
    [...stacks.values()].find((s) => s.stackName === name && s.status !== 'DELETE_COMPLETE');
  const find = (nameOrId: string) => (nameOrId.startsWith('arn:') ? stacks.get(nameOrId) : live(nameOrId));

  const scopeFor = (
    stack: Pick<FakeStack, 'stackId' | 'stackName'>,
    template: CfnTemplate,
    rawParams: Record<string, string>,
  ) => {
    let params: Record<string, string | string[]>;
    try {
      params = resolveParameters(template, rawParams);
    } catch (e) {
      throw validation((e as Error).message);
    }
    const base = {
      region,
      accountId,
      partition: 'aws',
      stackName: stack.stackName,
      stackId: stack.stackId,
      params,
      physicalIds: {} as Record<string, string>,
      resourceTypes: Object.fromEntries(Object.entries(template.Resources).map(([id, r]) => [id, r.Type])),
    };
    let conditions: Record<string, boolean>;
    try {
      conditions = evaluateConditions(template, base);
    } catch (e) {
      throw validation(`Template format error: ${(e as Error).message}`);
    }
    return { ...base, conditions } satisfies Scope;
  };

  const plan = (stack: FakeStack, template: CfnTemplate, scope: Scope): Map<string, FakeResource> => {
    try {
      return planResources(template, scope, stack.resources);
    } catch (e) {
      throw validation(`Template format error: ${(e as Error).message}`);
    }
  };

  const validateTemplate = (body: string | undefined): CfnTemplate => {
    if (!body) throw validation('Either Template URL or Template Body must be specified.');
    let template: CfnTemplate;
    try {
      template = parseTemplate(body);
    } catch (e) {
      throw validation(`Template format error: ${(e as Error).message}`);
    }
    const problems = checkTemplate(template);
    if (problems.length) throw validation(`Template format error: ${problems.join('; ')}`);
    return template;
  };

  const requireCapabilities = (template: CfnTemplate, capabilities: string[]) => {
    const iam = Object.values(template.Resources).some((r) => r.Type.startsWith('AWS::IAM::'));
    if (iam && !capabilities.includes('CAPABILITY_IAM') && !capabilities.includes('CAPABILITY_NAMED_IAM')) {
      throw new QueryError(
        400,
        'InsufficientCapabilitiesException',
        'Requires capabilities : [CAPABILITY_IAM]',
      );
    }
  };

  const event = (
    stack: FakeStack,
    logicalId: string,
    type: string,
    physicalId: string,
    status: string,
    reason?: string,
  ) => {
    const timestamp = new Date();
    stack.events.push({
      eventId:
        logicalId === stack.stackName
          ? randomUUID()
          : `${logicalId}-${status}-${timestamp.toISOString()}-${stack.events.length}`,
      stackId: stack.stackId,
      stackName: stack.stackName,
      logicalId,
      physicalId,
      resourceType: type,
      status,
      reason,
      timestamp,
    });
  };
  const stackEvent = (stack: FakeStack, status: string, reason?: string) => {
    stack.status = status;
    if (reason !== undefined) stack.statusReason = reason;
    event(stack, stack.stackName, 'AWS::CloudFormation::Stack', stack.stackId, status, reason);
  };

  /** Runs steps one per stepMs; a step may return further steps to run next (e.g. a rollback). */
  const run = (steps: Array<() => unknown>) => {
    const queue = [...steps];
    const next = () => {
      const step = queue.shift();
      if (!step) return;
      Promise.resolve(step()).then(
        (more) => {
          if (Array.isArray(more)) queue.unshift(...(more as Array<() => unknown>));
          later(stepMs, next);
        },
        (err: unknown) => console.error('fake cloudformation step failed', err),
      );
    };
    later(stepMs, next);
  };

  const deleteSteps = (
    stack: FakeStack,
    ids: string[],
    onFail: (id: string, reason: string) => Array<() => unknown>,
  ) =>
    ids.map((id) => async () => {
      const res = stack.resources.get(id);
      if (!res) return;
      event(stack, id, res.type, res.physicalId, 'DELETE_IN_PROGRESS');
      try {
        await options.onDeleteResource?.({ logicalId: id, type: res.type, physicalId: res.physicalId });
      } catch (e) {
        const reason = (e as Error).message;
        event(stack, id, res.type, res.physicalId, 'DELETE_FAILED', reason);
        return onFail(id, reason);
      }
      stack.resources.delete(id);
      event(stack, id, res.type, res.physicalId, 'DELETE_COMPLETE');
      return undefined;
    });

  // --- create ------------------------------------------------------------------------------------
  const startCreate = (
    stack: FakeStack,
    planned: Map<string, FakeResource>,
    scope: Scope,
    onFailure: string,
  ) => {
    stackEvent(stack, 'CREATE_IN_PROGRESS', 'User Initiated');
    const created: string[] = [];
    let failed = false;
    const steps: Array<() => unknown> = [];
    for (const [id, res] of planned) {
      steps.push(() => {
        if (failed) return;
        event(stack, id, res.type, '', 'CREATE_IN_PROGRESS');
      });
      steps.push(() => {
        if (failed) return;
        const fault = createFaults.get(id);
        if (fault !== undefined) {
          failed = true;
          event(stack, id, res.type, '', 'CREATE_FAILED', fault);
          const reason =
            `The following resource(s) failed to create: [${id}]. ${onFailure === 'DO_NOTHING' ? '' : 'Rollback requested by user.'}`.trim();
          if (onFailure === 'DO_NOTHING') return [() => stackEvent(stack, 'CREATE_FAILED', reason)];
          return [
            () => stackEvent(stack, 'ROLLBACK_IN_PROGRESS', reason),
            ...deleteSteps(stack, [...created].reverse(), () => [() => stackEvent(stack, 'ROLLBACK_FAILED')]),
            () => {
              if (stack.status === 'ROLLBACK_IN_PROGRESS') stackEvent(stack, 'ROLLBACK_COMPLETE', reason);
            },
          ];
        }
        stack.resources.set(id, res);
        created.push(id);
        event(stack, id, res.type, res.physicalId, 'CREATE_IN_PROGRESS', 'Resource creation Initiated');
        event(stack, id, res.type, res.physicalId, 'CREATE_COMPLETE');
        return undefined;
      });
    }
    steps.push(() => {
      if (failed) return;
      stack.outputs = resolveOutputs(stack.template!, scope);
      stack.statusReason = undefined;
      stackEvent(stack, 'CREATE_COMPLETE');
    });
    run(steps);
  };

  // --- update (change set execution) -------------------------------------------------------------
  const startUpdate = (stack: FakeStack, cs: FakeChangeSet) => {
    const previous = {
      templateBody: stack.templateBody,
      template: stack.template,
      rawParams: stack.rawParams,
      tags: stack.tags,
      resources: new Map(stack.resources),
    };
    const scope = scopeFor(stack, cs.template, cs.rawParams);
    const planned = plan(stack, cs.template, scope);
    stack.lastUpdatedTime = new Date();
    stackEvent(stack, 'UPDATE_IN_PROGRESS', 'User Initiated');
    let failed = false;
    const steps: Array<() => unknown> = [];
    const rollback = (id: string, reason: string) => {
      failed = true;
      const type = planned.get(id)?.type ?? stack.resources.get(id)?.type ?? '';
      event(stack, id, type, planned.get(id)?.physicalId ?? '', 'UPDATE_FAILED', reason);
      return [
        () =>
          stackEvent(
            stack,
            'UPDATE_ROLLBACK_IN_PROGRESS',
            `The following resource(s) failed to update: [${id}]. `,
          ),
        () => {
          for (const [rid, res] of previous.resources) {
            if (cs.changes.some((c) => c.logicalId === rid && c.action === 'Modify')) {
              event(stack, rid, res.type, res.physicalId, 'UPDATE_COMPLETE');
            }
          }
          stack.resources = previous.resources;
          Object.assign(stack, {
            templateBody: previous.templateBody,
            template: previous.template,
            rawParams: previous.rawParams,
            tags: previous.tags,
          });
        },
        () => stackEvent(stack, 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS'),
        () => {
          stackEvent(stack, 'UPDATE_ROLLBACK_COMPLETE');
          cs.executionStatus = 'EXECUTE_FAILED';
        },
      ];
    };
    for (const change of cs.changes.filter((c) => c.action !== 'Remove')) {
      const res = planned.get(change.logicalId)!;
      const verb = change.action === 'Add' ? 'CREATE' : 'UPDATE';
      steps.push(() => {
        if (failed) return;
        event(stack, change.logicalId, res.type, res.physicalId, `${verb}_IN_PROGRESS`);
      });
      steps.push(() => {
        if (failed) return;
        const fault = updateFaults.get(change.logicalId);
        if (fault !== undefined) return rollback(change.logicalId, fault);
        stack.resources.set(change.logicalId, res);
        event(stack, change.logicalId, res.type, res.physicalId, `${verb}_COMPLETE`);
        return undefined;
      });
    }
    steps.push(() => {
      if (failed) return;
      stack.templateBody = cs.templateBody;
      stack.template = cs.template;
      stack.rawParams = cs.rawParams;
      stack.tags = cs.tags;
      stackEvent(stack, 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      return [
        ...deleteSteps(
          stack,
          cs.changes.filter((c) => c.action === 'Remove').map((c) => c.logicalId),
          () => [],
        ),
        () => {
          stack.outputs = resolveOutputs(cs.template, {
            ...scope,
            physicalIds: Object.fromEntries([...stack.resources].map(([id, r]) => [id, r.physicalId])),
          });
          stack.statusReason = undefined;
          stackEvent(stack, 'UPDATE_COMPLETE');
          cs.executionStatus = 'EXECUTE_COMPLETE';
        },
      ];
    });
    run(steps);
  };

  // --- delete ------------------------------------------------------------------------------------
  const startDelete = (stack: FakeStack) => {
    stackEvent(stack, 'DELETE_IN_PROGRESS', 'User Initiated');
    const order = stack.template
      ? orderByDependencies(stack.template, [...stack.resources.keys()]).reverse()
      : [...stack.resources.keys()].reverse();
    let failedReason: string | undefined;
    run([
      ...deleteSteps(stack, order, (id, reason) => {
        failedReason = `The following resource(s) failed to delete: [${id}]. `;
        void reason;
        return [() => stackEvent(stack, 'DELETE_FAILED', failedReason)];
      }),
      () => {
        if (failedReason !== undefined || stack.status !== 'DELETE_IN_PROGRESS') return;
        stack.deletionTime = new Date();
        stack.outputs = {};
        stackEvent(stack, 'DELETE_COMPLETE');
      },
    ]);
  };

  // --- change sets ---------------------------------------------------------------------------------
  const computeChanges = (stack: FakeStack, cs: FakeChangeSet) => {
    const scope = scopeFor(stack, cs.template, cs.rawParams);
    const planned = plan(stack, cs.template, scope);
    const tagsChanged = JSON.stringify(stack.tags) !== JSON.stringify(cs.tags);
    for (const [id, res] of planned) {
      const old = stack.resources.get(id);
      if (!old) cs.changes.push({ action: 'Add', logicalId: id, type: res.type });
      else if (tagsChanged || JSON.stringify(old.props) !== JSON.stringify(res.props)) {
        cs.changes.push({ action: 'Modify', logicalId: id, type: res.type, physicalId: old.physicalId });
      }
    }
    for (const [id, old] of stack.resources) {
      if (!planned.has(id))
        cs.changes.push({ action: 'Remove', logicalId: id, type: old.type, physicalId: old.physicalId });
    }
  };

  const findChangeSet = (p: Record<string, string>): [FakeStack, FakeChangeSet] => {
    const ref = p.ChangeSetName ?? '';
    for (const stack of stacks.values()) {
      if (
        !ref.startsWith('arn:') &&
        p.StackName &&
        stack !== find(p.StackName) &&
        stack.stackId !== p.StackName
      )
        continue;
      for (const cs of stack.changeSets.values()) {
        if (cs.id === ref || cs.name === ref) return [stack, cs];
      }
    }
    throw new QueryError(404, 'ChangeSetNotFound', `ChangeSet [${ref}] does not exist`);
  };

  // --- XML shapes ----------------------------------------------------------------------------------
  const stackXml = (s: FakeStack): XmlValue => ({
    StackId: s.stackId,
    StackName: s.stackName,
    Description: s.template?.Description,
    Parameters: Object.entries(s.rawParams).map(([k, v]) => ({ ParameterKey: k, ParameterValue: v })),
    CreationTime: s.creationTime,
    LastUpdatedTime: s.lastUpdatedTime,
    DeletionTime: s.deletionTime,
    StackStatus: s.status,
    StackStatusReason: s.statusReason,
    DisableRollback: false,
    NotificationARNs: [],
    Capabilities: s.capabilities,
    Outputs: Object.entries(s.outputs).map(([k, v]) => ({ OutputKey: k, OutputValue: v })),
    Tags: s.tags.map(([k, v]) => ({ Key: k, Value: v })),
    EnableTerminationProtection: false,
    DriftInformation: { StackDriftStatus: 'NOT_CHECKED' },
  });

  const eventXml = (e: FakeEvent): XmlValue => ({
    StackId: e.stackId,
    EventId: e.eventId,
    StackName: e.stackName,
    LogicalResourceId: e.logicalId,
    PhysicalResourceId: e.physicalId,
    ResourceType: e.resourceType,
    Timestamp: e.timestamp,
    ResourceStatus: e.status,
    ResourceStatusReason: e.reason,
  });

  const parseParams = (p: Record<string, string>, previous?: Record<string, string>) => {
    const out: Record<string, string> = {};
    for (const m of memberList(p, 'Parameters')) {
      const key = m.ParameterKey;
      if (!key) throw validation('ParameterKey is required');
      if (m.UsePreviousValue === 'true') {
        if (previous?.[key] === undefined)
          throw validation(
            `Invalid input for parameter key ${key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template`,
          );
        out[key] = previous[key];
      } else out[key] = m.ParameterValue ?? '';
    }
    return out;
  };
  const parseTags = (p: Record<string, string>): Array<[string, string]> =>
    memberList(p, 'Tags').map((m) => [m.Key ?? '', m.Value ?? '']);
  const parseCapabilities = (p: Record<string, string>) =>
    memberList(p, 'Capabilities').map((m) => m[''] ?? '');

  // --- actions -------------------------------------------------------------------------------------
  const actions: Record<string, (p: Record<string, string>) => XmlValue> = {
    CreateStack(p) {
      const name = p.StackName ?? '';
      if (!STACK_NAME.test(name)) {
        throw validation(
          `1 validation error detected: Value '${name}' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*|arn:[-a-zA-Z0-9:/._+]*`,
        );
      }
      if (live(name)) throw new QueryError(400, 'AlreadyExistsException', `Stack [${name}] already exists`);
      const template = validateTemplate(p.TemplateBody);
      const capabilities = parseCapabilities(p);
      requireCapabilities(template, capabilities);
      const stack: FakeStack = {
        stackId: `arn:aws:cloudformation:${region}:${accountId}:stack/${name}/${randomUUID()}`,
        stackName: name,
        status: 'CREATE_IN_PROGRESS',
        creationTime: new Date(),
        templateBody: p.TemplateBody ?? '',
        template,
        rawParams: parseParams(p),
        tags: parseTags(p),
        capabilities,
        resources: new Map(),
        outputs: {},
        events: [],
        changeSets: new Map(),
      };
      const scope = scopeFor(stack, template, stack.rawParams);
      stack.rawParams = flatParams(scope.params); // DescribeStacks lists every parameter, defaults included
      const planned = plan(stack, template, scope);
      stacks.set(stack.stackId, stack);
      const onFailure = p.OnFailure ?? (p.DisableRollback === 'true' ? 'DO_NOTHING' : 'ROLLBACK');
      startCreate(stack, planned, scope, onFailure);
      return { StackId: stack.stackId };
    },

    DescribeStacks(p) {
      if (!p.StackName)
        return { Stacks: [...stacks.values()].filter((s) => s.status !== 'DELETE_COMPLETE').map(stackXml) };
      const stack = find(p.StackName);
      if (!stack) throw validation(`Stack with id ${p.StackName} does not exist`);
      return { Stacks: [stackXml(stack)] };
    },

    DescribeStackEvents(p) {
      const stack = find(p.StackName ?? '');
      if (!stack) throw validation(`Stack [${p.StackName ?? ''}] does not exist`);
      // The token pins the event count seen by the first page, so events that arrive while a caller
      // pages do not shift later pages (they show up on the caller's next first page).
      const [start, anchor] = p.NextToken
        ? Buffer.from(p.NextToken, 'base64').toString('utf8').split(':').map(Number)
        : [0, stack.events.length];
      if (
        !Number.isInteger(start) ||
        !Number.isInteger(anchor) ||
        start! < 0 ||
        anchor! > stack.events.length
      ) {
        throw validation('Invalid NextToken');
      }
      const newestFirst = stack.events.slice(0, anchor).reverse();
      const page = newestFirst.slice(start, start! + pageSize);
      const more = start! + pageSize < newestFirst.length;
      return {
        StackEvents: page.map(eventXml),
        NextToken: more ? Buffer.from(`${start! + pageSize}:${anchor}`).toString('base64') : undefined,
      };
    },

    DeleteStack(p) {
      const stack = find(p.StackName ?? '');
      if (!stack || stack.status === 'DELETE_COMPLETE' || stack.status === 'DELETE_IN_PROGRESS') return {};
      if (stack.status.endsWith('_IN_PROGRESS')) {
        throw validation(`Stack [${stack.stackName}] cannot be deleted while in status ${stack.status}`);
      }
      startDelete(stack);
      return {};
    },

    CreateChangeSet(p) {
      const type = p.ChangeSetType ?? 'UPDATE';
      if (type !== 'UPDATE') throw validation(`the fake supports ChangeSetType UPDATE only, not ${type}`);
      const name = p.ChangeSetName ?? '';
      if (!/^[a-zA-Z][-a-zA-Z0-9]{0,127}$/.test(name)) {
        throw validation(
          `1 validation error detected: Value '${name}' at 'changeSetName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*`,
        );
      }
      const stack = find(p.StackName ?? '');
      if (!stack) throw validation(`Stack [${p.StackName ?? ''}] does not exist`);
      if (!UPDATABLE.has(stack.status)) {
        throw validation(`Stack:${stack.stackId} is in ${stack.status} state and can not be updated.`);
      }
      if ([...stack.changeSets.values()].some((c) => c.name === name)) {
        throw new QueryError(400, 'AlreadyExistsException', `ChangeSet ${name} already exists`);
      }
      const templateBody = p.UsePreviousTemplate === 'true' ? stack.templateBody : (p.TemplateBody ?? '');
      const template = validateTemplate(templateBody);
      const capabilities = parseCapabilities(p);
      requireCapabilities(template, capabilities);
      const cs: FakeChangeSet = {
        id: `arn:aws:cloudformation:${region}:${accountId}:changeSet/${name}/${randomUUID()}`,
        name,
        stackId: stack.stackId,
        status: 'CREATE_PENDING',
        executionStatus: 'UNAVAILABLE',
        creationTime: new Date(),
        templateBody,
        template,
        rawParams: parseParams(p, stack.rawParams),
        tags: p['Tags.member.1.Key'] !== undefined ? parseTags(p) : stack.tags,
        capabilities,
        changes: [],
      };
      // Parameter errors surface synchronously, as in AWS.
      cs.rawParams = flatParams(scopeFor(stack, template, cs.rawParams).params);
      stack.changeSets.set(cs.id, cs);
      run([
        () => {
          cs.status = 'CREATE_IN_PROGRESS';
        },
        () => {
          try {
            computeChanges(stack, cs);
          } catch (e) {
            cs.status = 'FAILED';
            cs.statusReason = (e as Error).message;
            return;
          }
          if (cs.changes.length === 0) {
            cs.status = 'FAILED';
            cs.statusReason = NO_CHANGES_REASON;
          } else {
            cs.status = 'CREATE_COMPLETE';
            cs.executionStatus = 'AVAILABLE';
          }
        },
      ]);
      return { Id: cs.id, StackId: stack.stackId };
    },

    DescribeChangeSet(p) {
      const [stack, cs] = findChangeSet(p);
      return {
        ChangeSetName: cs.name,
        ChangeSetId: cs.id,
        StackId: stack.stackId,
        StackName: stack.stackName,
        Parameters: Object.entries(cs.rawParams).map(([k, v]) => ({ ParameterKey: k, ParameterValue: v })),
        CreationTime: cs.creationTime,
        ExecutionStatus: cs.executionStatus,
        Status: cs.status,
        StatusReason: cs.statusReason,
        NotificationARNs: [],
        Capabilities: cs.capabilities,
        Tags: cs.tags.map(([k, v]) => ({ Key: k, Value: v })),
        Changes: cs.changes.map((c) => ({
          Type: 'Resource',
          ResourceChange: {
            Action: c.action,
            LogicalResourceId: c.logicalId,
            PhysicalResourceId: c.physicalId,
            ResourceType: c.type,
            Replacement: c.action === 'Modify' ? 'False' : undefined,
          },
        })),
        IncludeNestedStacks: false,
      };
    },

    ExecuteChangeSet(p) {
      const [stack, cs] = findChangeSet(p);
      if (cs.executionStatus !== 'AVAILABLE') {
        throw new QueryError(
          400,
          'InvalidChangeSetStatus',
          `ChangeSet [${cs.id}] cannot be executed in its current status of [${cs.status}]`,
        );
      }
      if (!UPDATABLE.has(stack.status)) {
        throw validation(`Stack:${stack.stackId} is in ${stack.status} state and can not be updated.`);
      }
      cs.executionStatus = 'EXECUTE_IN_PROGRESS';
      for (const other of stack.changeSets.values()) if (other !== cs) other.executionStatus = 'OBSOLETE';
      startUpdate(stack, cs);
      return {};
    },

    DeleteChangeSet(p) {
      const [stack, cs] = findChangeSet(p);
      if (cs.executionStatus === 'EXECUTE_IN_PROGRESS') {
        throw new QueryError(
          400,
          'InvalidChangeSetStatus',
          `ChangeSet [${cs.id}] cannot be deleted in its current status of [EXECUTE_IN_PROGRESS]`,
        );
      }
      stack.changeSets.delete(cs.id);
      return {};
    },
  };

  // --- HTTP ----------------------------------------------------------------------------------------
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
      res.end(body);
    };
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const p: Record<string, string> = Object.fromEntries(form.entries());
    const action = p.Action ?? '';
    const auth = String(req.headers.authorization ?? '');
    const cred = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth);
    calls.push({ action, params: p, region: cred?.[2], accessKeyId: cred?.[1] });
    try {
      if (req.method !== 'POST') throw new QueryError(405, 'MethodNotAllowed', 'Only POST is supported');
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        throw validation('Content-Type must be application/x-www-form-urlencoded');
      }
      if (!cred)
        throw new QueryError(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
      if (cred[3] !== 'cloudformation')
        throw new QueryError(
          403,
          'InvalidSignatureException',
          `Credential should be scoped to correct service: 'cloudformation'.`,
        );
      region = cred[2] ?? region;
      if (p.Version !== '2010-05-15') throw validation(`Unsupported Version ${p.Version ?? ''}`);
      const fn = actions[action];
      if (!fn)
        throw new QueryError(
          400,
          'InvalidAction',
          `Could not find operation ${action} for version 2010-05-15`,
        );
      if (denied.has(action)) {
        const name = p.StackName ?? p.ChangeSetName ?? '*';
        const resource = name.startsWith('arn:')
          ? name
          : `arn:aws:cloudformation:${region}:${accountId}:stack/${name}/*`;
        throw new QueryError(
          403,
          'AccessDenied',
          `User: arn:aws:iam::${accountId}:user/skyfarm-test is not authorized to perform: cloudformation:${action} on resource: ${resource} because no identity-based policy allows the cloudformation:${action} action`,
        );
      }
      const result = fn(p);
      send(
        200,
        `<${action}Response xmlns="${XMLNS}"><${action}Result>${toXml(result)}</${action}Result>` +
          `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
      );
    } catch (e) {
      const err =
        e instanceof QueryError
          ? e
          : e instanceof TemplateError
            ? validation(e.message)
            : new QueryError(500, 'InternalFailure', String((e as Error).message), 'Receiver');
      send(
        err.status,
        `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${err.type}</Type><Code>${esc(err.code)}</Code>` +
          `<Message>${esc(err.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    stacks,
    stack: live,
    failOnCreate: (id, reason) => createFaults.set(id, reason),
    failOnUpdate: (id, reason) => updateFaults.set(id, reason),
    deny: (action) => denied.add(action),
    clearFaults() {
      createFaults.clear();
      updateFaults.clear();
      denied.clear();
    },
    seedStack(seed) {
      const template = seed.templateBody ? parseTemplate(seed.templateBody) : undefined;
      const stack: FakeStack = {
        stackId: `arn:aws:cloudformation:${region}:${accountId}:stack/${seed.name}/${randomUUID()}`,
        stackName: seed.name,
        status: seed.status,
        statusReason: seed.statusReason,
        creationTime: new Date(),
        templateBody: seed.templateBody ?? '',
        template,
        rawParams: seed.parameters ?? {},
        tags: Object.entries(seed.tags ?? {}),
        capabilities: ['CAPABILITY_IAM'],
        resources: new Map(),
        outputs: seed.outputs ?? {},
        events: [],
        changeSets: new Map(),
      };
      if (template) {
        const scope = scopeFor(stack, template, stack.rawParams);
        stack.rawParams = flatParams(scope.params);
        stack.resources = plan(stack, template, scope);
        if (!seed.outputs) stack.outputs = resolveOutputs(template, scope);
      }
      stacks.set(stack.stackId, stack);
      stackEvent(stack, seed.status, seed.statusReason ?? 'User Initiated');
      if (seed.settleAfterMs !== undefined) {
        const settleTo = seed.settleTo ?? seed.status.replace('_IN_PROGRESS', '_COMPLETE');
        later(seed.settleAfterMs, () => stackEvent(stack, settleTo));
      }
      return stack;
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

function flatParams(params: Record<string, string | string[]>): Record<string, string> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v]));
}
