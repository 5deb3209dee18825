// local_render_ratio_vs_blender: wall time of a local-backend render of N frames of the demo scene
// through the real daemon (render.submit over its WebSocket → the job's `done` update: probe, upload
// to the local store, copy, render, publish into the output folder) ÷ plain `blender -b FILE -o …
// -s 1 -e N -a` of the same frames. Alternating runs; the best of each side counts.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Job } from '../../protocol/generated/protocol.js';
import { blenderEnv, findBlenderBinary, NO_BLENDER } from '../lib/blender.js';
import { startBenchDaemon } from '../lib/daemon.js';
import { check, run, withTimeout } from '../lib/proc.js';
import { isolatedEnv } from '../lib/s3.js';
import type { BenchContext, Metric } from '../lib/types.js';

let runs = 0;

function freshScene(ctx: BenchContext, label: string): { blend: string; output: string } {
  const dir = path.join(ctx.tmp, `render-${label}-${++runs}`);
  mkdirSync(path.join(dir, 'out'), { recursive: true });
  const blend = path.join(dir, 'demo.blend');
  copyFileSync(path.join(ctx.repoRoot, 'daemon', 'demo', 'demo.blend'), blend);
  return { blend, output: path.join(dir, 'out') };
}

function pngs(dir: string): number {
  return readdirSync(dir).filter((name) => name.endsWith('.png')).length;
}

async function plainBlender(ctx: BenchContext, blender: string, frames: number): Promise<number> {
  const { blend, output } = freshScene(ctx, 'blender');
  const result = check(
    'blender -a',
    await run(
      blender,
      ['-b', blend, '-o', path.join(output, 'frame_####'), '-s', '1', '-e', String(frames), '-a'],
      {
        env: blenderEnv(ctx, 'plain'),
        timeoutMs: 60 * 60_000,
      },
    ),
  );
  if (pngs(output) !== frames) throw new Error(`blender wrote ${pngs(output)} of ${frames} frames`);
  return result.seconds;
}

async function skyfarmLocal(ctx: BenchContext, blender: string, frames: number): Promise<number> {
  const { blend, output } = freshScene(ctx, 'skyfarm');
  const daemon = await startBenchDaemon(
    ctx,
    isolatedEnv({ ...blenderEnv(ctx, 'daemon'), SKYFARM_BLENDER: blender }),
    'render',
  );
  try {
    let finish: ((job: Job) => void) | undefined;
    const finished = new Promise<Job>((resolve) => (finish = resolve));
    daemon.client.onEvent((event, data) => {
      if (event !== 'job.update') return;
      const job = data as Job;
      if (job.state === 'done' || job.state === 'failed' || job.state === 'canceled') finish?.(job);
    });
    const started = performance.now();
    const { job } = await withTimeout(
      daemon.client.request('render.submit', {
        blendFile: blend,
        frames: `1-${frames}`,
        output,
        backend: 'local',
      }),
      10 * 60_000,
      'render.submit',
    );
    const done = await withTimeout(finished, 60 * 60_000, `local render job ${job.id}`);
    if (done.id !== job.id) throw new Error(`unexpected job ${done.id}`);
    const seconds = (performance.now() - started) / 1000;
    if (done.state !== 'done') throw new Error(`the local render ended ${done.state}: ${done.message}`);
    if (pngs(output) !== frames) throw new Error(`skyfarm delivered ${pngs(output)} of ${frames} frames`);
    return seconds;
  } finally {
    await daemon.stop();
  }
}

export const localRenderRatioVsBlender: Metric = {
  name: 'local_render_ratio_vs_blender',
  unit: 's',
  goal: { on: 'ratio', op: '<=', target: 1.1 },
  async run(ctx) {
    const blender = findBlenderBinary();
    if (!blender) return { value: null, note: NO_BLENDER };
    const frames = ctx.sizes.renderFrames;
    const skyfarm: number[] = [];
    const plain: number[] = [];
    // Neither side should pay for loading Blender from disk first.
    await run(blender, ['-b', '--factory-startup', '--version'], {
      env: blenderEnv(ctx, 'plain'),
      timeoutMs: 120_000,
    });
    for (let i = 0; i < ctx.sizes.renderRuns; i++) {
      const order = i % 2 === 0 ? ['plain', 'skyfarm'] : ['skyfarm', 'plain'];
      for (const side of order) {
        if (side === 'plain') plain.push(await plainBlender(ctx, blender, frames));
        else skyfarm.push(await skyfarmLocal(ctx, blender, frames));
      }
    }
    const best = (xs: number[]) => Math.min(...xs);
    return {
      value: best(skyfarm),
      baseline: best(plain),
      note:
        `${frames} frames of daemon/demo/demo.blend (Cycles, 320×180, 32 samples); skyfarm = render.submit → job done ` +
        `through the daemon (probe, upload, copy, render, publish)`,
      details: { frames, seconds: { skyfarm, blender: plain } },
    };
  },
};
