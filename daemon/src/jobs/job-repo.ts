// All reads and writes of jobs and frames. Snapshots returned here are exactly what clients see.
import type { Db } from '../db/database.js';
import type {
  Job,
  JobCost,
  JobState,
  LiveFrame,
  Stages,
  StageState,
} from '../../../protocol/generated/protocol.js';
import type { JobSpec } from './job-spec.js';
import { SkyfarmError } from '../errors.js';

interface JobRow {
  id: string;
  seq: number;
  name: string;
  state: JobState;
  backend: 'local' | 'aws';
  blend_file: string;
  scene: string;
  frames_spec: string;
  output_dir: string;
  created_at: string;
  updated_at: string;
  stages: string;
  frames_total: number;
  message: string;
  last_frame: string | null;
  error_code: string | null;
  error_message: string | null;
  spec: string;
  cost: string | null;
}

export type FrameState = 'pending' | 'done' | 'failed';
export interface FrameRow {
  frame: number;
  state: FrameState;
  path: string | null;
  seconds: number | null;
  message: string | null;
}

/**
 * Live, not persisted: how much of the frames rendering now is done (their shares summed), the ETA,
 * and the frame to show. A function is asked each time a snapshot is taken, so an estimate that runs
 * on between Blender's reports is current in every `jobs.get`.
 */
export interface LiveProgress {
  inFlightFraction: number;
  etaSeconds: number | null;
  live?: LiveFrame;
}
export type LiveSource = LiveProgress | (() => LiveProgress);

export const FINISHED_STATES: ReadonlySet<JobState> = new Set(['done', 'failed', 'canceled']);

export class JobRepo {
  private readonly live = new Map<string, LiveSource>();
  constructor(private readonly db: Db) {}

  create(spec: JobSpec, name: string, now = new Date()): Job {
    const stages: Stages = { upload: 'pending', copy: 'pending', render: 'pending', publish: 'pending' };
    const insert = this.db.transaction(() => {
      const seq = (
        this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM jobs').get() as { next: number }
      ).next;
      this.db
        .prepare(
          `INSERT INTO jobs (id, seq, name, state, backend, blend_file, scene, frames_spec, output_dir, created_at,
             updated_at, stages, frames_total, spec)
           VALUES (@id, @seq, @name, 'queued', @backend, @blend, @scene, @framesSpec, @output, @now, @now, @stages,
             @total, @spec)`,
        )
        .run({
          id: spec.jobId,
          seq,
          name,
          backend: spec.backend,
          blend: spec.blendFile,
          scene: spec.scene,
          framesSpec: spec.framesSpec,
          output: spec.outputDir,
          now: now.toISOString(),
          stages: JSON.stringify(stages),
          total: spec.frames.length,
          spec: JSON.stringify(spec),
        });
      const addFrame = this.db.prepare(`INSERT INTO frames (job_id, frame, state) VALUES (?, ?, 'pending')`);
      for (const frame of spec.frames) addFrame.run(spec.jobId, frame);
    });
    insert();
    return this.get(spec.jobId)!;
  }

