// The AWS side of a job in SQLite (table aws_jobs, see db/database.ts): the farm it went to, its
// options, and each Batch job id, written the moment SubmitJob returns it.
import type { Db } from '../db/database.js';
import type { FarmSettings } from './farm.js';
import type { Device, Market } from './layout.js';

export type TrackedStage = 'copy' | 'render' | 'publish' | 'cleanup';

export interface AwsJobRow {
  jobId: string;
  farm: FarmSettings;
  device: Device;
  market: Market;
  blenderVersion: string;
  notifyEmail: string | null;
  prepareOnly: boolean;
  preparedAt: string | null;
  renderQueue: string | null;
  chunks: number | null;
  batchIds: Partial<Record<TrackedStage, string>>;
  canceledAt: string | null;
  finishedAt: string | null;
  /** The job's budget (--max-cost), USD; kept here so it holds across daemon restarts. */
  maxCostUsd: number | null;
  /** What its upload stored (null: not uploaded yet, or by a skyfarm that did not record it). */
  uploadStats: UploadStats | null;
}

/** What a job's upload put where: for the storage and requests line of its cost. */
export interface UploadStats {
  /** The project's bytes: the copy stage's working copy on EFS. */
  bytesTotal: number;
  /** Bytes new to the bucket (blobs the bucket did not have yet). */
  bytesUploaded: number;
  /** Objects stored: one PUT each. */
  objectsStored: number;
  /** Files of the project: the copy stage reads each from the bucket once at most (GETs). */
  files: number;
}

interface RawRow {
  job_id: string;
  farm: string;
  device: string;
  market: string;
  blender_version: string;
  notify_email: string | null;
  prepare_only: number;
  prepared_at: string | null;
  render_queue: string | null;
  chunks: number | null;
  copy_batch_id: string | null;
  render_batch_id: string | null;
  publish_batch_id: string | null;
  cleanup_batch_id: string | null;
  canceled_at: string | null;
  finished_at: string | null;
  max_cost_usd: number | null;
  upload_stats?: string | null;
}

const COLUMN: Record<TrackedStage, string> = {
  copy: 'copy_batch_id',
  render: 'render_batch_id',
  publish: 'publish_batch_id',
  cleanup: 'cleanup_batch_id',
};

export class AwsJobStore {
  constructor(private readonly db: Db) {}

  insert(
    row: Omit<
      AwsJobRow,
      | 'preparedAt'
      | 'renderQueue'
      | 'chunks'
      | 'batchIds'
      | 'canceledAt'
      | 'finishedAt'
      | 'maxCostUsd'
      | 'uploadStats'
    > & { maxCostUsd?: number | null },
  ) {
    this.db
      .prepare(
        `INSERT INTO aws_jobs (job_id, farm, device, market, blender_version, notify_email, prepare_only,
           max_cost_usd)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        row.jobId,
        JSON.stringify(row.farm),
        row.device,
        row.market,
        row.blenderVersion,
        row.notifyEmail,
        row.prepareOnly ? 1 : 0,
        row.maxCostUsd ?? null,
      );
  }

  get(jobId: string): AwsJobRow | undefined {
    const raw = this.db.prepare('SELECT * FROM aws_jobs WHERE job_id = ?').get(jobId) as RawRow | undefined;
    if (!raw) return undefined;
    const batchIds: AwsJobRow['batchIds'] = {};
    for (const [stage, column] of Object.entries(COLUMN) as Array<[TrackedStage, keyof RawRow]>) {
      const id = raw[column];
      if (typeof id === 'string') batchIds[stage] = id;
    }
    return {
      jobId: raw.job_id,
      farm: JSON.parse(raw.farm) as FarmSettings,
      device: raw.device as Device,
      market: raw.market as Market,
      blenderVersion: raw.blender_version,
      notifyEmail: raw.notify_email,
      prepareOnly: raw.prepare_only === 1,
      preparedAt: raw.prepared_at,
      renderQueue: raw.render_queue,
      chunks: raw.chunks,
      batchIds,
      canceledAt: raw.canceled_at,
      finishedAt: raw.finished_at,
      maxCostUsd: raw.max_cost_usd,
      uploadStats: raw.upload_stats ? (JSON.parse(raw.upload_stats) as UploadStats) : null,
    };
  }

  setPrepared(jobId: string, renderQueue: string, chunks: number): void {
    this.db
      .prepare('UPDATE aws_jobs SET prepared_at = ?, render_queue = ?, chunks = ? WHERE job_id = ?')
      .run(new Date().toISOString(), renderQueue, chunks, jobId);
  }

  setUploadStats(jobId: string, stats: UploadStats): void {
    this.db
      .prepare('UPDATE aws_jobs SET upload_stats = ? WHERE job_id = ?')
      .run(JSON.stringify(stats), jobId);
  }

  setBatchId(jobId: string, stage: TrackedStage, batchId: string): void {
    this.db.prepare(`UPDATE aws_jobs SET ${COLUMN[stage]} = ? WHERE job_id = ?`).run(batchId, jobId);
  }

  setCanceled(jobId: string): void {
    this.db
      .prepare('UPDATE aws_jobs SET canceled_at = ? WHERE job_id = ?')
      .run(new Date().toISOString(), jobId);
  }

  /** Jobs whose cancel was recorded and not yet carried out on AWS (finishCancel sets finished_at). */
  pendingCancels(): string[] {
    return (
      this.db
        .prepare('SELECT job_id FROM aws_jobs WHERE canceled_at IS NOT NULL AND finished_at IS NULL')
        .all() as Array<{ job_id: string }>
    ).map((r) => r.job_id);
  }

  setFinished(jobId: string): void {
    this.db
      .prepare('UPDATE aws_jobs SET finished_at = ? WHERE job_id = ?')
      .run(new Date().toISOString(), jobId);
  }
}
