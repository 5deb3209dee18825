// `skyfarm deploy | stack | destroy`: thin clients of the daemon's stack.* methods. Stack events are
// printed to stderr while they happen; stdout carries only the result (JSON with --json).
import { createInterface } from 'node:readline/promises';
import type {
  StackDeployParams,
  StackEvent,
  StackInfo,
  StackStatusParams,
} from '../../../protocol/generated/protocol.js';
import type { CliContext } from '../cli/commands.js';
import { connectOrStart } from '../cli/daemon-control.js';
import { EXIT } from '../cli/exit-codes.js';
import { SkyfarmError } from '../errors.js';
import { DEFAULT_STACK_NAME } from './validate.js';

export interface StackCliOptions {
  stackName?: string;
  region?: string;
  profile?: string;
  json: boolean;
}

export interface DeployCliOptions extends StackCliOptions {
  gpu?: boolean;
  maxVcpus?: number;
  notifyEmail?: string;
  yes: boolean;
}

/** The CLI's own AWS_REGION / AWS_PROFILE count, not only the (possibly older) daemon's environment. */
function target(ctx: CliContext, o: StackCliOptions): StackStatusParams {
  const params: StackStatusParams = {};
  if (o.stackName !== undefined) params.stackName = o.stackName;
  const region = o.region ?? (ctx.env['AWS_REGION'] || ctx.env['AWS_DEFAULT_REGION']);
  if (region) params.region = region;
  const profile = o.profile ?? ctx.env['AWS_PROFILE'];
  if (profile) params.profile = profile;
  return params;
}

export function formatStackEvent(e: StackEvent): string {
  const time = e.timestamp.slice(11, 19);
  return `${time}  ${e.status.padEnd(36)} ${e.resource} (${e.resourceType})${e.reason ? `  ${e.reason}` : ''}`;
}

export function describeStack(info: StackInfo): string {
  const lines = [`stack ${info.stackName}: ${info.status}${info.region ? ` (${info.region})` : ''}`];
  if (info.reason) lines.push(`  reason  ${info.reason}`);
  const keys = Object.keys(info.outputs).sort();
  const width = Math.max(0, ...keys.map((k) => k.length));
  for (const key of keys) lines.push(`  ${key.padEnd(width)}  ${info.outputs[key]}`);
  return lines.join('\n');
}

async function confirm(ctx: CliContext, question: string, flag: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `${question.replace(/\?$/, '')}: pass ${flag} to confirm when not running in a terminal.`,
    );
  }
  const rl = createInterface({ input: process.stdin, output: ctx.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new SkyfarmError('CANCELED', 'Nothing was changed.');
  } finally {
    rl.close();
  }
}

async function withStackClient<T>(
  ctx: CliContext,
  stackName: string,
  fn: (client: Awaited<ReturnType<typeof connectOrStart>>['client']) => Promise<T>,
): Promise<T> {
  const { client } = await connectOrStart(ctx.stateDir, ctx.env);
  const stop = client.onEvent((event, data) => {
    if (event !== 'stack.event') return;
    const e = data as StackEvent;
    if (e.stackName === stackName) ctx.stderr.write(formatStackEvent(e) + '\n');
  });
  try {
    return await fn(client);
  } finally {
    stop();
    client.close();
  }
}

export async function deployCommand(ctx: CliContext, o: DeployCliOptions): Promise<number> {
  const params: StackDeployParams = target(ctx, o);
  if (o.gpu !== undefined) params.gpu = o.gpu;
  if (o.maxVcpus !== undefined) params.maxVcpus = o.maxVcpus;
  if (o.notifyEmail !== undefined) params.notifyEmail = o.notifyEmail;
  const name = o.stackName ?? DEFAULT_STACK_NAME;
  if (!o.yes) {
    await confirm(
      ctx,
      `Deploy the skyfarm stack "${name}" (creates or updates AWS resources in your account)?`,
      '--yes',
    );
  }
  const result = await withStackClient(ctx, name, (client) => client.request('stack.deploy', params));
  if (o.json) ctx.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else ctx.stdout.write(`${result.changed ? '' : 'no changes: '}${describeStack(result.stack)}\n`);
  return EXIT.ok;
}

export async function stackCommand(ctx: CliContext, o: StackCliOptions): Promise<number> {
  const name = o.stackName ?? DEFAULT_STACK_NAME;
  const { stack } = await withStackClient(ctx, name, (client) =>
    client.request('stack.status', target(ctx, o)),
  );
  if (o.json) ctx.stdout.write(JSON.stringify(stack, null, 2) + '\n');
  else ctx.stdout.write(describeStack(stack) + '\n');
  return EXIT.ok;
}

export async function destroyCommand(
  ctx: CliContext,
  o: StackCliOptions & { yes: boolean },
): Promise<number> {
  const name = o.stackName ?? DEFAULT_STACK_NAME;
  if (!o.yes) {
    await confirm(
      ctx,
      `Delete the skyfarm stack "${name}" and every file in its bucket (rendered frames included)?`,
      '--yes',
    );
  }
  const result = await withStackClient(ctx, name, (client) =>
    client.request('stack.destroy', target(ctx, o)),
  );
  if (o.json) ctx.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else
    ctx.stdout.write(
      result.deleted ? `deleted stack ${result.stackName}\n` : `no stack ${result.stackName} to delete\n`,
    );
  return EXIT.ok;
}

/** The flags `skyfarm deploy|stack|destroy` share, from parseArgs values. */
export function stackFlags(values: {
  'stack-name'?: string | undefined;
  region?: string | undefined;
  profile?: string | undefined;
}): Omit<StackCliOptions, 'json'> {
  return {
    ...(values['stack-name'] !== undefined ? { stackName: values['stack-name'] } : {}),
    ...(values.region !== undefined ? { region: values.region } : {}),
    ...(values.profile !== undefined ? { profile: values.profile } : {}),
  };
}
