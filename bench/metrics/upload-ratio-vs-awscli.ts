// upload_ratio_vs_awscli: cold upload throughput of the daemon (`project.upload`, backend aws: collect,
// plan, hash, presence check, upload, manifest — fresh hash cache, fresh bucket) ÷ `aws s3 sync` of
// the same tree to a fresh bucket on the same s3rver (Debian's awscli v2, its default settings).
// Alternating runs; the best of each side counts.
import { benchProject, mibPerSecond } from '../lib/fixtures.js';
import type { Metric } from '../lib/types.js';
import {
  awsCliColdSync,
  awsCliVersion,
  findAwsCli,
  firstColdUpload,
  skyfarmColdUpload,
} from '../lib/upload.js';

export const uploadRatioVsAwscli: Metric = {
  name: 'upload_ratio_vs_awscli',
  unit: 'MiB/s',
  goal: { on: 'ratio', op: '>=', target: 1.0 },
  async run(ctx) {
    const aws = findAwsCli();
    const project = await benchProject(ctx);
    if (!aws) {
      return {
        value: null,
        note: 'awscli is not installed: apt-get install -y --no-install-recommends awscli',
      };
    }
    const version = await awsCliVersion(aws);
    const skyfarm: number[] = [];
    const awscli: number[] = [];
    for (let i = 0; i < ctx.sizes.uploadRuns; i++) {
      const sky = async () => {
        skyfarm.push(
          i === 0 ? (await firstColdUpload(ctx)).seconds : (await skyfarmColdUpload(ctx, false)).seconds,
        );
      };
      const peer = async () => {
        awscli.push(await awsCliColdSync(ctx, aws));
      };
      if (i % 2 === 0) {
        await sky();
        await peer();
      } else {
        await peer();
        await sky();
      }
    }
    const best = (xs: number[]) => Math.min(...xs);
    return {
      value: mibPerSecond(project.bytes, best(skyfarm)),
      baseline: mibPerSecond(project.bytes, best(awscli)),
      note:
        `${project.files.length + 1} files, ${(project.bytes / 1024 ** 2).toFixed(0)} MiB to s3rver (its own process); ` +
        `skyfarm best ${best(skyfarm).toFixed(1)} s, ${version} best ${best(awscli).toFixed(1)} s`,
      details: { seconds: { skyfarm, awscli }, awscli: `${aws} (${version})`, bytes: project.bytes },
    };
  },
};
