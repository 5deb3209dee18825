// `skyfarm cost JOB [--json]`: what an AWS job has cost so far (an estimate from AWS's own prices),
// its projection and budget, and every run it is made of. `skyfarm cost --queue [NAME]`: what a render
// queue costs per hour at full scale, which `skyfarm render --backend aws` also says before submitting.
import type { CostLine, CostQueueParams, Job, QueueCost } from '../../../protocol/generated/protocol.js';
import type { DaemonClient } from '../client/daemon-client.js';
import { FINISHED_STATES } from '../jobs/job-repo.js';
import { costLine, costSummary, formatUsd } from '../cost/format.js';
import { connect } from './daemon-control.js';
import { EXIT } from './exit-codes.js';
import type { CliContext } from './commands.js';

/** The cost part of a job's line in `jobs` and the progress display ("" for jobs without one). */
export function jobCostText(job: Job): string {
  return job.cost ? costSummary(job.cost, FINISHED_STATES.has(job.state)) : '';
}

function lineText(line: CostLine): string {
  const what =
    line.stage === 'render' && line.chunk !== undefined ? `render chunk ${line.chunk}` : line.stage;
  const minutes = (line.seconds / 60).toFixed(1);
  return (
    `  ${what.padEnd(18)} ${minutes.padStart(7)} min × ${(line.share * 100).toFixed(0).padStart(3)}% of ` +
    `${line.instanceType} ${line.market} at ${formatUsd(line.usdPerHour)}/h = ${formatUsd(line.usd)}` +
    (line.running ? ' (running)' : '')
  );
}

export async function costCommand(ctx: CliContext, jobId: string, json: boolean): Promise<number> {
  const client = await connect(ctx.stateDir);
  try {
    const report = await client.request('jobs.cost', { jobId });
    const { job } = await client.request('jobs.get', { jobId });
    if (json) {
      ctx.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return EXIT.ok;
    }
    const finished = FINISHED_STATES.has(job.state);
    const out = [`${job.id}  ${job.name}`, `  cost      ${costLine(report.cost, finished)}`];
    // Storage and requests: a line of their own, never added to the compute figure.
    if (report.storage) out.push(`  storage   ${report.storage.text}`);
    if (report.cost.known) {
      out.push(
        '  basis     compute of copy, render chunks and publish: running time × share of the instance × its',
      );
      out.push(
        '            price (AWS Price List on-demand, EC2 spot price history); storage: the EFS working copy',
        '            × hours, S3 requests, S3 bytes per month (Price List S3 Standard, EFS Standard)',
      );
      for (const line of report.lines) out.push(lineText(line));
    }
    ctx.stdout.write(out.join('\n') + '\n');
    return EXIT.ok;
  } finally {
    client.close();
  }
}

/** How long a render waits for the queue's price before submitting without it. */
const QUEUE_COST_WAIT_MS = 15_000;

/**
 * The queue's price at full scale for a render about to be submitted, or undefined when the daemon
 * cannot say (no farm: the submit reports that itself) or takes too long: the render never waits on it.
 */
export async function queueCostBeforeSubmit(
  client: DaemonClient,
  params: CostQueueParams,
): Promise<QueueCost | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      client.request('cost.queue', params).then((r) => r.cost),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), QUEUE_COST_WAIT_MS))),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function environmentText(part: NonNullable<QueueCost['environments']>[number]): string {
  return (
    `  ${part.name}  ${part.market}, up to ${part.maxVcpus} vCPUs × ${formatUsd(part.usdPerVcpuHour)}` +
    `/vCPU-hour (${part.priciestType}, the dearest of ${part.instanceTypes.join('/')}) = ` +
    `${formatUsd(part.usdPerHour)}/hour`
  );
}

export async function queueCostCommand(
  ctx: CliContext,
  params: CostQueueParams,
  json: boolean,
): Promise<number> {
  const client = await connect(ctx.stateDir);
  try {
    const { cost } = await client.request('cost.queue', params);
    if (json) {
      ctx.stdout.write(JSON.stringify(cost, null, 2) + '\n');
      return EXIT.ok;
    }
    const out = [cost.text];
    for (const part of cost.environments ?? []) out.push(environmentText(part));
    if (cost.known)
      out.push(
        '  basis: each compute environment at its maxvCpus × the highest price per vCPU among its sizes',
        '  (AWS Price List on-demand; EC2 spot prices now, the dearest zone); storage not included',
      );
    ctx.stdout.write(out.join('\n') + '\n');
    return EXIT.ok;
  } finally {
    client.close();
  }
}
