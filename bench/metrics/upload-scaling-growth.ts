// upload_scaling_growth: how the per-file cost of a project upload grows with the number of files.
// At 1,000, 10,000 and 100,000 files (quick: 100 and 1,000; about 8 KiB a file, the size of a cache
// frame), each through the real daemon to s3rver: hashing every file (the daemon's hash workers),
// the cold upload (fresh state and bucket), and the unchanged re-submit (median of 3). The value is
// the worst of the three ratios "per-file cost at the largest size ÷ at the smallest": 1 is linear
// growth; the table of all nine per-file costs is printed while it runs and kept in the details.
import path from 'node:path';
import { hashPool } from '../../daemon/src/project/hash-pool.js';
import { startBenchDaemon } from '../lib/daemon.js';
import { median, withTimeout } from '../lib/proc.js';
import { makeProject, type Project } from '../lib/project.js';
import { isolatedEnv, startLocalS3 } from '../lib/s3.js';
import type { BenchContext, Metric } from '../lib/types.js';

const BYTES_PER_FILE = 8 * 1024;
const RESUBMITS = 3;

interface SizeCosts {
  files: number;
  hashSeconds: number;
  coldSeconds: number;
  resubmitSeconds: number;
}

async function hashAll(project: Project): Promise<number> {
  const pool = hashPool();
  const started = performance.now();
  let next = 0;
  const files = [project.blendFile, ...project.files];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < files.length) await pool.hash(files[next++]!);
    }),
  );
  return (performance.now() - started) / 1000;
}

async function measureSize(
  ctx: BenchContext,
  files: number,
  label = 'upload_scaling_growth',
): Promise<SizeCosts> {
  ctx.log(`${label}: ${files.toLocaleString('en')} files`);
  const project = makeProject(ctx.repoRoot, path.join(ctx.tmp, `scaling-${files}`), {
    files,
    bytes: files * BYTES_PER_FILE,
  });
  const hashSeconds = await hashAll(project);
  const s3 = await startLocalS3(ctx);
  const bucket = `skyfarm-scaling-${files}`;
  await s3.createBucket(bucket);
  const daemon = await startBenchDaemon(ctx, isolatedEnv(s3.env), `scaling-${files}`);
  try {
    const upload = async () => {
      const started = performance.now();
      await withTimeout(
        daemon.client.request('project.upload', {
          blendFile: project.blendFile,
          backend: 'aws',
          bucket,
          dependencies: project.dependencies,
          strict: true,
        }),
        60 * 60_000,
        `project.upload of ${files} files`,
      );
      return (performance.now() - started) / 1000;
    };
    const coldSeconds = await upload();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // past the hash cache's racy window
    const resubmits: number[] = [];
    for (let i = 0; i < RESUBMITS; i++) resubmits.push(await upload());
    const costs = { files, hashSeconds, coldSeconds, resubmitSeconds: median(resubmits) };
    ctx.log(
      `${label}: ${files} files: hash ${hashSeconds.toFixed(2)} s, cold upload ` +
        `${coldSeconds.toFixed(2)} s, re-submit ${costs.resubmitSeconds.toFixed(3)} s`,
    );
    return costs;
  } finally {
    await daemon.stop();
  }
}

const perFileMs = (seconds: number, files: number) => (seconds * 1000) / files;

export const uploadScalingGrowth: Metric = {
  name: 'upload_scaling_growth',
  unit: 'x',
  goal: { on: 'value', op: '<=', target: 2 },
  async run(ctx) {
    const sizes = ctx.quick ? [100, 1000] : [1000, 10_000, 100_000];
    // Once through everything first: the first upload of the process loads the AWS SDK and starts
    // the hash workers, which would be charged to the smallest size.
    await measureSize(ctx, 20, 'upload_scaling_growth (warm-up)');
    const measured: SizeCosts[] = [];
    for (const files of sizes) measured.push(await measureSize(ctx, files));
    const first = measured[0]!;
    const last = measured.at(-1)!;
    const growth = (pick: (c: SizeCosts) => number) =>
      perFileMs(pick(last), last.files) / perFileMs(pick(first), first.files);
    const growths = {
      hash: growth((c) => c.hashSeconds),
      coldUpload: growth((c) => c.coldSeconds),
      resubmit: growth((c) => c.resubmitSeconds),
    };
    const table = [
      'files       hash/file  cold upload/file  re-submit/file',
      ...measured.map(
        (c) =>
          `${c.files.toLocaleString('en').padStart(7)}  ${perFileMs(c.hashSeconds, c.files).toFixed(3).padStart(9)} ms` +
          `  ${perFileMs(c.coldSeconds, c.files).toFixed(3).padStart(13)} ms` +
          `  ${perFileMs(c.resubmitSeconds, c.files).toFixed(4).padStart(11)} ms`,
      ),
    ];
    for (const line of table) ctx.log(`upload_scaling_growth: ${line}`);
    return {
      value: Math.max(growths.hash, growths.coldUpload, growths.resubmit),
      note:
        `per-file cost at ${last.files} ÷ at ${first.files} files: hash ${growths.hash.toFixed(2)}×, cold upload ` +
        `${growths.coldUpload.toFixed(2)}×, re-submit ${growths.resubmit.toFixed(2)}× (about 8 KiB a file, s3rver); ` +
        measured
          .map(
            (c) =>
              `${c.files} files: hash ${c.hashSeconds.toFixed(2)} s, cold ${c.coldSeconds.toFixed(2)} s, ` +
              `re-submit ${c.resubmitSeconds.toFixed(3)} s`,
          )
          .join('; '),
      details: { sizes: measured, growth: growths, table },
    };
  },
};
