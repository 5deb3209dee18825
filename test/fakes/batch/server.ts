// A stateful fake AWS Batch endpoint that speaks the REST-JSON wire protocol of the real
// @aws-sdk/client-batch client and RUNS each job's container command for real as a child process
// (the skyfarm worker, with a folder standing in for EFS). It implements the documented job state
// machine, dependencies, array jobs, retry strategies with evaluateOnExit, TerminateJob/CancelJob,
// ListJobs filters, the awslogs driver (into the fake CloudWatch Logs) and the EventBridge rules the
// stack adds on Batch job state changes. Behaviour and limits: SPEC.md beside this file.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { matchesPattern, transformInput, type Pattern } from './events.js';
import type { FakeLogs } from '../logs/server.js';

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

export type JobStatus =
  'SUBMITTED' | 'PENDING' | 'RUNNABLE' | 'STARTING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';
const STATUSES: JobStatus[] = [
  'SUBMITTED',
  'PENDING',
  'RUNNABLE',
  'STARTING',
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
];
const DONE: ReadonlySet<JobStatus> = new Set(['SUCCEEDED', 'FAILED']);

export interface EvaluateOnExit {
  onStatusReason?: string;
  onReason?: string;
  onExitCode?: string;
  action: 'RETRY' | 'EXIT';
}

export interface RetryStrategy {
  attempts?: number;
  evaluateOnExit?: EvaluateOnExit[];
}

export interface JobDefinitionSpec {
  name: string;
  command: string[];
  environment?: Record<string, string>;
  parameters?: Record<string, string>;
  retryStrategy?: RetryStrategy;
  /** awslogs-stream-prefix; the stream is `<prefix>/default/<task id>`. */
  logStreamPrefix?: string;
  propagateTags?: boolean;
  /** The container image (default `<account>.dkr.ecr.<region>.amazonaws.com/skyfarm/worker:fake`). */
  image?: string;
  /** Revision (default 1); RegisterJobDefinition adds the next one under the same name. */
  revision?: number;
  /** `containerProperties.resourceRequirements` (VCPU, MEMORY, GPU), shown in DescribeJobs' `container`. */
  resourceRequirements?: Array<{ type: string; value: string }>;
  /** Everything else a registered definition carried (returned by DescribeJobDefinitions as given). */
  registered?: Record<string, unknown>;
  tags?: Record<string, string>;
}

export interface QueueSpec {
  name: string;
  /** GPU queues are only recorded (the fake has no GPU; jobs on them run like any other). */
  gpu?: boolean;
  /** Its compute environments by name, in order (DescribeJobQueues' computeEnvironmentOrder). */
  computeEnvironments?: string[];
}

/** A managed compute environment as DescribeComputeEnvironments reports it (scheduling ignores it). */
export interface ComputeEnvironmentSpec {
  name: string;
  /** computeResources.type; absent: an UNMANAGED environment (no computeResources). */
  resourceType?: 'EC2' | 'SPOT' | 'FARGATE' | 'FARGATE_SPOT';
  maxvCpus?: number;
  instanceTypes?: string[];
  allocationStrategy?: string;
  bidPercentage?: number;
}

export interface EventRule {
  name: string;
  pattern: Pattern;
  target: {
    jobQueue: string;
    jobDefinition: string;
    jobName: string;
    arraySize?: number;
    attempts?: number;
    inputTransformer?: { InputPathsMap?: Record<string, string>; InputTemplate: string };
  };
}

export interface FakeBatchOptions {
  jobDefinitions: JobDefinitionSpec[];
  queues: QueueSpec[];
  /** Added to every container's environment last (AWS endpoints, keys, the EFS folder…). */
  hostEnv?: NodeJS.ProcessEnv;
  /** command[0] → the argv that runs it on this machine. */
  executables?: Record<string, string[]>;
  cwd?: string;
  /** Containers running at once (the compute environment's capacity). Default 2. */
  maxRunning?: number;
  /** Scheduler period; each state transition takes at least one tick. Default 40 ms. */
  tickMs?: number;
  logs?: FakeLogs;
  logGroup?: string;
  rules?: EventRule[];
  /**
   * The ECS container instance (ARN) an attempt's container is placed on, as Batch reports it in
   * `container.containerInstanceArn` (default: none reported).
   */
  placeContainer?: (job: {
    queue: string;
    jobName: string;
    arrayIndex?: number;
    attempt: number;
  }) => string | undefined;
  /** Compute environments for DescribeComputeEnvironments (queues name theirs in `computeEnvironments`). */
  computeEnvironments?: ComputeEnvironmentSpec[];
  /** Items per page at most for DescribeJobQueues / DescribeComputeEnvironments (below maxResults). */
  pageLimit?: number;
  /** Whether a job definition's image can be pulled (e.g. the fake ECR has the tag); default: every image. */
  imageExists?: (image: string) => boolean;
}

export interface Attempt {
  container: {
    exitCode?: number;
    reason?: string;
    logStreamName?: string;
    taskArn?: string;
    containerInstanceArn?: string;
  };
  startedAt?: number;
  stoppedAt?: number;
  statusReason?: string;
  output: string[];
}

