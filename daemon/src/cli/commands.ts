// The job commands: render (with --wait), jobs, status, cancel, logs, demo.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type {
  AwsRenderOptions,
  CostQueueParams,
  EventMap,
  Job,
  ProjectUploadParams,
  RenderSubmitParams,
} from '../../../protocol/generated/protocol.js';
import type { DaemonClient } from '../client/daemon-client.js';
import { preparedOnly } from './aws-commands.js';
import { isOutageMessage } from '../batch/outage.js';
import { FINISHED_STATES } from '../jobs/job-repo.js';
import { SkyfarmError } from '../errors.js';
import { findBlender } from '../render/blender.js';
import { findProjectRoot } from '../config/project-root.js';
import { connect, connectOrStart, stopDaemon } from './daemon-control.js';
import { EXIT, exitCodeForState } from './exit-codes.js';
import { ProgressPrinter, formatDuration, liveAndEta } from './progress.js';
import { costLine } from '../cost/format.js';
import { jobCostText, queueCostBeforeSubmit } from './cost-command.js';

export interface CliContext {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

function print(ctx: CliContext, text: string): void {
  ctx.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

function printJson(ctx: CliContext, value: unknown): void {
  print(ctx, JSON.stringify(value, null, 2));
}

export function describeJob(job: Job): string {
  const lines = [
    `${job.id}  ${job.name}`,
    `  state     ${job.state}${job.error ? ` (${job.error.code})` : ''}`,
    `  frames    ${job.framesDone}/${job.framesTotal} done${job.framesFailed ? `, ${job.framesFailed} failed: ${job.failedFrames.join(', ')}` : ''} (spec ${job.frames})`,
    `  stages    upload ${job.stages.upload}, copy ${job.stages.copy}, render ${job.stages.render}, publish ${job.stages.publish}`,
    `  output    ${job.output}`,
    `  message   ${job.message}`,
  ];
  // AWS jobs: "≈ $0.42 so far · projected ≈ $1.10 ($0.95–$1.30) (c6i.xlarge spot ×3)".
  if (job.cost) lines.push(`  cost      ${costLine(job.cost, FINISHED_STATES.has(job.state))}`);
  if (!FINISHED_STATES.has(job.state)) {
    // e.g. "12% · frame 12: 340/1024 samples · ETA 41 min 10 s"
    const live = liveAndEta(job);
    lines.push(`  progress  ${Math.floor(job.progress * 100)}%${live ? ` · ${live}` : ''}`);
  }
  return lines.join('\n');
}

/** Follows a job until it ends, printing progress; resolves with the final snapshot. */
export async function waitForJob(
  client: DaemonClient,
  jobId: string,
  printer?: ProgressPrinter,
): Promise<Job> {
  return new Promise<Job>((resolvePromise, reject) => {
    let settled = false;
    const finish = (job: Job) => {
      if (settled) return;
      settled = true;
      stopEvents();
      stopClose();
      printer?.update(job);
      printer?.finish();
      resolvePromise(job);
    };
    const stopEvents = client.onEvent((event, data) => {
      if (event !== 'job.update') return;
      const job = data as Job;
      if (job.id !== jobId) return;
      if (FINISHED_STATES.has(job.state)) finish(job);
      else printer?.update(job);
    });
    const stopClose = client.onClose((reason) => {
      if (settled) return;
      settled = true;
      printer?.finish();
      reject(new SkyfarmError('DAEMON_UNREACHABLE', `lost the daemon while waiting for ${jobId}: ${reason}`));
    });
    // Subscribed first, then read the current state, so a job that ended meanwhile is not missed.
    client.request('jobs.get', { jobId }).then(({ job }) => {
      if (FINISHED_STATES.has(job.state)) finish(job);
      else printer?.update(job);
    }, reject);
  });
}

export interface RenderOptions {
  file: string;
  frames?: string;
  chunkSize?: number;
  /** Render every frame as N parts on N machines (AWS). */
  split?: number;
  backend?: 'local' | 'aws';
  output?: string;
  scene?: string;
  name?: string;
  strict?: boolean;
  /** --backend aws: farm, device, market, Blender version, mail, --prepare-only. */
  aws?: AwsRenderOptions;
  wait: boolean;
  json: boolean;
}

/** The queue a render's AWS options pick: farm (stack or bucket), device and market. */
function queueParams(aws: AwsRenderOptions | undefined): CostQueueParams {
  return {
    ...(aws?.stackName !== undefined ? { stackName: aws.stackName } : {}),
    ...(aws?.bucket !== undefined ? { bucket: aws.bucket } : {}),
    ...(aws?.device !== undefined ? { device: aws.device } : {}),
    ...(aws?.market !== undefined ? { market: aws.market } : {}),
  };
}

export async function renderCommand(ctx: CliContext, options: RenderOptions): Promise<number> {
  const params: RenderSubmitParams = { blendFile: resolve(ctx.cwd, options.file) };
  if (options.frames !== undefined) params.frames = options.frames;
  if (options.chunkSize !== undefined) params.chunkSize = options.chunkSize;
  if (options.split !== undefined) params.split = options.split;
  if (options.backend !== undefined) params.backend = options.backend;
  if (options.output !== undefined) params.output = resolve(ctx.cwd, options.output);
  if (options.scene !== undefined) params.scene = options.scene;
  if (options.name !== undefined) params.name = options.name;
  if (options.strict !== undefined) params.strict = options.strict;
  if (options.aws !== undefined) params.aws = options.aws;
  const { client } = await connectOrStart(ctx.stateDir, ctx.env);
  try {
    // Before submitting to AWS: what the chosen queue costs per hour at full scale (one line).
    const queueCost =
      options.backend === 'aws' && !options.aws?.prepareOnly
        ? await queueCostBeforeSubmit(client, queueParams(options.aws))
        : undefined;
    if (queueCost && !options.json) ctx.stderr.write(`${queueCost.text}\n`);
    const withQueueCost = <T extends object>(value: T) => (queueCost ? { ...value, queueCost } : value);
    const { job, missing, missingCount } = await client.request('render.submit', params);
    if (options.aws?.prepareOnly) return await preparedOnly(ctx, client, job.id);
    if (missing?.length && !options.json) {
      ctx.stderr.write(
        `warning: ${missingList(missing, missingCount, 'missing files will render without them')}\n`,
      );
    }
    if (!options.wait) {
      if (options.json) printJson(ctx, withQueueCost(job));
      else print(ctx, `submitted ${job.id}: ${job.framesTotal} frames of "${job.scene}" → ${job.output}`);
      return EXIT.ok;
    }
    if (!options.json)
      print(ctx, `submitted ${job.id}: ${job.framesTotal} frames of "${job.scene}" → ${job.output}`);
    // Progress goes to stderr in every mode: stdout carries only the result (JSON with --json).
    const final = await waitForJob(client, job.id, new ProgressPrinter(ctx.stderr));
    if (options.json) printJson(ctx, withQueueCost(final));
    else print(ctx, describeJob(final));
    return exitCodeForState(final.state);
  } finally {
    client.close();
  }
}

export interface UploadOptions {
  file: string;
  backend?: 'local' | 'aws';
  bucket?: string;
  stackName?: string;
  scene?: string;
  strict: boolean;
  json: boolean;
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** "3 missing files:\n  a\n  b\n  c", the daemon's first ones and how many more it counted. */
function missingList(listed: string[], count: number | undefined, what: string): string {
  const total = Math.max(count ?? 0, listed.length);
  const more = total > listed.length ? `\n  … and ${total - listed.length} more` : '';
  return `${total} ${what}:\n  ${listed.join('\n  ')}${more}`;
}

/** `skyfarm upload`: just the upload stage; prints { files, missing, bytesTotal, bytesUploaded, manifest }. */
export async function uploadCommand(ctx: CliContext, options: UploadOptions): Promise<number> {
  const params: ProjectUploadParams = { blendFile: resolve(ctx.cwd, options.file), strict: options.strict };
  if (options.backend !== undefined) params.backend = options.backend;
  if (options.bucket !== undefined) params.bucket = options.bucket;
  if (options.stackName !== undefined) params.stackName = options.stackName;
  if (options.scene !== undefined) params.scene = options.scene;
  const { client } = await connectOrStart(ctx.stateDir, ctx.env);
  const tty = ctx.stderr.isTTY;
  let lastLine = 0;
  const stopEvents = options.json
    ? () => undefined
    : client.onEvent((event, data) => {
        if (event !== 'upload.progress') return;
        const p = data as EventMap['upload.progress'];
        if (p.jobId !== null) return;
        const now = Date.now();
        if (!tty && now - lastLine < 2000 && p.filesDone < p.filesTotal) return;
        lastLine = now;
        const line =
          `upload ${p.filesDone}/${p.filesTotal} files, ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}` +
          `, ${formatBytes(p.bytesPerSecond)}/s, ETA ${formatDuration(p.etaSeconds)}`;
        ctx.stderr.write(tty ? `\r${line.padEnd(90)}` : line + '\n');
      });
  try {
    const result = await client.request('project.upload', params);
    if (tty && !options.json && lastLine) ctx.stderr.write('\n');
    if (options.json) {
      printJson(ctx, result);
      return EXIT.ok;
    }
    if (result.missing.length) {
      ctx.stderr.write(`warning: ${missingList(result.missing, result.missingCount, 'missing files')}\n`);
    }
    const remapped = Object.entries(result.manifest.remaps).filter(([, to]) => to !== '.');
    print(
      ctx,
      [
        `uploaded ${result.manifest.blend} and ${result.files - 1} files from ${result.manifest.root}`,
        `  ${formatBytes(result.bytesUploaded)} sent of ${formatBytes(result.bytesTotal)} ` +
          `(${result.blobsUploaded} new blobs, ${result.filesHashed} files hashed) in ${result.seconds.toFixed(2)} s`,
        `  manifest ${result.manifest.key}`,
        ...remapped.map(([from, to]) => `  outside the project: ${from} → ${to}`),
      ].join('\n'),
    );
    return EXIT.ok;
  } finally {
    stopEvents();
    client.close();
  }
}

async function withClient<T>(ctx: CliContext, fn: (client: DaemonClient) => Promise<T>): Promise<T> {
  const client = await connect(ctx.stateDir);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

export async function jobsCommand(ctx: CliContext, json: boolean): Promise<number> {
  const jobs = await withClient(ctx, async (client) => {
    // Page through the whole history, newest first: one reply stays far below the message limit.
    const all: Job[] = [];
    let before: string | undefined;
    do {
      const page = await client.request('jobs.list', before === undefined ? {} : { before });
      all.push(...page.jobs);
      before = page.next;
    } while (before !== undefined);
    return all;
  });
  if (json) printJson(ctx, jobs);
  else if (jobs.length === 0) print(ctx, 'no jobs yet');
  else {
    for (const job of jobs) {
      // An AWS outage is worth a line's end: "AWS unreachable since 12:03 (3 min)".
      const outage = isOutageMessage(job.message) ? `  — ${job.message.split('): ')[0]})` : '';
      // A job rendering: "· frame 12: 340/1024 samples · ETA 41 min 10 s".
      const live = FINISHED_STATES.has(job.state) ? null : liveAndEta(job);
      print(
        ctx,
        `${job.id}  ${job.state.padEnd(10)} ${`${job.framesDone}/${job.framesTotal}`.padStart(9)}  ${job.name}${outage}` +
          (live ? `  · ${live}` : '') +
          (job.cost ? `  · ${jobCostText(job)}` : ''),
      );
    }
  }
  return EXIT.ok;
}

export async function statusCommand(ctx: CliContext, jobId: string, json: boolean): Promise<number> {
  const { job } = await withClient(ctx, (client) => client.request('jobs.get', { jobId }));
  if (json) printJson(ctx, job);
  else print(ctx, describeJob(job));
  return EXIT.ok;
}

export async function cancelCommand(ctx: CliContext, jobId: string, json: boolean): Promise<number> {
  const { job } = await withClient(ctx, (client) => client.request('jobs.cancel', { jobId }));
  if (json) printJson(ctx, job);
  // e.g. "j_… canceled: AWS unreachable since 12:03: …; the Batch jobs will be terminated when it answers"
  else
    print(ctx, `${job.id} ${job.state}${job.message && job.message !== job.state ? `: ${job.message}` : ''}`);
  return EXIT.ok;
}

export async function logsCommand(
  ctx: CliContext,
  jobId: string,
  tail: number | undefined,
  json: boolean,
  chunk?: number,
): Promise<number> {
  const { lines } = await withClient(ctx, (client) =>
    client.request('jobs.logs', {
      jobId,
      ...(tail !== undefined ? { tail } : {}),
      ...(chunk !== undefined ? { chunk } : {}),
    }),
  );
  if (json) printJson(ctx, lines);
  else if (lines.length) print(ctx, lines.join('\n'));
  return EXIT.ok;
}

/** `npm run demo`: renders the bundled scene on the local backend and says where the frames are. */
export async function demoCommand(ctx: CliContext, outputDir?: string): Promise<number> {
  try {
    await findBlender(ctx.env);
  } catch (error) {
    ctx.stderr.write(`${(error as Error).message}\n`);
    return EXIT.input;
  }
  const root = findProjectRoot();
  const scene = join(root, 'daemon', 'demo', 'demo.blend');
  const output = resolve(ctx.cwd, outputDir ?? 'demo-output');
  print(ctx, `skyfarm demo: rendering ${scene} on the local backend`);
  const { client, started } = await connectOrStart(ctx.stateDir, ctx.env);
  try {
    const began = Date.now();
    const { job } = await client.request('render.submit', { blendFile: scene, output, name: 'skyfarm demo' });
    print(ctx, `job ${job.id}: ${job.framesTotal} frames`);
    const final = await waitForJob(client, job.id, new ProgressPrinter(ctx.stderr));
    const seconds = ((Date.now() - began) / 1000).toFixed(1);
    if (final.state !== 'done') {
      print(ctx, describeJob(final));
      print(ctx, `see the log: skyfarm logs ${final.id}`);
      return exitCodeForState(final.state);
    }
    const files = existsSync(output) ? readdirSync(output).filter((f) => !f.startsWith('.')) : [];
    print(ctx, `done in ${seconds} s: ${final.framesDone} frames in ${output}`);
    for (const file of files.sort()) print(ctx, `  ${join(output, file)}`);
    return EXIT.ok;
  } finally {
    client.close();
    if (started) await stopDaemon(ctx.stateDir);
  }
}
