// `skyfarm cost JOB [--json]`: what an AWS job has cost so far (an estimate from AWS's own prices),
// its projection and budget, and every run it is made of.
import type { CostLine, Job } from '../../../protocol/generated/protocol.js';
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
    if (report.cost.known) {
      out.push(
        '  basis     compute of copy, render chunks and publish: running time × share of the instance × its',
      );
      out.push(
        '            price (AWS Price List on-demand, EC2 spot price history); S3/EFS storage not included',
      );
      for (const line of report.lines) out.push(lineText(line));
    }
    ctx.stdout.write(out.join('\n') + '\n');
    return EXIT.ok;
  } finally {
    client.close();
  }
}
