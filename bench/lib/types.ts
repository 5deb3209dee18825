// What a benchmark metric is and what it reports. The names, units and goals are the contract of
// `npm run bench -- --json` (issue 8): one JSON object per metric.

/** `value` (or `ratio`, when the metric compares against a baseline) must satisfy `op target`. */
export interface Goal {
  on: 'value' | 'ratio';
  op: '<=' | '>=';
  target: number;
}

/** One printed row / JSON object. */
export interface MetricResult {
  name: string;
  /** The measured figure, or null when it could not be measured (see `note`). */
  value: number | null;
  unit: string;
  /** The peer's figure measured in the same run, in the same unit. */
  baseline?: number;
  /** value ÷ baseline. */
  ratio?: number;
  /** What must hold, naming the field it applies to: e.g. "ratio >= 0.9", "value <= 80". */
  goal: string;
  /** Whether the goal holds; null when nothing was measured. */
  met: boolean | null;
  /** What was measured, how, and what limits the figure. */
  note?: string;
  /** Absolute figures and sizes behind the value (seconds, bytes, repetitions…). */
  details?: Record<string, unknown>;
}

/** What a metric's measurement returns; the harness adds name, unit, goal, ratio and met. */
export interface Measurement {
  value: number | null;
  baseline?: number;
  note?: string;
  details?: Record<string, unknown>;
  /** The goal for this run's sizes, when it depends on them (instead of the metric's own). */
  goal?: Goal;
}

export interface Sizes {
  /** The upload/hash/resubmit project. */
  projectFiles: number;
  projectBytes: number;
  /** Repetitions of each contender in the hash and upload comparisons (the best run counts). */
  hashRuns: number;
  uploadRuns: number;
  /** Re-submits of the unchanged project (the median counts). */
  resubmits: number;
  /** Frames of the local render comparison, and runs of each side. */
  renderFrames: number;
  renderRuns: number;
  /** The project the idle daemon watches, and how long it idles. */
  watchFiles: number;
  watchFolders: number;
  idleSeconds: number;
  /** Frames of the job the AWS backend tracks against fake Batch. */
  batchFrames: number;
  /** Seconds of 100 job updates/s fed to the add-on. */
  tickSeconds: number;
  updatesPerSecond: number;
}

export interface BenchContext {
  quick: boolean;
  sizes: Sizes;
  repoRoot: string;
  /** A private temporary folder for this run (removed at the end). */
  tmp: string;
  /** Progress on stderr. */
  log(message: string): void;
  /** Runs at the end of the bench (last registered first). */
  cleanup(fn: () => unknown): void;
  /** Work several metrics share (a generated project, one cold upload), computed once. */
  shared<T>(key: string, make: () => Promise<T>): Promise<T>;
}

export interface Metric {
  name: string;
  unit: string;
  goal: Goal;
  /** Measures; throwing makes the value null with the error as the note. */
  run(ctx: BenchContext): Promise<Measurement>;
  /**
   * For metrics that mostly wait (daemon idle RSS): set up first, then idle while the others run.
   * `setup` returns the function that finishes the measurement.
   */
  setup?(ctx: BenchContext): Promise<() => Promise<Measurement>>;
}

export function formatGoal(goal: Goal): string {
  return `${goal.on} ${goal.op} ${goal.target}`;
}

export function goalMet(goal: Goal, value: number | null, ratio: number | undefined): boolean | null {
  const x = goal.on === 'ratio' ? ratio : value;
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  return goal.op === '<=' ? x <= goal.target : x >= goal.target;
}
