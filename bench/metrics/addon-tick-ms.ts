// addon_tick_ms: the worst main-thread time of one add-on timer tick (skyfarm.sync.tick: drain what
// the network thread received, mirror the job table into WindowManager.skyfarm, report notices) while
// `updatesPerSecond` job updates per second arrive, measured inside real Blender (`blender -b`, see
// bench/blender/addon_tick.py). The updates are real `job.update` events pushed by the real daemon
// over its WebSocket to the add-on's own network thread: 20 jobs appear one after another and then
// advance frame by frame, as a busy farm's do.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Job } from '../../protocol/generated/protocol.js';
import { blenderEnv, findBlenderBinary, NO_BLENDER } from '../lib/blender.js';
import { startBenchDaemon } from '../lib/daemon.js';
import { sleep, stopChild, withTimeout } from '../lib/proc.js';
import { isolatedEnv } from '../lib/s3.js';
import type { Metric } from '../lib/types.js';

const PREFIX = 'j_bench';
const END_JOB = 'j_benchend0000';
const JOBS = 20;
const FRAMES = 250;

function snapshot(index: number, step: number, now: Date): Job {
  const done = Math.min(FRAMES, step);
  const finished = done === FRAMES;
  return {
    id: `${PREFIX}${String(index).padStart(6, '0')}`,
    name: `shot ${index} · Scene`,
    state: finished ? 'done' : 'rendering',
    backend: index % 2 ? 'aws' : 'local',
    blendFile: `/projects/shot ${index}/shot.blend`,
    scene: 'Scene',
    frames: `1-${FRAMES}`,
    output: `/projects/shot ${index}/render`,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, index)).toISOString(),
    updatedAt: now.toISOString(),
    stages: {
      upload: 'done',
      copy: 'done',
      render: finished ? 'done' : 'running',
      publish: finished ? 'done' : 'pending',
    },
    framesTotal: FRAMES,
    framesDone: done,
    framesFailed: 0,
    failedFrames: [],
    progress: done / FRAMES,
    etaSeconds: finished ? null : (FRAMES - done) * 2.5,
    message: finished ? `${FRAMES} frames` : `frame ${done} done`,
    lastFrame: done ? `/projects/shot ${index}/render/frame_${String(done).padStart(4, '0')}.png` : null,
  };
}

export const addonTickMs: Metric = {
  name: 'addon_tick_ms',
  unit: 'ms',
  goal: { on: 'value', op: '<=', target: 5 },
  async run(ctx) {
    const blender = findBlenderBinary();
    if (!blender) return { value: null, note: NO_BLENDER };
    const { tickSeconds, updatesPerSecond } = ctx.sizes;
    const daemon = await startBenchDaemon(ctx, isolatedEnv({}), 'addon');
    try {
      const args = {
        addonSource: path.join(ctx.repoRoot, 'blender-addon'),
        endJob: END_JOB,
        jobPrefix: PREFIX,
        connectTimeout: 120,
        runTimeout: tickSeconds + 120,
      };
      const child = spawn(
        blender,
        [
          '-b',
          '--factory-startup',
          '--python-exit-code',
          '1',
          '--python',
          path.join(ctx.repoRoot, 'bench', 'blender', 'addon_tick.py'),
          '--',
          JSON.stringify(args),
        ],
        {
          env: blenderEnv(ctx, 'addon', { SKYFARM_HOME: daemon.daemon.paths.root }),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      ctx.cleanup(() => stopChild(child));
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const tail = () => `${stdout}\n${stderr}`.trim().split('\n').slice(-6).join(' | ');

      const readyBy = Date.now() + args.connectTimeout * 1000;
      while (!stdout.includes('SKYFARM_BENCH_READY')) {
        if (child.exitCode !== null) throw new Error(`Blender exited ${child.exitCode}: ${tail()}`);
        if (Date.now() > readyBy) throw new Error(`the add-on did not connect: ${tail()}`);
        await sleep(50);
      }

      // Feed: updatesPerSecond job.update events, paced by the clock (not by timer accuracy).
      const notify = daemon.daemon.hub.notify;
      const steps = new Array<number>(JOBS).fill(0);
      let sent = 0;
      const started = performance.now();
      for (;;) {
        const elapsed = (performance.now() - started) / 1000;
        if (elapsed >= tickSeconds) break;
        const due = Math.floor(elapsed * updatesPerSecond);
        while (sent < due) {
          // Jobs appear one by one (every 1/JOBS of the run), then each update advances one of them.
          const visible = Math.min(
            JOBS,
            1 + Math.floor((sent / (tickSeconds * updatesPerSecond)) * JOBS * 2),
          );
          const index = sent % visible;
          steps[index] = (steps[index] ?? 0) + 1;
          notify('job.update', snapshot(index, steps[index] ?? 0, new Date()));
          sent += 1;
        }
        await sleep(2);
      }
      const end = snapshot(0, FRAMES, new Date());
      notify('job.update', { ...end, id: END_JOB, name: 'end marker' });
      const code = await withTimeout(exited, 120_000, 'Blender after the end marker').catch(
        (error: Error) => {
          throw new Error(`${error.message}: ${tail()}`);
        },
      );
      const line = stdout.split('\n').find((l) => l.startsWith('SKYFARM_BENCH_RESULT '));
      if (code !== 0 || !line) throw new Error(`Blender exited ${code}: ${tail()}`);
      const result = JSON.parse(line.slice('SKYFARM_BENCH_RESULT '.length)) as {
        ticks: number;
        maxMs: number;
        p50Ms: number;
        p99Ms: number;
        over5ms: number;
        jobUpdatesApplied: number;
        seconds: number;
      };
      return {
        value: result.maxMs,
        note:
          `${sent} job.update events (${updatesPerSecond}/s for ${tickSeconds} s, ${JOBS} jobs) through the daemon's WebSocket ` +
          `into Blender (blender -b, tick() driven at the delays it asks for); ${result.ticks} ticks: ` +
          `p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${result.over5ms} over 5 ms`,
        details: { ...result, sent },
      };
    } finally {
      await daemon.stop();
    }
  },
};
