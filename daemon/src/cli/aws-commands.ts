// CLI pieces that only the AWS backend has: `render --prepare-only`, `download`, and the AWS render flags.
import { resolve } from 'node:path';
import type { AwsRenderOptions } from '../../../protocol/generated/protocol.js';
import type { DaemonClient } from '../client/daemon-client.js';
import { connect } from './daemon-control.js';
import { EXIT, exitCodeForState } from './exit-codes.js';
import type { CliContext } from './commands.js';
import { waitForJob } from './commands.js';

/** `render --prepare-only`: waits for the upload and job.json, then prints `{ "jobId": … }`. */
export async function preparedOnly(ctx: CliContext, client: DaemonClient, jobId: string): Promise<number> {
  const final = await waitForJob(client, jobId);
  if (final.state !== 'done') {
    ctx.stderr.write(`skyfarm: preparing ${jobId} failed: ${final.message}\n`);
    return exitCodeForState(final.state);
  }
  ctx.stdout.write(JSON.stringify({ jobId }) + '\n');
  return EXIT.ok;
}

export async function downloadCommand(
  ctx: CliContext,
  jobId: string,
  output: string | undefined,
  json: boolean,
): Promise<number> {
  const client = await connect(ctx.stateDir);
  try {
    const result = await client.request('jobs.download', {
      jobId,
      ...(output !== undefined ? { output: resolve(ctx.cwd, output) } : {}),
    });
    if (json) ctx.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      ctx.stdout.write(
        `${result.downloaded} frames downloaded (${result.bytes} bytes), ${result.present} published in total → ${result.output}\n`,
      );
    }
    return EXIT.ok;
  } finally {
    client.close();
  }
}

export class AwsUsageError extends Error {}

/** The AWS render flags → AwsRenderOptions (undefined when none was given). */
export function awsRenderOptions(values: {
  bucket?: string | undefined;
  'stack-name'?: string | undefined;
  device?: string | undefined;
  market?: string | undefined;
  'blender-version'?: string | undefined;
  'notify-email'?: string | undefined;
  'max-cost'?: string | undefined;
  'prepare-only'?: boolean | undefined;
}): AwsRenderOptions | undefined {
  const aws: AwsRenderOptions = {};
  if (values.device !== undefined) {
    if (values.device !== 'cpu' && values.device !== 'gpu')
      throw new AwsUsageError(`--device must be cpu or gpu, not "${values.device}"`);
    aws.device = values.device;
  }
  if (values.market !== undefined) {
    if (values.market !== 'spot' && values.market !== 'on-demand') {
      throw new AwsUsageError(`--market must be spot or on-demand, not "${values.market}"`);
    }
    aws.market = values.market;
  }
  if (values.bucket !== undefined) aws.bucket = values.bucket;
  if (values['stack-name'] !== undefined) aws.stackName = values['stack-name'];
  if (values['blender-version'] !== undefined) aws.blenderVersion = values['blender-version'];
  if (values['notify-email'] !== undefined) aws.notifyEmail = values['notify-email'];
  if (values['prepare-only']) aws.prepareOnly = true;
  if (values['max-cost'] !== undefined) {
    const usd = Number(values['max-cost'].replace(/^\$/, ''));
    if (!Number.isFinite(usd) || usd < 0.01 || usd > 1_000_000)
      throw new AwsUsageError(
        `--max-cost must be an amount in USD of at least 0.01, like 5 or 12.50, not "${values['max-cost']}"`,
      );
    aws.maxCostUsd = usd;
  }
  return Object.keys(aws).length ? aws : undefined;
}
