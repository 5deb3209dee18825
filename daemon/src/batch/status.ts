// Pure translations from AWS Batch job states to what skyfarm shows: stage states, chunk counts,
// the RUNNABLE-for-long explanation (the ETA: jobs/estimate.ts).
import type { StageState } from '../../../protocol/generated/protocol.js';
import type { BatchJobInfo, BatchStatus } from './batch-api.js';

export const TERMINAL: ReadonlySet<BatchStatus> = new Set(['SUCCEEDED', 'FAILED']);
const QUEUED: ReadonlySet<BatchStatus> = new Set(['SUBMITTED', 'PENDING', 'RUNNABLE']);

export interface ChunkCounts {
  queued: number;
  running: number;
  done: number;
  failed: number;
}

/** Chunks per state: the array's statusSummary, or the single job (one chunk). */
export function chunkCounts(render: BatchJobInfo | undefined, chunks: number): ChunkCounts {
  const counts: ChunkCounts = { queued: 0, running: 0, done: 0, failed: 0 };
  if (!render) {
    counts.queued = chunks;
    return counts;
  }
  if (render.statusSummary && render.arraySize !== undefined) {
    const s = render.statusSummary;
    counts.running = (s.STARTING ?? 0) + (s.RUNNING ?? 0);
    counts.done = s.SUCCEEDED ?? 0;
    counts.failed = s.FAILED ?? 0;
    counts.queued = Math.max(0, render.arraySize - counts.running - counts.done - counts.failed);
    return counts;
  }
  if (render.status === 'SUCCEEDED') counts.done = chunks;
  else if (render.status === 'FAILED') counts.failed = chunks;
  else if (render.status === 'STARTING' || render.status === 'RUNNING') counts.running = chunks;
  else counts.queued = chunks;
  return counts;
}

/** A stage's state from its Batch job (and, for the render array, its children). */
export function stageState(info: BatchJobInfo | undefined, counts?: ChunkCounts): StageState {
  if (!info) return 'pending';
  if (info.status === 'SUCCEEDED') return 'done';
  if (info.status === 'FAILED') return 'failed';
  if (info.status === 'STARTING' || info.status === 'RUNNING') return 'running';
  if (counts && (counts.running > 0 || counts.done > 0 || counts.failed > 0)) return 'running';
  return 'pending';
}

export function isQueued(info: BatchJobInfo | undefined): boolean {
  return info !== undefined && QUEUED.has(info.status);
}

/** What to tell the user when a job has waited in RUNNABLE for long. */
export function runnableExplanation(stage: string, queue: string, waitedMs: number): string {
  const minutes = Math.max(1, Math.round(waitedMs / 60_000));
  return (
    `${stage} has been waiting for an instance for ${minutes} min (RUNNABLE on ${queue}). AWS Batch starts ` +
    'no instance when the compute environment is at its MaxvCpus, the account’s EC2 vCPU quota for ' +
    'this instance family and market (Service Quotas: "Running On-Demand …" / "All … Spot Instance ' +
    'Requests") is too low or 0, spot capacity for the allowed instance types is unavailable, or the ' +
    'job asks for more vCPUs, memory or GPUs than any allowed instance type has. Check the compute ' +
    'environment in the Batch console and the quotas, or render with --market on-demand.'
  );
}

/** The latest attempt's failure reason, with its exit code. */
export function failureReason(info: BatchJobInfo): string {
  const last = info.attempts.at(-1);
  const reason = last?.statusReason ?? info.statusReason ?? 'failed';
  const code = last?.exitCode ?? info.exitCode;
  return code !== undefined ? `${reason} (exit code ${code})` : reason;
}