export interface FakeJob {
  jobId: string;
  jobArn: string;
  jobName: string;
  queue: QueueSpec;
  jobQueue: string;
  definition: JobDefinitionSpec;
  jobDefinition: string;
  status: JobStatus;
  statusReason?: string;
  createdAt: number;
  startedAt?: number;
  stoppedAt?: number;
  dependsOn: Array<{ jobId: string; type?: string }>;
  parameters: Record<string, string>;
  tags: Record<string, string>;
  propagateTags: boolean;
  command: string[];
  environment: Record<string, string>;
  retryStrategy: RetryStrategy;
  arraySize?: number;
  arrayIndex?: number;
  parent?: FakeJob;
  children?: FakeJob[];
  attempts: Attempt[];
  /** Who submitted it: the API, or an EventBridge rule (its name). */
  submittedBy: string;
  history: JobStatus[];
  process?: ChildProcess;
  current?: Attempt;
  stopping?: { kind: 'terminate' | 'host'; reason: string };
}

export interface Interruption {
  /** Which container: by job name and (array children) index; the first attempt only by default. */
  jobName: string | RegExp;
  arrayIndex?: number;
  attempt?: number;
  /** Interrupt once the container prints a line matching this. */
  afterLine: RegExp;
  instanceId?: string;
}

export interface FakeBatch {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown>; at: number }>;
  jobs: Map<string, FakeJob>;
  /** Jobs submitted by EventBridge rules, in order. */
  ruleSubmissions: Array<{ rule: string; jobId: string; parameters: Record<string, string> }>;
  /**
   * These operations (e.g. "DescribeComputeEnvironments") answer 403 AccessDeniedException, as for an
   * identity without the IAM action; [] allows all again.
   */
  deny(operations: string[]): void;
  /** Keep RUNNABLE jobs of this queue from starting (no capacity). */
  holdQueue(queue: string, held: boolean): void;
  /** The next container that matches is killed as if its spot instance were reclaimed. */
  interrupt(interruption: Interruption): void;
  byName(name: string): FakeJob[];
  /** Resolves when `predicate` holds (checked every tick) or rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Stops the scheduler and kills every container still running. */
  close(): Promise<void>;
}

