// The farm's CloudFormation stack: status, deploy (create or change-set update) and destroy, streaming
// every new stack event through the one progress sink as it happens. Plain async functions taking the
// protocol's params + a Notify, so the WebSocket methods and the CLI wire them directly.
import { setTimeout as delay } from 'node:timers/promises';
import type {
  StackDeployParams,
  StackDeployResult,
  StackDestroyParams,
  StackDestroyResult,
  StackEvent,
  StackInfo,
  StackStatusParams,
} from '../../../protocol/generated/protocol.js';
import {
  createCloudFormation,
  type ICloudFormation,
  type ParameterInput,
  type StackDescription,
  type StackEventRecord,
} from '../aws/cloudformation.js';
import { resolveAwsConfig, type AwsConfig, type AwsParams } from '../aws/config.js';
import { createS3, emptyBucket, type IS3 } from '../aws/s3.js';
import { SkyfarmError, isSkyfarmError } from '../errors.js';
import type { Notify } from '../notify.js';
import { loadTemplate, type LoadedTemplate } from './template.js';
import { validateDeploy, validateTarget, type ValidDeploy, type ValidTarget } from './validate.js';

export const SKYFARM_TAG = 'skyfarm:stack';
export const SKYFARM_VERSION_OUTPUT = 'SkyfarmStackVersion';

export interface StackLimits {
  /** Longest pause between two polls of DescribeStacks / DescribeStackEvents / DescribeChangeSet (the first ones are quicker). */
  pollIntervalMs: number;
  /** How long deploy/destroy waits for someone else's operation (stack *_IN_PROGRESS); 0 refuses at once. */
  busyWaitMs: number;
  /** How long one create / update / delete is followed before skyfarm stops waiting (STACK_BUSY). */
  operationTimeoutMs: number;
  /** How long a change set may take to be computed. */
  changeSetTimeoutMs: number;
}

export const DEFAULT_LIMITS: StackLimits = {
  pollIntervalMs: 3_000,
  busyWaitMs: 10 * 60_000,
  operationTimeoutMs: 90 * 60_000,
  changeSetTimeoutMs: 5 * 60_000,
};

export interface StackServiceDeps {
  cloudFormation?: (cfg: AwsConfig) => ICloudFormation;
  s3?: (cfg: AwsConfig) => IS3;
  env?: Record<string, string | undefined>;
  /** infra/skyfarm.yaml by default. */
  templatePath?: string;
  resolveConfig?: (params: AwsParams, env: Record<string, string | undefined>) => Promise<AwsConfig>;
  /** Rejects when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  limits?: Partial<StackLimits>;
  /** Called with the stack's status and outputs whenever skyfarm sees it usable (deploy, status). */
  remember?: (stack: StackInfo) => void | Promise<void>;
  /** Called after destroy (or when the stack turns out not to exist). */
  forget?: (stackName: string, region: string) => void | Promise<void>;
}

export interface StackService {
  status(params: StackStatusParams): Promise<StackInfo>;
  deploy(params: StackDeployParams, notify: Notify, signal?: AbortSignal): Promise<StackDeployResult>;
  destroy(params: StackDestroyParams, notify: Notify, signal?: AbortSignal): Promise<StackDestroyResult>;
}

/** Statuses in which the stack serves the farm. */
export const USABLE_STATUSES = new Set([
  'CREATE_COMPLETE',
  'UPDATE_COMPLETE',
  'UPDATE_ROLLBACK_COMPLETE',
  'IMPORT_COMPLETE',
]);
/** A create that never completed: only deleting it helps; deploy does that itself. */
const RECREATE_STATUSES = new Set([
  'ROLLBACK_COMPLETE',
  'ROLLBACK_FAILED',
  'CREATE_FAILED',
  'REVIEW_IN_PROGRESS',
]);
const NO_CHANGES = /didn't contain changes|No updates are to be performed/i;
const CANCELLED = /Resource (creation|update|deletion) cancelled/i;

