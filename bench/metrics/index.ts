// The eight metrics of issue 8, issue #14's scaling growth and the split merge's two (issue #17),
// in the order they are printed. Their names are the contract.
import type { Metric } from '../lib/types.js';
import { resubmitUnchangedBytes } from './resubmit-unchanged-bytes.js';
import { resubmitUnchangedSeconds } from './resubmit-unchanged-seconds.js';
import { hashRatioVsSha256 } from './hash-ratio-vs-sha256.js';
import { uploadRatioVsAwscli } from './upload-ratio-vs-awscli.js';
import { statusCallsPerPoll } from './status-calls-per-poll.js';
import { localRenderRatioVsBlender } from './local-render-ratio-vs-blender.js';
import { daemonIdleRssMb } from './daemon-idle-rss-mb.js';
import { addonTickMs } from './addon-tick-ms.js';
import { uploadScalingGrowth } from './upload-scaling-growth.js';
import { splitMerge4kPeakRssMb, splitMerge4kSeconds } from './split-merge.js';

export const METRICS: Metric[] = [
  resubmitUnchangedBytes,
  resubmitUnchangedSeconds,
  hashRatioVsSha256,
  uploadRatioVsAwscli,
  statusCallsPerPoll,
  localRenderRatioVsBlender,
  daemonIdleRssMb,
  addonTickMs,
  uploadScalingGrowth,
  splitMerge4kSeconds,
  splitMerge4kPeakRssMb,
];
