// resubmit_unchanged_seconds: request → manifest written (the `project.upload` reply) for a re-submit
// of the unchanged project with a warm cache; the median of the re-submits. See lib/resubmit.ts.
import { median } from '../lib/proc.js';
import { resubmitUnchanged } from '../lib/resubmit.js';
import type { Goal, Metric } from '../lib/types.js';

/**
 * Issue 14's targets: 0.3 s up to 10,000 files, then 20 µs a file (2 s at 100,000): a re-submit
 * costs a stat and a lookup per file, so its goal grows with the project.
 */
export function resubmitGoal(files: number): Goal {
  return { on: 'value', op: '<=', target: Math.max(0.3, Number((files * 20e-6).toFixed(3))) };
}

export const resubmitUnchangedSeconds: Metric = {
  name: 'resubmit_unchanged_seconds',
  unit: 's',
  goal: resubmitGoal(0),
  async run(ctx) {
    const r = await resubmitUnchanged(ctx);
    return {
      goal: resubmitGoal(r.files),
      value: median(r.seconds),
      note:
        `median of ${r.seconds.length} re-submits of ${r.files} files / ${(r.bytes / 1024 ** 2).toFixed(0)} MiB ` +
        `(project.upload over the WebSocket, backend aws, s3rver); the cold upload took ${r.coldSeconds.toFixed(1)} s`,
      details: { seconds: r.seconds, daemonSeconds: r.daemonSeconds, coldSeconds: r.coldSeconds },
    };
  },
};
