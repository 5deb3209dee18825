// Keeps the cost of every running AWS job current: every `intervalMs` (and once more when a job ends)
// the CostService's report is stored with the job (job.update carries it), written to the bucket for
// the completion mail, and held against the job's budget — a projection over it is warned about once,
// a spend that reaches it stops the job (`stop`, which publishes what finished).
import type { Logger } from 'pino';
import type { JobCost, StorageCost } from '../../../protocol/generated/protocol.js';
import type { Notify } from '../notify.js';
import { FINISHED_STATES, type JobRepo } from '../jobs/job-repo.js';
import type { JobLogs } from '../jobs/job-log.js';
import type { CostReport, CostService } from './cost-service.js';
import { costLine, formatUsd } from './format.js';

export interface CostTrackerDeps {
  service: CostService;
  repo: JobRepo;
  logs: JobLogs;
  notify: Notify;
  log: Logger;
  /** Default 60 s. */
  intervalMs?: number;
  /** True while AWS fails the status polls (they back off): a tick then makes no calls of its own. */
  backingOff?: () => boolean;
  /** The estimate as text, for the bucket (the mail); best effort. */
  publish?: (jobId: string, text: string) => Promise<void>;
  /** Stops the job at its budget: publish what finished, say why. */
  stop: (jobId: string, reason: string) => Promise<void>;
}

export class CostTracker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** AWS jobs seen unfinished: refreshed once more after they end, then left alone. */
  private readonly following = new Set<string>();
  private readonly warned = new Set<string>();
  private readonly stopping = new Set<string>();
  private stopped = false;

  constructor(private readonly deps: CostTrackerDeps) {}

  /** The first estimates come one interval after start (a restarted daemon shows the stored ones). */
  start(): void {
    this.stopped = false;
    this.schedule(this.deps.intervalMs ?? 60_000);
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule(this.deps.intervalMs ?? 60_000);
      });
    }, delay);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  async tick(): Promise<void> {
    const { repo, service } = this.deps;
    // A throttled or unreachable AWS gets no extra DescribeJobs from here; the next tick tries again.
    if (this.deps.backingOff?.()) return;
    for (const id of repo.unfinishedIds()) if (service.isAws(id)) this.following.add(id);
    for (const id of [...this.following]) {
      if (this.stopped) return;
      const job = repo.get(id);
      if (!job) {
        this.following.delete(id);
        continue;
      }
      try {
        await this.refresh(id);
      } catch (error) {
        this.deps.log.warn({ err: error, jobId: id }, 'cost estimate failed');
      }
      if (FINISHED_STATES.has(job.state)) this.following.delete(id);
    }
  }

  /** Computes, stores and announces the job's cost now; enforces its budget. */
  /** The job's S3/EFS storage and requests line (asked for by `skyfarm cost`, not refreshed). */
  storage(jobId: string): Promise<StorageCost> {
    return this.deps.service.storage(jobId);
  }

  async refresh(jobId: string): Promise<CostReport> {
    const { repo } = this.deps;
    const report = await this.deps.service.report(jobId);
    const job = repo.get(jobId);
    if (!job) return report;
    const finished = FINISHED_STATES.has(job.state);
    const before = job.cost;
    repo.setCost(jobId, report.cost);
    if (!sameCost(before, report.cost)) this.deps.notify('job.update', repo.get(jobId)!);
    if (!before?.known && !report.cost.known && report.cost.unknownReason !== before?.unknownReason)
      this.deps.logs.append(jobId, `[skyfarm] ${costLine(report.cost, finished)}`);
    if (this.deps.publish && !finished)
      await this.deps
        .publish(jobId, costLine(report.cost, false))
        .catch((error: unknown) => this.deps.log.warn({ err: error, jobId }, 'writing cost.json failed'));
    await this.budget(jobId, report.cost, finished);
    return report;
  }

  private async budget(jobId: string, cost: JobCost, finished: boolean): Promise<void> {
    if (finished || !cost.known || cost.maxCostUsd === undefined || cost.usd === undefined) return;
    const budget = formatUsd(cost.maxCostUsd);
    if (cost.budget === 'projected-over' && !this.warned.has(jobId)) {
      this.warned.add(jobId);
      this.deps.logs.append(
        jobId,
        `[skyfarm] warning: the projected cost ≈ ${formatUsd(cost.projectedUsd ?? cost.usd)} exceeds the budget ${budget}; ` +
          `the job will be stopped when its spend reaches ${budget}`,
      );
    }
    if (cost.budget === 'reached' && !this.stopping.has(jobId)) {
      this.stopping.add(jobId);
      try {
        await this.deps.stop(jobId, `budget ${budget} reached (spent ≈ ${formatUsd(cost.usd)})`);
      } catch (error) {
        this.stopping.delete(jobId); // tried again next time
        throw error;
      }
    }
  }
}

function sameCost(a: JobCost | undefined, b: JobCost): boolean {
  if (!a) return false;
  const strip = (c: JobCost) => JSON.stringify({ ...c, updatedAt: '' });
  return strip(a) === strip(b);
}
