// split_merge_4k_seconds and split_merge_4k_peak_rss_mb (issue #17): the merge's own work for one
// split frame, 3840×2160 in N = 8 parts with the passes a denoising scene's parts hold (image,
// albedo, normal: 10 float32 channels, 331 MB a part): the sample-weighted mean of every pass,
// written as one EXR (daemon/src/split/merge.ts), in a process of its own so its peak resident memory
// is the merge's. The baseline is reading the same parts' bytes once (node, 1 MiB reads): the floor
// any merge has. Blender's finishing step (denoise, colour management, output format) is not counted.
// --quick: 960×540.
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { writeSyntheticPart } from '../lib/exr-parts.js';
import { check, run } from '../lib/proc.js';
import type { BenchContext, Measurement, Metric } from '../lib/types.js';

const PARTS = 8;
const SAMPLES = 1024;

interface MergeRun {
  seconds: number;
  readSeconds: number;
  peakMb: number;
  startMb: number;
  width: number;
  height: number;
  partBytes: number;
}

async function readAll(files: string[]): Promise<number> {
  const started = performance.now();
  for (const file of files) for await (const _ of createReadStream(file, { highWaterMark: 1 << 20 }));
  return (performance.now() - started) / 1000;
}

function measureMerge(ctx: BenchContext): Promise<MergeRun> {
  return ctx.shared('split-merge', async () => {
    const [width, height] = ctx.quick ? [960, 540] : [3840, 2160];
    const dir = path.join(ctx.tmp, 'split-merge');
    await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
    ctx.log(`writing ${PARTS} parts of a ${width}×${height} frame`);
    const files: string[] = [];
    const shares: string[] = [];
    let partBytes = 0;
    for (let part = 0; part < PARTS; part += 1) {
      const file = path.join(dir, `${part}.exr`);
      const share = Math.floor(SAMPLES / PARTS) + (part < SAMPLES % PARTS ? 1 : 0);
      partBytes = await writeSyntheticPart(file, width, height, share, part + 1);
      files.push(file);
      shares.push(file, String(share));
    }
    const readSeconds = await readAll(files); // also brings the parts into the page cache, as for the merge
    const output = path.join(dir, 'merged.exr');
    const child = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ctx.repoRoot, 'bench', 'lib', 'split-merge-child.ts'),
        output,
        String(SAMPLES),
        ...shares,
      ],
      { cwd: ctx.repoRoot, timeoutMs: 600_000 },
    );
    check('the merge', child);
    const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
      seconds: number;
      peakMb: number;
      startMb: number;
    };
    const readAgain = await readAll(files);
    await rm(dir, { recursive: true, force: true });
    return { ...result, readSeconds: Math.min(readSeconds, readAgain), width, height, partBytes };
  });
}

export const splitMerge4kSeconds: Metric = {
  name: 'split_merge_4k_seconds',
  unit: 's',
  goal: { on: 'value', op: '<=', target: 30 },
  async run(ctx): Promise<Measurement> {
    const m = await measureMerge(ctx);
    return {
      value: m.seconds,
      baseline: m.readSeconds,
      note: `merge of ${PARTS} parts of ${m.width}×${m.height} (10 float channels); baseline: reading their bytes once`,
      details: {
        width: m.width,
        height: m.height,
        parts: PARTS,
        partBytes: m.partBytes,
        readSeconds: m.readSeconds,
      },
    };
  },
};

export const splitMerge4kPeakRssMb: Metric = {
  name: 'split_merge_4k_peak_rss_mb',
  unit: 'MiB',
  goal: { on: 'value', op: '<=', target: 256 },
  async run(ctx): Promise<Measurement> {
    const m = await measureMerge(ctx);
    return {
      value: m.peakMb,
      note: `peak resident memory (VmHWM) of the process that merged; ${m.startMb.toFixed(0)} MiB before it started`,
      details: { startMb: m.startMb, width: m.width, height: m.height, parts: PARTS },
    };
  },
};
