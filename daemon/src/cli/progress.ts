// How a job's progress looks in a terminal: one redrawn bar on a TTY, plain lines otherwise.
import type { Job } from '../../../protocol/generated/protocol.js';

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

export function progressBar(job: Job, width = 24): string {
  const filled = Math.round(job.progress * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  const failed = job.framesFailed ? `, ${job.framesFailed} failed` : '';
  return `[${bar}] ${job.framesDone}/${job.framesTotal} frames${failed}  ETA ${formatDuration(job.etaSeconds)}  ${job.state}: ${job.message}`;
}

export function progressLine(job: Job): string {
  const failed = job.framesFailed ? ` (${job.framesFailed} failed)` : '';
  return `${job.id} ${job.state} ${job.framesDone}/${job.framesTotal} frames${failed} — ${job.message}`;
}

export class ProgressPrinter {
  private lastLine = '';
  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(job: Job): void {
    if (this.stream.isTTY) {
      const columns = this.stream.columns || 100;
      const line = progressBar(job).slice(0, columns - 1);
      this.stream.write(
        `\r${line.padEnd(Math.min(columns - 1, Math.max(line.length, this.lastLine.length)))}`,
      );
      this.lastLine = line;
    } else {
      const line = progressLine(job);
      if (line !== this.lastLine) this.stream.write(line + '\n');
      this.lastLine = line;
    }
  }

  finish(): void {
    if (this.stream.isTTY && this.lastLine) this.stream.write('\n');
  }
}
