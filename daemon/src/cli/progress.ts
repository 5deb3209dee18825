// How a job's progress looks in a terminal: one redrawn bar on a TTY, plain lines otherwise.
import type { Job } from '../../../protocol/generated/protocol.js';
import { costSummary } from '../cost/format.js';
import { FINISHED_STATES } from '../jobs/job-repo.js';

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** `35 s`, `4 min 05 s`, `2 h 03 min` (as the Blender panel writes it). */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** The frame rendering now: `frame 12: 340/1024 samples` (and how many render at once). */
export function liveText(job: Job): string | null {
  const live = job.live;
  if (!live) return null;
  const samples = live.samplesTotal > 0 ? `${live.samplesDone}/${live.samplesTotal} samples` : 'starting';
  const more = live.rendering > 1 ? ` (${live.rendering} frames rendering)` : '';
  return `frame ${live.frame}: ${samples}${more}`;
}

/** `frame 12: 340/1024 samples · ETA 41 min 10 s`, or only the ETA, or null when neither is known. */
export function liveAndEta(job: Job): string | null {
  const parts = [liveText(job), job.etaSeconds === null ? null : `ETA ${formatEta(job.etaSeconds)}`];
  const shown = parts.filter((part): part is string => part !== null);
  return shown.length ? shown.join(' · ') : null;
}

export function progressBar(job: Job, width = 24): string {
  const filled = Math.round(job.progress * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  const failed = job.framesFailed ? `, ${job.framesFailed} failed` : '';
  const live = liveAndEta(job) ?? 'ETA --:--';
  const cost = job.cost ? ` · ${costSummary(job.cost, FINISHED_STATES.has(job.state))}` : '';
  return `[${bar}] ${Math.floor(job.progress * 100)}% ${job.framesDone}/${job.framesTotal} frames${failed} · ${live}${cost}  ${job.state}: ${job.message}`;
}

export function progressLine(job: Job): string {
  const failed = job.framesFailed ? ` (${job.framesFailed} failed)` : '';
  const cost = job.cost ? ` · ${costSummary(job.cost, FINISHED_STATES.has(job.state))}` : '';
  return `${job.id} ${job.state} ${job.framesDone}/${job.framesTotal} frames${failed} — ${job.message}${cost}`;
}

export class ProgressPrinter {
  private lastLine = '';
  private lastPlain = { key: '', at: -Infinity };

  /**
   * Without a TTY a line is printed at once when frames, state or message change, a frame's first
   * samples arrive or another frame starts rendering beside it, and for later samples and the ETA at
   * most every `liveEveryMs` (a long frame must not flood a log file).
   */
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly options: { liveEveryMs?: number; now?: () => number } = {},
  ) {}

  update(job: Job): void {
    if (this.stream.isTTY) {
      const columns = this.stream.columns || 100;
      const line = progressBar(job).slice(0, columns - 1);
      this.stream.write(
        `\r${line.padEnd(Math.min(columns - 1, Math.max(line.length, this.lastLine.length)))}`,
      );
      this.lastLine = line;
    } else {
      const base = progressLine(job);
      const live = liveAndEta(job);
      const line = live ? `${base} · ${live}` : base;
      if (line === this.lastLine) return;
      const key = JSON.stringify([
        base,
        job.live?.frame,
        (job.live?.samplesTotal ?? 0) > 0,
        job.live?.rendering,
      ]);
      const now = (this.options.now ?? Date.now)();
      if (key === this.lastPlain.key && now - this.lastPlain.at < (this.options.liveEveryMs ?? 10_000))
        return;
      this.stream.write(line + '\n');
      this.lastLine = line;
      this.lastPlain = { key, at: now };
    }
  }

  finish(): void {
    if (this.stream.isTTY && this.lastLine) this.stream.write('\n');
  }
}
