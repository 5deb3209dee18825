// Runs the selected metrics in one process, one after another (the idle-RSS metric sets up first and
// idles while the others run), and turns their measurements into the rows `npm run bench` prints.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { killRunningChildren } from './proc.js';
import {
  formatGoal,
  goalMet,
  type BenchContext,
  type Measurement,
  type Metric,
  type MetricResult,
  type Sizes,
} from './types.js';

export interface BenchOptions {
  quick: boolean;
  sizes: Sizes;
  repoRoot: string;
  metrics: Metric[];
  log: (message: string) => void;
}

export function fullSizes(): Sizes {
  return {
    projectFiles: 1000,
    projectBytes: 1024 ** 3,
    hashRuns: 5,
    uploadRuns: 2,
    resubmits: 5,
    renderFrames: 10,
    renderRuns: 2,
    watchFiles: 10_000,
    watchFolders: 100,
    idleSeconds: 60,
    batchFrames: 1000,
    tickSeconds: 10,
    updatesPerSecond: 100,
  };
}

export function quickSizes(): Sizes {
  return {
    ...fullSizes(),
    projectBytes: 128 * 1024 ** 2,
    // Best of several alternating runs per side: one run each was at the mercy of whatever else the
    // shared machine did at that moment (upload ratios 0.71-1.06 between runs of the same code).
    hashRuns: 5,
    uploadRuns: 2,
    resubmits: 3,
    renderFrames: 4,
    // Two alternating runs per side (plain, skyfarm, skyfarm, plain), the best of each: single runs
    // of the same code gave 0.71 and 1.23 back to back.
    renderRuns: 2,
    tickSeconds: 5,
  };
}

function round(x: number): number {
  if (!Number.isFinite(x)) return x;
  const digits = Math.abs(x) >= 100 ? 1 : Math.abs(x) >= 1 ? 3 : 4;
  return Number(x.toFixed(digits));
}

export function toResult(metric: Metric, measurement: Measurement): MetricResult {
  const value = measurement.value === null ? null : round(measurement.value);
  const goal = measurement.goal ?? metric.goal;
  const result: MetricResult = {
    name: metric.name,
    value,
    unit: metric.unit,
    goal: formatGoal(goal),
    met: null,
  };
  let ratio: number | undefined;
  if (measurement.baseline !== undefined && Number.isFinite(measurement.baseline)) {
    result.baseline = round(measurement.baseline);
    if (measurement.value !== null && measurement.baseline !== 0) {
      ratio = measurement.value / measurement.baseline;
      result.ratio = round(ratio);
    }
  }
  result.met = goalMet(goal, measurement.value, ratio);
  if (measurement.note) result.note = measurement.note;
  if (measurement.details) result.details = measurement.details;
  return result;
}

function failure(error: unknown): Measurement {
  const message = error instanceof Error ? error.message : String(error);
  return { value: null, note: `not measured: ${message.split('\n')[0]}` };
}

/** The running bench's cleanups, for an interrupted run (Ctrl-C). */
let running: { cleanups: Array<() => unknown>; tmp: string } | undefined;

/** Stops everything the running bench started and removes its temporary folder. */
export async function abortBench(): Promise<void> {
  const run = running;
  running = undefined;
  if (!run) return;
  killRunningChildren();
  for (const fn of run.cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch {
      // keep stopping the rest
    }
  }
  rmSync(run.tmp, { recursive: true, force: true });
}

export async function runBench(options: BenchOptions): Promise<MetricResult[]> {
  const tmp = mkdtempSync(path.join(tmpdir(), 'skyfarm-bench-'));
  const cleanups: Array<() => unknown> = [];
  running = { cleanups, tmp };
  const memo = new Map<string, Promise<unknown>>();
  const ctx: BenchContext = {
    quick: options.quick,
    sizes: options.sizes,
    repoRoot: options.repoRoot,
    tmp,
    log: options.log,
    cleanup: (fn) => cleanups.push(fn),
    shared: <T>(key: string, make: () => Promise<T>) => {
      let value = memo.get(key) as Promise<T> | undefined;
      if (!value) {
        value = make();
        memo.set(key, value);
      }
      return value;
    },
  };
  const measurements = new Map<string, Measurement>();
  try {
    // Metrics that idle set up first, so their waiting overlaps the others' work.
    const finishers: Array<[Metric, () => Promise<Measurement>]> = [];
    for (const metric of options.metrics) {
      if (!metric.setup) continue;
      ctx.log(`${metric.name}: setting up`);
      try {
        finishers.push([metric, await metric.setup(ctx)]);
      } catch (error) {
        measurements.set(metric.name, failure(error));
      }
    }
    for (const metric of options.metrics) {
      if (metric.setup) continue;
      ctx.log(`${metric.name}: measuring`);
      const started = performance.now();
      measurements.set(metric.name, await metric.run(ctx).catch(failure));
      ctx.log(`${metric.name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    for (const [metric, finish] of finishers) {
      ctx.log(`${metric.name}: finishing`);
      measurements.set(metric.name, await finish().catch(failure));
    }
  } finally {
    running = undefined;
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (error) {
        ctx.log(`cleanup failed: ${(error as Error).message}`);
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  return options.metrics.map((metric) =>
    toResult(metric, measurements.get(metric.name) ?? failure('not run')),
  );
}

function cell(x: number | undefined | null): string {
  if (x === undefined) return '';
  if (x === null) return 'null';
  return String(x);
}

/** The human table: one row per metric, the notes below. */
export function formatTable(results: MetricResult[]): string {
  const header = ['metric', 'value', 'unit', 'baseline', 'ratio', 'goal', 'met'];
  const rows = results.map((r) => [
    r.name,
    cell(r.value),
    r.unit,
    cell(r.baseline),
    cell(r.ratio),
    r.goal,
    r.met === null ? '—' : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === 2 || i === 5 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  const notes = results.filter((r) => r.note);
  if (notes.length) {
    out.push('');
    for (const r of notes) out.push(`${r.name}: ${r.note}`);
  }
  return out.join('\n');
}