/** Every process below `pid` (a container's whole tree: the worker and the Blender it started). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // the process ended meanwhile
    }
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    for (const child of children.get(stack.pop()!) ?? []) {
      out.push(child);
      stack.push(child);
    }
  }
  return out;
}

/** Kills a container the way losing its instance does: everything in it, at once. */
function killTree(pid: number | undefined): void {
  if (pid === undefined) return;
  for (const child of [pid, ...descendants(pid)]) {
    try {
      process.kill(child, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

class BatchError extends Error {
  constructor(
    readonly type: 'ClientException' | 'ServerException' | 'AccessDeniedException',
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

function glob(pattern: string | undefined, value: string): boolean {
  if (pattern === undefined) return true;
  if (pattern.endsWith('*')) return value.toLowerCase().startsWith(pattern.slice(0, -1).toLowerCase());
  return value.toLowerCase() === pattern.toLowerCase();
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(response: ServerResponse, status: number, body: unknown, errorType?: string): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
  });
  response.end(text);
}

export async function startFakeBatch(options: FakeBatchOptions): Promise<FakeBatch> {
  const tickMs = options.tickMs ?? 40;
  const maxRunning = options.maxRunning ?? 2;
  const logGroup = options.logGroup ?? '/aws/batch/job';
  const jobs = new Map<string, FakeJob>();
  const order: FakeJob[] = [];
  const calls: FakeBatch['calls'] = [];
  const ruleSubmissions: FakeBatch['ruleSubmissions'] = [];
  const held = new Set<string>();
  const interruptions: Interruption[] = [];
  const queueArn = (name: string) => `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${name}`;
  const defArn = (name: string, revision = 1) =>
    `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${name}:${revision}`;
  const definitions = options.jobDefinitions.map((d) => ({ ...d, revision: d.revision ?? 1 }));
  const defaultImage = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/skyfarm/worker:fake`;
  let closed = false;

  const ceArn = (name: string) => `arn:aws:batch:${REGION}:${ACCOUNT}:compute-environment/${name}`;
  /** maxResults (1–100) and nextToken (an offset) as Describe* take them; `pageLimit` caps pages. */
  const paginate = <T>(
    input: Record<string, unknown>,
    list: T[],
    render: (item: T) => unknown,
    key: string,
  ): Record<string, unknown> => {
    const max = input['maxResults'] === undefined ? 100 : Number(input['maxResults']);
    if (!Number.isInteger(max) || max < 1 || max > 100)
      throw new BatchError('ClientException', 'maxResults must be between 1 and 100');
    const start = input['nextToken'] === undefined ? 0 : Number(input['nextToken']);
    if (!Number.isInteger(start) || start < 0 || start > list.length)
      throw new BatchError('ClientException', 'invalid nextToken');
    const size = Math.min(max, options.pageLimit ?? max);
    return {
      [key]: list.slice(start, start + size).map(render),
      ...(start + size < list.length ? { nextToken: String(start + size) } : {}),
    };
  };
  const findQueue = (ref: unknown): QueueSpec => {
    const text = String(ref ?? '');
    const queue = options.queues.find((q) => q.name === text || queueArn(q.name) === text);
    if (!queue) throw new BatchError('ClientException', `JobQueue ${text} not found`);
    return queue;
  };
  const findDefinition = (ref: unknown): JobDefinitionSpec => {
    const text = String(ref ?? '');
    // A name alone means its latest revision; `name:N` and the ARN name one revision.
    const latest = definitions.filter((d) => d.name === text).at(-1);
    const definition =
      latest ??
      definitions.find((d) => `${d.name}:${d.revision}` === text || defArn(d.name, d.revision) === text);
    if (!definition) throw new BatchError('ClientException', `Job definition ${text} not found`);
    return definition;
  };

  // ------------------------------------------------------------------------------------------
  // Job detail as DescribeJobs (and the EventBridge event) shows it.

  const statusSummary = (job: FakeJob): Record<string, number> => {
    const summary: Record<string, number> = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const child of job.children ?? []) summary[child.status] = (summary[child.status] ?? 0) + 1;
    return summary;
  };

  const describe = (job: FakeJob): Record<string, unknown> => {
    const last = job.attempts.at(-1);
    const container: Record<string, unknown> = {
      image: job.definition.image ?? defaultImage,
      command: job.command,
      environment: Object.entries(job.environment).map(([name, value]) => ({ name, value })),
    };
    const live = job.current ?? last;
    if (live?.container.logStreamName) container['logStreamName'] = live.container.logStreamName;
    if (live?.container.containerInstanceArn)
      container['containerInstanceArn'] = live.container.containerInstanceArn;
    if (job.definition.resourceRequirements)
      container['resourceRequirements'] = job.definition.resourceRequirements;
    if (last?.container.exitCode !== undefined && DONE.has(job.status))
      container['exitCode'] = last.container.exitCode;
    if (last?.container.reason && DONE.has(job.status)) container['reason'] = last.container.reason;
    const detail: Record<string, unknown> = {
      jobArn: job.jobArn,
      jobName: job.jobName,
      jobId: job.jobId,
      jobQueue: job.jobQueue,
      status: job.status,
      attempts: job.attempts.map((a) => ({
        container: {
          ...(a.container.exitCode !== undefined ? { exitCode: a.container.exitCode } : {}),
          ...(a.container.reason ? { reason: a.container.reason } : {}),
          ...(a.container.logStreamName ? { logStreamName: a.container.logStreamName } : {}),
          ...(a.container.taskArn ? { taskArn: a.container.taskArn } : {}),
          ...(a.container.containerInstanceArn
            ? { containerInstanceArn: a.container.containerInstanceArn }
            : {}),
        },
        ...(a.startedAt !== undefined ? { startedAt: a.startedAt } : {}),
        ...(a.stoppedAt !== undefined ? { stoppedAt: a.stoppedAt } : {}),
        ...(a.statusReason ? { statusReason: a.statusReason } : {}),
      })),
      ...(job.statusReason ? { statusReason: job.statusReason } : {}),
      createdAt: job.createdAt,
      ...(job.startedAt !== undefined ? { startedAt: job.startedAt } : {}),
      ...(job.stoppedAt !== undefined ? { stoppedAt: job.stoppedAt } : {}),
      retryStrategy: job.retryStrategy,
      dependsOn: job.dependsOn,
      jobDefinition: job.jobDefinition,
      parameters: job.parameters,
      container,
      tags: job.tags,
      propagateTags: job.propagateTags,
      platformCapabilities: ['EC2'],
    };
    if (job.arraySize !== undefined)
      detail['arrayProperties'] = { size: job.arraySize, statusSummary: statusSummary(job) };
    if (job.arrayIndex !== undefined) detail['arrayProperties'] = { index: job.arrayIndex };
    return detail;
  };

  const summarize = (job: FakeJob): Record<string, unknown> => {
    const last = job.attempts.at(-1);
    return {
      jobArn: job.jobArn,
      jobId: job.jobId,
      jobName: job.jobName,
      createdAt: job.createdAt,
      status: job.status,
      ...(job.statusReason ? { statusReason: job.statusReason } : {}),
      ...(job.startedAt !== undefined ? { startedAt: job.startedAt } : {}),
      ...(job.stoppedAt !== undefined ? { stoppedAt: job.stoppedAt } : {}),
      ...(last?.container.exitCode !== undefined && DONE.has(job.status)
        ? { container: { exitCode: last.container.exitCode } }
        : {}),
      ...(job.arraySize !== undefined ? { arrayProperties: { size: job.arraySize } } : {}),
      ...(job.arrayIndex !== undefined ? { arrayProperties: { index: job.arrayIndex } } : {}),
      jobDefinition: job.jobDefinition,
    };
  };

  // ------------------------------------------------------------------------------------------
  // State changes and the EventBridge rules that react to them.

  const setStatus = (job: FakeJob, status: JobStatus, reason?: string) => {
    if (job.status === status && reason === undefined) return;
    job.status = status;
    if (reason !== undefined) job.statusReason = reason;
    job.history.push(status);
    if (DONE.has(status)) job.stoppedAt ??= Date.now();
    emit(job);
  };

  const emit = (job: FakeJob) => {
    const event = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Batch Job State Change',
      source: 'aws.batch',
      account: ACCOUNT,
      time: new Date().toISOString(),
      region: REGION,
      resources: [job.jobArn],
      detail: describe(job),
    };
    for (const rule of options.rules ?? []) {
      if (!matchesPattern(rule.pattern, event)) continue;
      let parameters: Record<string, string> = {};
      if (rule.target.inputTransformer) {
        const input = JSON.parse(transformInput(event, rule.target.inputTransformer)) as {
          Parameters?: Record<string, unknown>;
        };
        parameters = Object.fromEntries(
          Object.entries(input.Parameters ?? {}).map(([k, v]) => [k, String(v ?? '')]),
        );
      }
      const submitted = submit(
        {
          jobName: rule.target.jobName,
          jobQueue: rule.target.jobQueue,
          jobDefinition: rule.target.jobDefinition,
          parameters,
          ...(rule.target.arraySize ? { arrayProperties: { size: rule.target.arraySize } } : {}),
          ...(rule.target.attempts ? { retryStrategy: { attempts: rule.target.attempts } } : {}),
        },
        `rule:${rule.name}`,
      );
      ruleSubmissions.push({ rule: rule.name, jobId: submitted.jobId, parameters });
    }
  };

  // ------------------------------------------------------------------------------------------
  // SubmitJob

  const substitute = (command: string[], parameters: Record<string, string>) =>
    command.map((arg) =>
      arg.startsWith('Ref::') && parameters[arg.slice(5)] !== undefined ? parameters[arg.slice(5)]! : arg,
    );

  const submit = (input: Record<string, unknown>, submittedBy: string): FakeJob => {
    const jobName = String(input['jobName'] ?? '');
    if (!JOB_NAME.test(jobName))
      throw new BatchError('ClientException', `jobName ${JSON.stringify(jobName)} is invalid`);
    const queue = findQueue(input['jobQueue']);
    const definition = findDefinition(input['jobDefinition']);
    const dependsOn = (input['dependsOn'] as Array<{ jobId?: string; type?: string }> | undefined) ?? [];
    if (dependsOn.length > 20) throw new BatchError('ClientException', 'A job can depend on at most 20 jobs');
    for (const dep of dependsOn) {
      if (!dep.jobId || !jobs.has(dep.jobId))
        throw new BatchError('ClientException', `Dependent job ${dep.jobId} not found`);
    }
    const array = input['arrayProperties'] as { size?: number } | undefined;
    if (
      array?.size !== undefined &&
      (!Number.isInteger(array.size) || array.size < 2 || array.size > 10_000)
    ) {
      throw new BatchError(
        'ClientException',
        `arrayProperties.size must be between 2 and 10000, got ${array.size}`,
      );
    }
    const overrides =
      (input['containerOverrides'] as {
        command?: string[];
        environment?: Array<{ name: string; value: string }>;
      }) ?? {};
    if (overrides.command?.some((arg) => arg === ''))
      throw new BatchError('ClientException', 'command cannot contain an empty string');
    for (const kv of overrides.environment ?? []) {
      if (kv.name.startsWith('AWS_BATCH'))
        throw new BatchError('ClientException', `Environment variable ${kv.name} is reserved`);
    }
    const parameters = {
      ...(definition.parameters ?? {}),
      ...((input['parameters'] as Record<string, string>) ?? {}),
    };
    const jobId = randomUUID();
    const job: FakeJob = {
      jobId,
      jobArn: `arn:aws:batch:${REGION}:${ACCOUNT}:job/${jobId}`,
      jobName,
      queue,
      jobQueue: queueArn(queue.name),
      definition,
      jobDefinition: defArn(definition.name, definition.revision),
      status: 'SUBMITTED',
      createdAt: Date.now(),
      dependsOn: dependsOn.map((d) => ({ jobId: d.jobId!, ...(d.type ? { type: d.type } : {}) })),
      parameters,
      tags: (input['tags'] as Record<string, string>) ?? {},
      propagateTags: Boolean(input['propagateTags'] ?? definition.propagateTags),
      command: substitute(overrides.command ?? definition.command, parameters),
      environment: {
        ...(definition.environment ?? {}),
        ...Object.fromEntries((overrides.environment ?? []).map((kv) => [kv.name, kv.value])),
      },
      retryStrategy: (input['retryStrategy'] as RetryStrategy) ?? definition.retryStrategy ?? { attempts: 1 },
      ...(array?.size !== undefined ? { arraySize: array.size } : {}),
      attempts: [],
      submittedBy,
      history: ['SUBMITTED'],
    };
    jobs.set(jobId, job);
    order.push(job);
    emit(job);
    return job;
  };

  // ------------------------------------------------------------------------------------------
  // Containers

  const startContainer = (job: FakeJob) => {
    const taskId = randomBytes(16).toString('hex');
    const stream = `${job.definition.logStreamPrefix ?? 'default'}/default/${taskId}`;
    const attempt: Attempt = {
      container: {
        logStreamName: stream,
        taskArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:task/skyfarm/${taskId}`,
      },
      startedAt: Date.now(),
      output: [],
    };
    job.current = attempt;
    job.startedAt = attempt.startedAt;
    const attemptNumber = job.attempts.length + 1;
    const placed = options.placeContainer?.({
      queue: job.queue.name,
      jobName: job.jobName,
      ...(job.arrayIndex !== undefined ? { arrayIndex: job.arrayIndex } : {}),
      attempt: attemptNumber,
    });
    if (placed) attempt.container.containerInstanceArn = placed;
    const env: NodeJS.ProcessEnv = {
      ...job.environment,
      AWS_BATCH_JOB_ID: job.jobId,
      AWS_BATCH_JOB_ATTEMPT: String(attemptNumber),
      AWS_BATCH_JQ_NAME: job.queue.name,
      AWS_BATCH_CE_NAME: `${job.queue.name}-ce`,
      ...(job.arrayIndex !== undefined ? { AWS_BATCH_JOB_ARRAY_INDEX: String(job.arrayIndex) } : {}),
      ...options.hostEnv,
    };
    const [command, ...args] = job.command;
    const executable = (command && options.executables?.[command]) ?? (command ? [command] : []);
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      job.process = undefined;
      job.current = undefined;
      attempt.stoppedAt = Date.now();
      if (spawnError) attempt.container.reason = `CannotStartContainerError: ${spawnError.message}`;
      const stopping = job.stopping;
      job.stopping = undefined;
      if (stopping?.kind === 'host') {
        attempt.statusReason = stopping.reason;
      } else {
        attempt.statusReason = 'Essential container in task exited';
        if (exitCode !== null) attempt.container.exitCode = exitCode;
        else if (signal) attempt.container.exitCode = 128 + (signal === 'SIGKILL' ? 9 : 15);
      }
      job.attempts.push(attempt);
      if (stopping?.kind === 'terminate') {
        setStatus(job, 'FAILED', stopping.reason);
        return;
      }
      if (stopping === undefined && exitCode === 0) {
        setStatus(job, 'SUCCEEDED', 'Essential container in task exited');
        return;
      }
      const action = retryAction(job, attempt);
      if (action === 'RETRY' && job.attempts.length < (job.retryStrategy.attempts ?? 1)) {
        job.startedAt = undefined;
        setStatus(job, 'RUNNABLE', '');
      } else {
        setStatus(job, 'FAILED', attempt.statusReason);
      }
    };
    if (executable.length === 0) {
      finish(null, null, new Error('no command'));
      return;
    }
    const child = spawn(executable[0]!, [...executable.slice(1), ...args], {
      cwd: options.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    job.process = child;
    let pending = '';
    const onData = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(job, attempt, attemptNumber, line);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (error) => finish(null, null, error));
    child.on('close', (code, signal) => {
      if (pending) onLine(job, attempt, attemptNumber, pending);
      finish(code, signal);
    });
  };

  const onLine = (job: FakeJob, attempt: Attempt, attemptNumber: number, line: string) => {
    attempt.output.push(line);
    options.logs?.append(logGroup, attempt.container.logStreamName!, [line]);
    const index = interruptions.findIndex(
      (i) =>
        (typeof i.jobName === 'string' ? i.jobName === job.jobName : i.jobName.test(job.jobName)) &&
        (i.arrayIndex === undefined || i.arrayIndex === job.arrayIndex) &&
        (i.attempt ?? 1) === attemptNumber &&
        i.afterLine.test(line),
    );
    if (index >= 0 && job.process && !job.stopping) {
      const [interruption] = interruptions.splice(index, 1);
      const instance = interruption!.instanceId ?? `i-${randomBytes(8).toString('hex').slice(0, 17)}`;
      job.stopping = { kind: 'host', reason: `Host EC2 (instance ${instance}) terminated.` };
      killTree(job.process.pid); // the instance is gone: no grace period, nothing survives
    }
  };

  const retryAction = (job: FakeJob, attempt: Attempt): 'RETRY' | 'EXIT' => {
    for (const rule of job.retryStrategy.evaluateOnExit ?? []) {
      const matches =
        glob(rule.onStatusReason, attempt.statusReason ?? '') &&
        glob(rule.onReason, attempt.container.reason ?? '') &&
        glob(
          rule.onExitCode,
          attempt.container.exitCode === undefined ? '' : String(attempt.container.exitCode),
        );
      if (matches) return rule.action.toUpperCase() === 'RETRY' ? 'RETRY' : 'EXIT';
    }
    return 'RETRY'; // no condition matched: retried while attempts remain (AWS documented default)
  };

  // ------------------------------------------------------------------------------------------
  // The scheduler

  const depState = (job: FakeJob): 'wait' | 'ok' | 'failed' => {
    let wait = false;
    for (const dep of job.dependsOn) {
      const other = jobs.get(dep.jobId);
      if (!other || other.status === 'FAILED') return 'failed';
      if (other.status !== 'SUCCEEDED') wait = true;
    }
    return wait ? 'wait' : 'ok';
  };

  const running = () => order.filter((j) => j.status === 'STARTING' || j.status === 'RUNNING').length;

  const tick = () => {
    for (const job of order.slice()) {
      if (job.arraySize !== undefined) {
        tickParent(job);
        continue;
      }
      switch (job.status) {
        case 'SUBMITTED':
          setStatus(job, depState(job) === 'ok' ? 'RUNNABLE' : 'PENDING');
          break;
        case 'PENDING': {
          const deps = depState(job);
          if (deps === 'failed') setStatus(job, 'FAILED', 'Dependent Job failed');
          else if (deps === 'ok') setStatus(job, 'RUNNABLE');
          break;
        }
        case 'RUNNABLE':
          if (!held.has(job.queue.name) && running() < maxRunning) setStatus(job, 'STARTING', '');
          break;
        case 'STARTING': {
          const image = job.definition.image ?? defaultImage;
          if (options.imageExists && !options.imageExists(image)) {
            // What ECS reports when the image tag is not in the registry; not retried (no `Host EC2`).
            job.attempts.push({
              container: {
                reason: `CannotPullContainerError: Error response from daemon: manifest for ${image} not found: manifest unknown: Requested image not found`,
              },
              stoppedAt: Date.now(),
              statusReason: 'Task failed to start',
              output: [],
            });
            setStatus(job, 'FAILED', 'Task failed to start');
            break;
          }
          setStatus(job, 'RUNNING');
          startContainer(job);
          break;
        }
        default:
          break;
      }
    }
  };

  const tickParent = (job: FakeJob) => {
    if (DONE.has(job.status)) return;
    if (!job.children) {
      const deps = depState(job);
      if (job.status === 'SUBMITTED') {
        setStatus(job, 'PENDING');
        return;
      }
      if (deps === 'failed') {
        setStatus(job, 'FAILED', 'Dependent Job failed');
        return;
      }
      if (deps === 'wait') return;
      job.children = [];
      for (let index = 0; index < job.arraySize!; index++) {
        const child: FakeJob = {
          ...job,
          jobId: `${job.jobId}:${index}`,
          jobArn: `${job.jobArn}:${index}`,
          arraySize: undefined,
          arrayIndex: index,
          parent: job,
          children: undefined,
          dependsOn: [],
          attempts: [],
          status: 'SUBMITTED',
          history: ['SUBMITTED'],
          createdAt: Date.now(),
          statusReason: undefined,
          startedAt: undefined,
          stoppedAt: undefined,
          process: undefined,
          current: undefined,
          stopping: undefined,
        };
        delete child.arraySize;
        job.children.push(child);
        jobs.set(child.jobId, child);
        order.push(child);
        setStatus(child, 'RUNNABLE');
      }
      return;
    }
    const children = job.children;
    if (children.every((c) => DONE.has(c.status))) {
      const failed = children.filter((c) => c.status === 'FAILED').length;
      if (failed === 0) setStatus(job, 'SUCCEEDED', 'Array Child Job Succeeded');
      else
        setStatus(job, 'FAILED', job.stopping?.reason ?? `${failed} of ${children.length} child jobs failed`);
    } else if (children.some((c) => c.status !== 'SUBMITTED')) {
      if (job.status !== 'PENDING') setStatus(job, 'PENDING');
      if (children.some((c) => c.status === 'RUNNING' || c.status === 'STARTING') && !job.startedAt)
        job.startedAt = Date.now();
    }
  };

  const timer = setInterval(() => {
    try {
      tick();
    } catch (error) {
      console.error('fake Batch scheduler failed', error);
    }
  }, tickMs);

  // ------------------------------------------------------------------------------------------
  // TerminateJob / CancelJob

  const stop = (job: FakeJob, reason: string, terminate: boolean) => {
    if (DONE.has(job.status)) return;
    if (job.arraySize !== undefined) {
      job.stopping = { kind: 'terminate', reason };
      if (!job.children) setStatus(job, 'FAILED', reason);
      else for (const child of job.children) stop(child, reason, terminate);
      return;
    }
    if (job.status === 'STARTING' || job.status === 'RUNNING') {
      if (!terminate) return; // CancelJob leaves started jobs alone
      job.stopping = { kind: 'terminate', reason };
      if (job.process) job.process.kill('SIGTERM');
      else setStatus(job, 'FAILED', reason);
      return;
    }
    setStatus(job, 'FAILED', reason);
  };

  // ------------------------------------------------------------------------------------------
  // HTTP

  const operations: Record<string, (input: Record<string, unknown>) => unknown> = {
    '/v1/submitjob': (input) => {
      const job = submit(input, 'api');
      return { jobArn: job.jobArn, jobName: job.jobName, jobId: job.jobId };
    },
    '/v1/describejobs': (input) => {
      const ids = (input['jobs'] as string[] | undefined) ?? [];
      if (ids.length > 100)
        throw new BatchError('ClientException', 'DescribeJobs accepts at most 100 job ids');
      return { jobs: ids.flatMap((id) => (jobs.has(id) ? [describe(jobs.get(id)!)] : [])) };
    },
    '/v1/listjobs': (input) => {
      const selectors = ['jobQueue', 'arrayJobId', 'multiNodeJobId'].filter((k) => input[k] !== undefined);
      if (selectors.length !== 1) {
        throw new BatchError(
          'ClientException',
          'Specify exactly one of jobQueue, arrayJobId or multiNodeJobId',
        );
      }
      const filters = (input['filters'] as Array<{ name?: string; values?: string[] }> | undefined) ?? [];
      let list: FakeJob[];
      if (input['arrayJobId'] !== undefined) {
        list = jobs.get(String(input['arrayJobId']))?.children ?? [];
      } else if (input['jobQueue'] !== undefined) {
        const queue = findQueue(input['jobQueue']);
        list = order.filter((j) => j.queue === queue && j.arrayIndex === undefined);
      } else {
        list = [];
      }
      const nameFilter = filters.find((f) => f.name === 'JOB_NAME');
      if (nameFilter) {
        list = list.filter((j) => (nameFilter.values ?? []).some((value) => glob(value, j.jobName)));
      } else if (filters.length === 0) {
        const status = String(input['jobStatus'] ?? 'RUNNING');
        list = list.filter((j) => j.status === status);
      }
      const start = Number(input['nextToken'] ?? 0);
      const size = Number(input['maxResults'] ?? 100);
      const page = list.slice(start, start + size);
      return {
        jobSummaryList: page.map(summarize),
        ...(start + size < list.length ? { nextToken: String(start + size) } : {}),
      };
    },
    '/v1/describejobdefinitions': (input) => {
      const refs = input['jobDefinitions'] as string[] | undefined;
      let list = refs?.length
        ? refs.flatMap((ref) => {
            try {
              return [findDefinition(ref)];
            } catch {
              return [];
            }
          })
        : definitions.slice();
      if (input['jobDefinitionName'] !== undefined)
        list = list.filter((d) => d.name === input['jobDefinitionName']);
      if (input['status'] !== undefined && input['status'] !== 'ACTIVE') list = [];
      return {
        jobDefinitions: list.map((d) => ({
          ...(d.registered ?? {}),
          jobDefinitionName: d.name,
          jobDefinitionArn: defArn(d.name, d.revision),
          revision: d.revision,
          status: 'ACTIVE',
          type: 'container',
          parameters: d.parameters ?? {},
          retryStrategy: d.retryStrategy ?? { attempts: 1 },
          propagateTags: Boolean(d.propagateTags),
          platformCapabilities: ['EC2'],
          containerProperties: {
            ...((d.registered?.['containerProperties'] as Record<string, unknown>) ?? {}),
            image: d.image ?? defaultImage,
            command: d.command,
            environment: Object.entries(d.environment ?? {}).map(([name, value]) => ({ name, value })),
            ...(d.resourceRequirements ? { resourceRequirements: d.resourceRequirements } : {}),
            ...(d.logStreamPrefix
              ? {
                  logConfiguration: {
                    logDriver: 'awslogs',
                    options: { 'awslogs-stream-prefix': d.logStreamPrefix },
                  },
                }
              : {}),
          },
          ...(d.tags ? { tags: d.tags } : {}),
        })),
      };
    },
    '/v1/registerjobdefinition': (input) => {
      const name = String(input['jobDefinitionName'] ?? '');
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/.test(name))
        throw new BatchError('ClientException', `invalid jobDefinitionName ${name}`);
      if (input['type'] !== 'container')
        throw new BatchError('ClientException', 'the fake registers container job definitions only');
      const container = (input['containerProperties'] ?? {}) as Record<string, unknown>;
      if (typeof container['image'] !== 'string' || !container['image'])
        throw new BatchError('ClientException', 'containerProperties.image is required');
      const logOptions = (container['logConfiguration'] as { options?: Record<string, string> } | undefined)
        ?.options;
      const retry = input['retryStrategy'] as RetryStrategy | undefined;
      const revision = Math.max(0, ...definitions.filter((d) => d.name === name).map((d) => d.revision)) + 1;
      definitions.push({
        name,
        revision,
        image: container['image'],
        command: (container['command'] as string[]) ?? [],
        environment: Object.fromEntries(
          ((container['environment'] as Array<{ name: string; value: string }>) ?? []).map((e) => [
            e.name,
            e.value,
          ]),
        ),
        parameters: (input['parameters'] as Record<string, string>) ?? {},
        ...(retry ? { retryStrategy: retry } : {}),
        ...(logOptions?.['awslogs-stream-prefix']
          ? { logStreamPrefix: logOptions['awslogs-stream-prefix'] }
          : {}),
        propagateTags: Boolean(input['propagateTags']),
        ...(Array.isArray(container['resourceRequirements'])
          ? {
              resourceRequirements: container['resourceRequirements'] as Array<{
                type: string;
                value: string;
              }>,
            }
          : {}),
        registered: input,
        ...(input['tags'] ? { tags: input['tags'] as Record<string, string> } : {}),
      });
      return { jobDefinitionName: name, jobDefinitionArn: defArn(name, revision), revision };
    },
    '/v1/describejobqueues': (input) => {
      const refs = (input['jobQueues'] as string[] | undefined) ?? [];
      if (refs.length > 100) throw new BatchError('ClientException', 'jobQueues accepts at most 100 entries');
      const list = refs.length
        ? options.queues.filter((q) => refs.some((r) => r === q.name || r === queueArn(q.name)))
        : options.queues;
      return paginate(
        input,
        list,
        (q) => ({
          jobQueueName: q.name,
          jobQueueArn: queueArn(q.name),
          state: 'ENABLED',
          status: 'VALID',
          priority: 10,
          computeEnvironmentOrder: (q.computeEnvironments ?? []).map((name, i) => ({
            order: i + 1,
            computeEnvironment: ceArn(name),
          })),
          jobQueueType: 'ECS',
        }),
        'jobQueues',
      );
    },
    '/v1/describecomputeenvironments': (input) => {
      const refs = (input['computeEnvironments'] as string[] | undefined) ?? [];
      if (refs.length > 100)
        throw new BatchError('ClientException', 'computeEnvironments accepts at most 100 entries');
      const all = options.computeEnvironments ?? [];
      const list = refs.length
        ? all.filter((c) => refs.some((r) => r === c.name || r === ceArn(c.name)))
        : all;
      return paginate(
        input,
        list,
        (c) => ({
          computeEnvironmentName: c.name,
          computeEnvironmentArn: ceArn(c.name),
          ecsClusterArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:cluster/${c.name}_Batch_fake`,
          type: c.resourceType ? 'MANAGED' : 'UNMANAGED',
          state: 'ENABLED',
          status: 'VALID',
          containerOrchestrationType: 'ECS',
          ...(c.resourceType
            ? {
                computeResources: {
                  type: c.resourceType,
                  maxvCpus: c.maxvCpus ?? 256,
                  ...(c.resourceType.startsWith('FARGATE')
                    ? {}
                    : {
                        minvCpus: 0,
                        desiredvCpus: 0,
                        instanceTypes: c.instanceTypes ?? ['optimal'],
                        allocationStrategy:
                          c.allocationStrategy ??
                          (c.resourceType === 'SPOT'
                            ? 'SPOT_PRICE_CAPACITY_OPTIMIZED'
                            : 'BEST_FIT_PROGRESSIVE'),
                        ...(c.bidPercentage !== undefined ? { bidPercentage: c.bidPercentage } : {}),
                      }),
                  subnets: ['subnet-0fake'],
                  securityGroupIds: ['sg-0fake'],
                },
              }
            : {}),
        }),
        'computeEnvironments',
      );
    },
    '/v1/terminatejob': (input) => {
      const job = jobs.get(String(input['jobId']));
      if (!job) throw new BatchError('ClientException', `Job ${String(input['jobId'])} not found`);
      if (!input['reason']) throw new BatchError('ClientException', 'reason is required');
      stop(job, String(input['reason']), true);
      return {};
    },
    '/v1/canceljob': (input) => {
      const job = jobs.get(String(input['jobId']));
      if (!job) throw new BatchError('ClientException', `Job ${String(input['jobId'])} not found`);
      if (!input['reason']) throw new BatchError('ClientException', 'reason is required');
      stop(job, String(input['reason']), false);
      return {};
    },
  };

  let denied: string[] = [];
  const server: Server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      const path = (request.url ?? '').split('?')[0] ?? '';
      try {
        const handler = operations[path];
        if (request.method !== 'POST' || !handler) {
          throw new BatchError(
            'ClientException',
            `fake Batch does not implement ${request.method} ${path}`,
            404,
          );
        }
        if (!/^AWS4-HMAC-SHA256 Credential=/.test(request.headers.authorization ?? '')) {
          throw new BatchError('ClientException', 'request is not signed', 403);
        }
        const input = JSON.parse(body || '{}') as Record<string, unknown>;
        calls.push({ operation: path.slice('/v1/'.length), input, at: Date.now() });
        const denial = denied.find((op) => `/v1/${op.toLowerCase()}` === path);
        if (denial)
          throw new BatchError(
            'AccessDeniedException',
            `User: arn:aws:iam::${ACCOUNT}:user/artist is not authorized to perform: batch:${denial} ` +
              'because no identity-based policy allows the batch:' +
              denial +
              ' action',
            403,
          );
        reply(response, 200, handler(input));
      } catch (error) {
        if (error instanceof BatchError)
          reply(response, error.status, { message: error.message }, error.type);
        else reply(response, 500, { message: String(error) }, 'ServerException');
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    jobs,
    ruleSubmissions,
    deny: (operations) => void (denied = [...operations]),
    holdQueue: (queue, on) => void (on ? held.add(queue) : held.delete(queue)),
    interrupt: (interruption) => void interruptions.push(interruption),
    byName: (name) => order.filter((j) => j.jobName === name && j.arrayIndex === undefined),
    waitFor: (predicate, timeoutMs = 60_000, what = 'condition') =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const check = setInterval(() => {
          if (predicate()) {
            clearInterval(check);
            resolve();
          } else if (Date.now() - started > timeoutMs || closed) {
            clearInterval(check);
            reject(new Error(`fake Batch: timed out after ${timeoutMs} ms waiting for ${what}`));
          }
        }, tickMs);
      }),
    close: async () => {
      closed = true;
      clearInterval(timer);
      const alive = order.filter((j) => j.process);
      await Promise.all(
        alive.map(
          (j) =>
            new Promise<void>((resolve) => {
              j.process!.once('close', () => resolve());
              killTree(j.process!.pid);
            }),
        ),
      );
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