  private row(id: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  spec(id: string): JobSpec | undefined {
    const row = this.row(id);
    return row ? (JSON.parse(row.spec) as JobSpec) : undefined;
  }

  get(id: string): Job | undefined {
    const row = this.row(id);
    return row ? this.toJob(row) : undefined;
  }

  /**
   * Newest first, one page: at most `limit` jobs and about `maxBytes` of JSON, so a long history
   * never makes a reply larger than a client accepts. `next` is the cursor for the older rest.
   * `before` is a job id; an unknown one throws JOB_NOT_FOUND rather than silently restarting.
   */
  list(page: { limit: number; maxBytes: number; before?: string | undefined }): {
    jobs: Job[];
    next?: string;
  } {
    let beforeSeq = Number.MAX_SAFE_INTEGER;
    if (page.before !== undefined) {
      const cursor = this.row(page.before);
      if (!cursor) throw new SkyfarmError('JOB_NOT_FOUND', `no job ${page.before} to list the jobs before`);
      beforeSeq = cursor.seq;
    }
    const rows = this.db
      .prepare('SELECT * FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?')
      .iterate(beforeSeq, page.limit + 1) as IterableIterator<JobRow>;
    const jobs: Job[] = [];
    let bytes = 0;
    for (const row of rows) {
      const job = this.toJob(row);
      bytes += JSON.stringify(job).length + 1;
      // The first job always fits (one job is far below the limit); later ones only within budget.
      if (jobs.length === page.limit || (jobs.length > 0 && bytes > page.maxBytes)) {
        const last = jobs[jobs.length - 1];
        return last ? { jobs, next: last.id } : { jobs };
      }
      jobs.push(job);
    }
    return { jobs };
  }

  unfinishedIds(): string[] {
    return (
      this.db
        .prepare(`SELECT id FROM jobs WHERE state NOT IN ('done', 'failed', 'canceled') ORDER BY seq`)
        .all() as Array<{ id: string }>
    ).map((r) => r.id);
  }

  frames(id: string): FrameRow[] {
    return this.db
      .prepare('SELECT frame, state, path, seconds, message FROM frames WHERE job_id = ? ORDER BY frame')
      .all(id) as FrameRow[];
  }

  update(
    id: string,
    change: {
      state?: JobState;
      stage?: [keyof Stages, StageState];
      message?: string;
      lastFrame?: string | null;
      error?: { code: string; message: string } | null;
    },
  ): Job {
    const row = this.row(id);
    if (!row) throw new Error(`job ${id} vanished`);
    const stages = JSON.parse(row.stages) as Stages;
    if (change.stage) stages[change.stage[0]] = change.stage[1];
    this.db
      .prepare(
        `UPDATE jobs SET state = @state, stages = @stages, message = @message, last_frame = @lastFrame,
           error_code = @errorCode, error_message = @errorMessage, updated_at = @now WHERE id = @id`,
      )
      .run({
        id,
        state: change.state ?? row.state,
        stages: JSON.stringify(stages),
        message: change.message ?? row.message,
        lastFrame: change.lastFrame === undefined ? row.last_frame : change.lastFrame,
        errorCode: change.error === undefined ? row.error_code : (change.error?.code ?? null),
        errorMessage: change.error === undefined ? row.error_message : (change.error?.message ?? null),
        now: new Date().toISOString(),
      });
    return this.get(id)!;
  }

  setFrame(
    id: string,
    frame: number,
    state: FrameState,
    detail: { path?: string; seconds?: number; message?: string },
  ) {
    this.db
      .prepare(
        `UPDATE frames SET state = ?, path = COALESCE(?, path), seconds = COALESCE(?, seconds), message = ?
         WHERE job_id = ? AND frame = ?`,
      )
      .run(state, detail.path ?? null, detail.seconds ?? null, detail.message ?? null, id, frame);
  }

  /** Blender process groups started for a job, so a restarted daemon can stop leftovers. */
  /**
   * Records a Blender of this job. `mark` is a text its command line holds, checked before a
   * restarted daemon kills the pid (pids get reused); by default the job id (its working folder).
   * A Blender started ahead of its job (render/warm-blender.ts) has a mark of its own.
   */
  recordProcess(id: string, pid: number, mark?: string): void {
    const entries = this.processes(id).filter((entry) => entry.pid !== pid);
    entries.push({ pid, mark: mark ?? id });
    const stored = entries.map((entry) => (entry.mark === id ? entry.pid : [entry.pid, entry.mark]));
    this.db
      .prepare(
        'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(`pids:${id}`, JSON.stringify(stored));
  }

  processes(id: string): Array<{ pid: number; mark: string }> {
    const row = this.db.prepare('SELECT value FROM kv WHERE key = ?').get(`pids:${id}`) as
      { value: string } | undefined;
    const stored = row ? (JSON.parse(row.value) as Array<number | [number, string]>) : [];
    return stored.map((entry) =>
      typeof entry === 'number' ? { pid: entry, mark: id } : { pid: entry[0], mark: entry[1] },
    );
  }

  forgetProcesses(id: string): void {
    this.db.prepare('DELETE FROM kv WHERE key = ?').run(`pids:${id}`);
  }

  /**
   * A cancel is recorded before it is acted on, so a daemon killed in between finishes it on restart
   * (local jobs; AWS jobs record theirs in aws_jobs.canceled_at).
   */
  recordCancel(id: string): void {
    this.db
      .prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING')
      .run(`cancel:${id}`, new Date().toISOString());
  }

  cancelRecorded(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM kv WHERE key = ?').get(`cancel:${id}`) !== undefined;
  }

  forgetCancel(id: string): void {
    this.db.prepare('DELETE FROM kv WHERE key = ?').run(`cancel:${id}`);
  }

  /** The job's cost estimate (AWS jobs; daemon/src/cost/), kept so it is shown after the job and a restart. */
  setCost(id: string, cost: JobCost): void {
    this.db.prepare('UPDATE jobs SET cost = ? WHERE id = ?').run(JSON.stringify(cost), id);
  }

  setLive(id: string, live: LiveSource | undefined): void {
    if (live) this.live.set(id, live);
    else this.live.delete(id);
  }

  private toJob(row: JobRow): Job {
    const counts = this.db
      .prepare(
        `SELECT SUM(state = 'done') AS done, SUM(state = 'failed') AS failed FROM frames WHERE job_id = ?`,
      )
      .get(row.id) as { done: number | null; failed: number | null };
    const failedFrames = (
      this.db
        .prepare(`SELECT frame FROM frames WHERE job_id = ? AND state = 'failed' ORDER BY frame LIMIT 100000`)
        .all(row.id) as Array<{ frame: number }>
    ).map((r) => r.frame);
    const framesDone = counts.done ?? 0;
    const framesFailed = counts.failed ?? 0;
    const source = FINISHED_STATES.has(row.state) ? undefined : this.live.get(row.id);
    const live = typeof source === 'function' ? source() : source;
    const total = row.frames_total;
    let progress = total === 0 ? 0 : (framesDone + framesFailed + (live?.inFlightFraction ?? 0)) / total;
    if (row.state === 'done') progress = 1;
    const job: Job = {
      id: row.id,
      name: row.name,
      state: row.state,
      backend: row.backend,
      blendFile: row.blend_file,
      scene: row.scene,
      frames: row.frames_spec,
      output: row.output_dir,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      stages: JSON.parse(row.stages) as Stages,
      framesTotal: total,
      framesDone,
      framesFailed,
      failedFrames,
      progress: Math.min(1, Math.max(0, progress)),
      // Tenths of a second: an estimate has no more precision than that.
      etaSeconds: live?.etaSeconds == null ? null : Math.round(live.etaSeconds * 10) / 10,
      message: row.message,
      lastFrame: row.last_frame,
    };
    if (row.error_code) job.error = { code: row.error_code, message: row.error_message ?? '' };
    if (live?.live) job.live = live.live;
    if (row.cost) job.cost = JSON.parse(row.cost) as JobCost;
    return job;
  }
}
