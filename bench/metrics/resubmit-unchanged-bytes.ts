// resubmit_unchanged_bytes: blob bytes sent when the unchanged project is submitted again with a warm
// cache (the most any of the re-submits sent). See lib/resubmit.ts.
import { resubmitUnchanged } from '../lib/resubmit.js';
import type { Metric } from '../lib/types.js';

export const resubmitUnchangedBytes: Metric = {
  name: 'resubmit_unchanged_bytes',
  unit: 'bytes',
  goal: { on: 'value', op: '<=', target: 0 },
  async run(ctx) {
    const r = await resubmitUnchanged(ctx);
    return {
      value: Math.max(...r.bytesUploaded),
      note: `${r.files} files, ${(r.bytes / 1024 ** 2).toFixed(0)} MiB to s3rver; ${r.bytesUploaded.length} re-submits after a cold upload`,
      details: { bytesUploaded: r.bytesUploaded, filesHashed: r.filesHashed, files: r.files, bytes: r.bytes },
    };
  },
};