export function isInProgress(status: string): boolean {
  return status.endsWith('_IN_PROGRESS') && status !== 'REVIEW_IN_PROGRESS';
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function toStackEvent(e: StackEventRecord): StackEvent {
  return {
    stackName: clip(e.stackName, 256),
    resource: clip(e.logicalId, 256),
    resourceType: clip(e.resourceType, 256),
    status: clip(e.status, 64),
    reason: clip(e.reason ?? '', 8192),
    timestamp: e.timestamp.toISOString(),
  };
}

export function toStackInfo(stack: StackDescription, region: string): StackInfo {
  const info: StackInfo = {
    stackName: stack.stackName,
    status: stack.status,
    region,
    outputs: Object.fromEntries(Object.entries(stack.outputs).map(([k, v]) => [k, clip(v, 4096)])),
  };
  if (stack.statusReason) info.reason = clip(stack.statusReason, 8192);
  return info;
}

export function isSkyfarmStack(stack: StackDescription): boolean {
  return stack.tags[SKYFARM_TAG] === 'true' || stack.outputs[SKYFARM_VERSION_OUTPUT] !== undefined;
}

/** The first resource failure of an operation, as "Resource (Type): reason". */
export function failureReason(events: StackEventRecord[], stack?: StackDescription): string {
  const failed = events.find(
    (e) =>
      e.status.endsWith('_FAILED') &&
      e.resourceType !== 'AWS::CloudFormation::Stack' &&
      !CANCELLED.test(e.reason ?? ''),
  );
  if (failed) return `${failed.logicalId} (${failed.resourceType}): ${failed.reason ?? failed.status}`;
  return stack?.statusReason ?? stack?.status ?? 'unknown reason';
}

export function templateVersion(tpl: LoadedTemplate): string {
  const meta = tpl.template.Metadata?.Skyfarm;
  const version = meta && typeof meta === 'object' && !Array.isArray(meta) ? meta.StackVersion : undefined;
  return version === undefined || version === null ? '0' : String(version);
}

export function createStackService(deps: StackServiceDeps = {}): StackService {
  const env = deps.env ?? process.env;
  const limits: StackLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const now = deps.now ?? Date.now;
  const sleep =
    deps.sleep ?? ((ms: number, signal?: AbortSignal) => delay(ms, undefined, signal ? { signal } : {}));
  const resolveConfig = deps.resolveConfig ?? resolveAwsConfig;
  const cfFactory = deps.cloudFormation ?? ((cfg: AwsConfig) => createCloudFormation(cfg));
  const s3Factory = deps.s3 ?? ((cfg: AwsConfig) => createS3(cfg));
  const busy = new Set<string>();
  let template: LoadedTemplate | undefined;

  const getTemplate = (): LoadedTemplate => {
    if (!template) {
      try {
        template = loadTemplate(deps.templatePath);
      } catch (error) {
        throw new SkyfarmError('INTERNAL', `Cannot load the stack template: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    return template;
  };

  const canceled = (what: string) =>
    new SkyfarmError(
      'CANCELED',
      `Stopped ${what}; a CloudFormation operation already started continues in AWS.`,
    );

  const pause = async (ms: number, signal: AbortSignal | undefined, what: string) => {
    if (signal?.aborted) throw canceled(what);
    try {
      await sleep(ms, signal);
    } catch (error) {
      if (signal?.aborted) throw canceled(what);
      throw error;
    }
  };

  /** Quick first polls (short operations, change sets), then every pollIntervalMs. */
  const backoff = (n: number) => Math.min(limits.pollIntervalMs, Math.round(200 * 1.5 ** n));

  /** One operation per stack name at a time within this daemon. */
  const exclusive = async <T>(stackName: string, fn: () => Promise<T>): Promise<T> => {
    if (busy.has(stackName)) {
      throw new SkyfarmError(
        'STACK_BUSY',
        `skyfarm is already deploying or destroying stack ${stackName}; wait for it to finish.`,
      );
    }
    busy.add(stackName);
    try {
      return await fn();
    } finally {
      busy.delete(stackName);
    }
  };

  const assertSkyfarm = (stack: StackDescription, region: string) => {
    if (!isSkyfarmStack(stack)) {
      throw new SkyfarmError(
        'STACK_NOT_SKYFARM',
        `A stack named ${stack.stackName} already exists in ${region} but was not created by skyfarm ` +
          `(no ${SKYFARM_TAG} tag). skyfarm will not change or delete it; choose another name with --stack-name.`,
      );
    }
  };

  const latestEventId = async (cf: ICloudFormation, stackId: string) =>
    (await cf.describeStackEvents(stackId, { maxEvents: 1 }))[0]?.eventId;

  /**
   * Polls until the stack leaves *_IN_PROGRESS, emitting each event newer than `since` once, oldest
   * first. Returns the final description (undefined if the stack vanished) and the events seen.
   */
  const follow = async (
    cf: ICloudFormation,
    stackId: string,
    since: string | undefined,
    notify: Notify,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    onTimeout: (stack: StackDescription) => SkyfarmError,
  ): Promise<{ stack?: StackDescription; events: StackEventRecord[] }> => {
    const started = now();
    const events: StackEventRecord[] = [];
    let last = since;
    let polls = 0;
    for (;;) {
      // Status first, then events: every event up to a terminal status is then already listed.
      const stack = await cf.describeStack(stackId);
      const fresh = await cf.describeStackEvents(stackId, last === undefined ? {} : { stopAtEventId: last });
      for (const e of [...fresh].reverse()) {
        events.push(e);
        notify('stack.event', toStackEvent(e));
      }
      if (fresh[0]) last = fresh[0].eventId;
      if (!stack) return { events };
      if (!isInProgress(stack.status)) return { stack, events };
      if (now() - started >= timeoutMs) throw onTimeout(stack);
      await pause(backoff(polls++), signal, `following stack ${stack.stackName}`);
    }
  };

  const seconds = (ms: number) =>
    ms < 1_000 ? `${ms} ms` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;

  /** Someone else's operation is running: follow it (bounded) or refuse. Returns the settled stack. */
  const waitForOther = async (
    cf: ICloudFormation,
    stack: StackDescription,
    notify: Notify,
    signal: AbortSignal | undefined,
  ): Promise<StackDescription | undefined> => {
    const refuse = (s: StackDescription) =>
      new SkyfarmError(
        'STACK_BUSY',
        `Stack ${s.stackName} is ${s.status}: another deploy or destroy is running` +
          (limits.busyWaitMs > 0 ? ` and did not finish within ${seconds(limits.busyWaitMs)}` : '') +
          `. Try again when it has finished (\`skyfarm stack\` shows its status).`,
      );
    if (limits.busyWaitMs <= 0) throw refuse(stack);
    const marker = await latestEventId(cf, stack.stackId);
    const { stack: settled } = await follow(
      cf,
      stack.stackId,
      marker,
      notify,
      limits.busyWaitMs,
      signal,
      refuse,
    );
    return settled && settled.status !== 'DELETE_COMPLETE' ? settled : undefined;
  };

  const synthetic = (
    notify: Notify,
    stackName: string,
    resource: string,
    resourceType: string,
    status: string,
    reason: string,
  ) =>
    notify('stack.event', {
      stackName,
      resource,
      resourceType,
      status,
      reason: clip(reason, 8192),
      timestamp: new Date(now()).toISOString(),
    });

  const deleteAndFollow = async (
    cf: ICloudFormation,
    stack: StackDescription,
    notify: Notify,
    signal: AbortSignal | undefined,
  ): Promise<void> => {
    const marker = await latestEventId(cf, stack.stackId);
    if (stack.status !== 'DELETE_IN_PROGRESS') await cf.deleteStack(stack.stackId);
    const { stack: final, events } = await follow(
      cf,
      stack.stackId,
      marker,
      notify,
      limits.operationTimeoutMs,
      signal,
      (s) =>
        new SkyfarmError(
          'STACK_BUSY',
          `Stopped waiting for stack ${s.stackName} after ${seconds(limits.operationTimeoutMs)}; it is still ${s.status}.`,
        ),
    );
    if (final && final.status !== 'DELETE_COMPLETE') {
      throw new SkyfarmError(
        'STACK_FAILED',
        `Deleting stack ${stack.stackName} failed (${final.status}): ${failureReason(events, final)}`,
      );
    }
  };

  const buildParameters = (
    p: ValidDeploy,
    declared: string[],
    existing?: StackDescription,
  ): ParameterInput[] => {
    const explicit: Record<string, string> = { NamePrefix: p.stackName.toLowerCase() };
    if (p.maxVcpus !== undefined) explicit.MaxVcpus = String(p.maxVcpus);
    if (p.gpu !== undefined) explicit.EnableGpu = p.gpu ? 'true' : 'false';
    if (p.notifyEmail !== undefined) explicit.NotifyEmail = p.notifyEmail;
    const out: ParameterInput[] = [];
    for (const key of declared) {
      const value = explicit[key];
      if (value !== undefined) out.push({ key, value });
      // Keep what the user chose last time (e.g. --gpu) unless they say otherwise now.
      else if (existing && key in existing.parameters) out.push({ key, usePrevious: true });
    }
    return out;
  };

  const waitForChangeSet = async (
    cf: ICloudFormation,
    stackName: string,
    changeSetId: string,
    signal?: AbortSignal,
  ) => {
    const started = now();
    let polls = 0;
    for (;;) {
      const cs = await cf.describeChangeSet(stackName, changeSetId);
      if (cs.status !== 'CREATE_PENDING' && cs.status !== 'CREATE_IN_PROGRESS') return cs;
      if (now() - started >= limits.changeSetTimeoutMs) {
        throw new SkyfarmError(
          'AWS_ERROR',
          `CloudFormation did not compute the change set for ${stackName} within ${seconds(limits.changeSetTimeoutMs)}.`,
        );
      }
      await pause(backoff(polls++), signal, `preparing the update of ${stackName}`);
    }
  };

  const connect = async (target: ValidTarget) => {
    const cfg = await resolveConfig(
      {
        ...(target.profile ? { profile: target.profile } : {}),
        ...(target.region ? { region: target.region } : {}),
      },
      env,
    );
    return { cfg, cf: cfFactory(cfg) };
  };

  const create = async (
    cf: ICloudFormation,
    cfg: AwsConfig,
    p: ValidDeploy,
    tpl: LoadedTemplate,
    tags: Record<string, string>,
    notify: Notify,
    signal: AbortSignal | undefined,
  ): Promise<StackDeployResult> => {
    if (signal?.aborted) throw canceled(`deploying ${p.stackName}`);
    const stackId = await cf.createStack({
      stackName: p.stackName,
      templateBody: tpl.body,
      parameters: buildParameters(p, tpl.parameterNames),
      tags,
      capabilities: ['CAPABILITY_IAM'],
    });
    const { stack: final, events } = await follow(
      cf,
      stackId,
      undefined,
      notify,
      limits.operationTimeoutMs,
      signal,
      (s) =>
        new SkyfarmError(
          'STACK_BUSY',
          `Stopped waiting for stack ${s.stackName} after ${seconds(limits.operationTimeoutMs)}; it is still ${s.status} in AWS.`,
        ),
    );
    if (!final || final.status !== 'CREATE_COMPLETE') {
      throw new SkyfarmError(
        'STACK_FAILED',
        `Creating stack ${p.stackName} failed: ${failureReason(events, final)}. The stack is now ${final?.status ?? 'gone'}; ` +
          `the next \`skyfarm deploy\` deletes it and creates it again.`,
      );
    }
    const info = toStackInfo(final, cfg.region);
    await deps.remember?.(info);
    return { stack: info, changed: true };
  };

  const update = async (
    cf: ICloudFormation,
    cfg: AwsConfig,
    p: ValidDeploy,
    stack: StackDescription,
    tpl: LoadedTemplate,
    tags: Record<string, string>,
    notify: Notify,
    signal: AbortSignal | undefined,
  ): Promise<StackDeployResult> => {
    if (signal?.aborted) throw canceled(`deploying ${p.stackName}`);
    const { changeSetId } = await cf.createChangeSet({
      stackName: p.stackName,
      changeSetName: `skyfarm-${now()}`,
      templateBody: tpl.body,
      parameters: buildParameters(p, tpl.parameterNames, stack),
      tags,
      capabilities: ['CAPABILITY_IAM'],
    });
    let cs;
    try {
      cs = await waitForChangeSet(cf, p.stackName, changeSetId, signal);
    } catch (error) {
      await cf.deleteChangeSet(p.stackName, changeSetId).catch(() => undefined);
      throw error;
    }
    if (cs.status !== 'CREATE_COMPLETE' || cs.executionStatus !== 'AVAILABLE') {
      await cf.deleteChangeSet(p.stackName, changeSetId).catch(() => undefined);
      if (cs.status === 'FAILED' && NO_CHANGES.test(cs.statusReason ?? '')) {
        const info = toStackInfo(stack, cfg.region);
        await deps.remember?.(info);
        return { stack: info, changed: false };
      }
      throw new SkyfarmError(
        'STACK_FAILED',
        `CloudFormation could not prepare the update of ${p.stackName} (${cs.status}/${cs.executionStatus}): ${cs.statusReason ?? 'no reason given'}`,
      );
    }
    const marker = await latestEventId(cf, stack.stackId);
    await cf.executeChangeSet(p.stackName, changeSetId);
    const { stack: final, events } = await follow(
      cf,
      stack.stackId,
      marker,
      notify,
      limits.operationTimeoutMs,
      signal,
      (s) =>
        new SkyfarmError(
          'STACK_BUSY',
          `Stopped waiting for stack ${s.stackName} after ${seconds(limits.operationTimeoutMs)}; it is still ${s.status} in AWS.`,
        ),
    );
    if (!final || final.status !== 'UPDATE_COMPLETE') {
      throw new SkyfarmError(
        'STACK_FAILED',
        `Updating stack ${p.stackName} failed: ${failureReason(events, final)}. ` +
          (final?.status === 'UPDATE_ROLLBACK_COMPLETE'
            ? 'The stack rolled back to its previous state and still works.'
            : `The stack is now ${final?.status ?? 'gone'}.`),
      );
    }
    const info = toStackInfo(final, cfg.region);
    await deps.remember?.(info);
    return { stack: info, changed: true };
  };

  return {
    async status(params) {
      const target = validateTarget(params);
      const { cfg, cf } = await connect(target);
      const stack = await cf.describeStack(target.stackName);
      if (!stack) {
        throw new SkyfarmError(
          'STACK_NOT_FOUND',
          `No stack named ${target.stackName} in ${cfg.region}. Run \`skyfarm deploy\` to create it.`,
        );
      }
      assertSkyfarm(stack, cfg.region);
      const info = toStackInfo(stack, cfg.region);
      if (USABLE_STATUSES.has(stack.status)) await deps.remember?.(info);
      return info;
    },

    async deploy(params, notify, signal) {
      const p = validateDeploy(params);
      const tpl = getTemplate();
      return exclusive(p.stackName, async () => {
        const { cfg, cf } = await connect(p);
        const tags = { [SKYFARM_TAG]: 'true', 'skyfarm:stack-version': templateVersion(tpl) };

        let stack = await cf.describeStack(p.stackName);
        if (stack) assertSkyfarm(stack, cfg.region);
        if (stack && isInProgress(stack.status)) stack = await waitForOther(cf, stack, notify, signal);
        if (stack && RECREATE_STATUSES.has(stack.status)) {
          synthetic(
            notify,
            stack.stackName,
            stack.stackName,
            'AWS::CloudFormation::Stack',
            stack.status,
            `skyfarm: the stack never finished creating (${stack.status}${stack.statusReason ? `: ${stack.statusReason}` : ''}); ` +
              `deleting it before creating it again.`,
          );
          await deleteAndFollow(cf, stack, notify, signal);
          stack = undefined;
        }
        if (stack && !USABLE_STATUSES.has(stack.status)) {
          throw new SkyfarmError(
            'STACK_FAILED',
            `Stack ${stack.stackName} is ${stack.status}${stack.statusReason ? ` (${stack.statusReason})` : ''} and cannot be updated. ` +
              (stack.status === 'UPDATE_ROLLBACK_FAILED'
                ? 'Continue the rollback in the CloudFormation console, then deploy again.'
                : 'Run `skyfarm destroy` and deploy again.'),
          );
        }
        return stack
          ? update(cf, cfg, p, stack, tpl, tags, notify, signal)
          : create(cf, cfg, p, tpl, tags, notify, signal);
      });
    },

    async destroy(params, notify, signal) {
      const target = validateTarget(params);
      return exclusive(target.stackName, async () => {
        const { cfg, cf } = await connect(target);
        let stack = await cf.describeStack(target.stackName);
        if (stack) assertSkyfarm(stack, cfg.region);
        if (stack && isInProgress(stack.status) && stack.status !== 'DELETE_IN_PROGRESS') {
          stack = await waitForOther(cf, stack, notify, signal);
        }
        if (!stack) {
          await deps.forget?.(target.stackName, cfg.region);
          return { stackName: target.stackName, deleted: false };
        }
        const bucket = stack.outputs.BucketName;
        if (bucket && stack.status !== 'DELETE_IN_PROGRESS') {
          synthetic(
            notify,
            stack.stackName,
            'Bucket',
            'AWS::S3::Bucket',
            'EMPTY_IN_PROGRESS',
            `skyfarm: deleting every object in s3://${bucket}`,
          );
          try {
            const result = await emptyBucket(s3Factory(cfg), bucket, { signal });
            synthetic(
              notify,
              stack.stackName,
              'Bucket',
              'AWS::S3::Bucket',
              'EMPTY_COMPLETE',
              result.missing
                ? `skyfarm: s3://${bucket} does not exist any more`
                : `skyfarm: deleted ${result.deleted} object(s) from s3://${bucket}`,
            );
          } catch (error) {
            if (isSkyfarmError(error) && error.code === 'CANCELED') throw error;
            const message = isSkyfarmError(error) ? error.message : String(error);
            synthetic(notify, stack.stackName, 'Bucket', 'AWS::S3::Bucket', 'EMPTY_FAILED', message);
            throw error;
          }
        }
        await deleteAndFollow(cf, stack, notify, signal);
        await deps.forget?.(target.stackName, cfg.region);
        return { stackName: target.stackName, deleted: true };
      });
    },
  };
}
