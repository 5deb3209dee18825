// resubmit_unchanged_seconds: request → manifest written (the `project.upload` reply) for a re-submit
// of the unchanged project with a warm cache; the median of the re-submits. See lib/resubmit.ts.
import { median } from '../lib/proc.js';
import { resubmitUnchanged } from '../lib/resubmit.js';
import type { Metric } from '../lib/types.js';

export const resubmitUnchangedSeconds: Metric = {
  name: 'resubmit_unchanged_seconds',
  unit: 's',
  goal: { on: 'value', op: '<=', target: 0.5 },
  async run(ctx) {
    const r = await resubmitUnchanged(ctx);
    return {
      value: median(r.seconds),
      note:
        `median of ${r.seconds.length} re-submits of ${r.files} files / ${(r.bytes / 1024 ** 2).toFixed(0)} MiB ` +
        `(project.upload over the WebSocket, backend aws, s3rver); the cold upload took ${r.coldSeconds.toFixed(1)} s`,
      details: { seconds: r.seconds, daemonSeconds: r.daemonSeconds, coldSeconds: r.coldSeconds },
    };
  },
};
