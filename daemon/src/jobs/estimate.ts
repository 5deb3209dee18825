// Progress and ETA of a rendering job from what Blender reports: the times of finished frames and,
// for each frame rendering now (one per chunk), the samples done so far and when. Blender reports
// samples in bursts (Cycles in the background about every 30 s, after a first single sample), so the
// estimate runs on at the measured per-sample rate between reports. Pure: callers pass the clock.
// Used by the local backend, the AWS worker (one tracker per chunk) and the AWS backend.
import type { LiveFrame } from '../../../protocol/generated/protocol.js';

/** One frame being rendered, seen at some moment `now`. Times are seconds since the frame started. */
export interface FrameInFlight {
  frame: number;
  /** As last reported by Blender (0 before any report). */
  samplesDone: number;
  /** 0 while unknown (no report yet). */
  samplesTotal: number;
  /** Now. */
  elapsedSeconds: number;
  /** When samplesDone was reported; null before any report. */
  reportedSeconds: number | null;
  /** Seconds per sample measured within this frame; null while unknown. */
  secondsPerSample: number | null;
}

export interface JobEstimate {
  /** The shares of the frames in flight that are done, summed (each below 1 until its frame ends). */
  inFlightFraction: number;
  etaSeconds: number | null;
  /** The lowest-numbered frame in flight (absent when none). */
  live?: LiveFrame;
}

/** A frame counts as at most this much done until it is finished (saving follows the last sample). */
export const MAX_FRAME_SHARE = 0.99;

function samplesNow(f: FrameInFlight): number {
  if (f.samplesTotal <= 0) return 0;
  let done = f.samplesDone;
  if (f.secondsPerSample && f.reportedSeconds !== null && done < f.samplesTotal) {
    done += Math.max(0, f.elapsedSeconds - f.reportedSeconds) / f.secondsPerSample;
  }
  return Math.min(done, f.samplesTotal);
}

/** How much of the frame is done, 0 ≤ share ≤ MAX_FRAME_SHARE. */
export function frameShare(f: FrameInFlight): number {
  if (f.samplesTotal <= 0) return 0;
  return Math.min(MAX_FRAME_SHARE, Math.max(0, samplesNow(f) / f.samplesTotal));
}

/**
 * Seconds until the frame is done: the remaining samples at the frame's own rate, blended with what
 * finished frames took (`meanFrameSeconds`) — the further the frame, the more its own rate counts.
 */
export function frameRemaining(f: FrameInFlight, meanFrameSeconds: number | null): number | null {
  const share = frameShare(f);
  const own =
    f.samplesTotal > 0 && f.samplesDone >= f.samplesTotal
      ? 0
      : f.secondsPerSample !== null && f.samplesTotal > 0
        ? Math.max(0, (f.samplesTotal - samplesNow(f)) * f.secondsPerSample)
        : null;
  const history =
    meanFrameSeconds === null
      ? null
      : share > 0
        ? meanFrameSeconds * (1 - share)
        : Math.max(0, meanFrameSeconds - f.elapsedSeconds);
  if (own === null) return history;
  if (history === null) return own;
  return share * own + (1 - share) * history;
}

function mean(values: readonly number[]): number | null {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

/**
 * The job's in-frame progress and ETA. `parallel`: frames that render at once (local render slots in
 * use, running AWS chunks); remaining work is spread over them, and no ETA is shorter than the
 * longest frame in flight.
 */
export function estimateJob(input: {
  framesTotal: number;
  /** Done and failed frames. */
  framesFinished: number;
  /** How long finished frames took. */
  frameSeconds: readonly number[];
  inFlight: readonly FrameInFlight[];
  parallel: number;
}): JobEstimate {
  const { inFlight } = input;
  const history = mean(input.frameSeconds);
  const shares = inFlight.map(frameShare);
  const remaining = inFlight.map((f) => frameRemaining(f, history));
  // A frame in flight counts towards the typical frame time by the share of it that is done.
  let weight = input.frameSeconds.length;
  let total = input.frameSeconds.reduce((a, b) => a + b, 0);
  const projected: number[] = [];
  inFlight.forEach((f, i) => {
    const left = remaining[i];
    if (left === null || left === undefined) return;
    projected.push(f.elapsedSeconds + left);
    weight += shares[i]!;
    total += shares[i]! * (f.elapsedSeconds + left);
  });
  const perFrame = weight > 0 ? total / weight : mean(projected);
  const left = inFlight.map(
    (f, i) => remaining[i] ?? (perFrame === null ? null : Math.max(0, perFrame - f.elapsedSeconds)),
  );
  const unstarted = Math.max(0, input.framesTotal - input.framesFinished - inFlight.length);
  let etaSeconds: number | null = null;
  if (left.every((s) => s !== null) && (unstarted === 0 || perFrame !== null)) {
    const known = left as number[];
    const work = known.reduce((a, b) => a + b, 0) + unstarted * (perFrame ?? 0);
    const lanes = Math.max(1, input.parallel, inFlight.length);
    etaSeconds = Math.max(0, ...known, work / lanes);
  }
  const estimate: JobEstimate = {
    inFlightFraction: shares.reduce((a, b) => a + b, 0),
    etaSeconds,
  };
  const first = [...inFlight].sort((a, b) => a.frame - b.frame)[0];
  if (first) {
    estimate.live = {
      frame: first.frame,
      samplesDone: Math.min(first.samplesDone, first.samplesTotal),
      samplesTotal: first.samplesTotal,
      rendering: inFlight.length,
    };
  }
  return estimate;
}

/** What a FrameTracker knows, as the AWS worker writes it for the daemon (seconds since the frame started). */
export interface FrameReport {
  frame: number;
  samplesDone: number;
  samplesTotal: number;
  reportedSeconds: number | null;
  secondsPerSample: number | null;
  /** When this report was taken. */
  elapsedSeconds: number;
}

/**
 * The frame one Blender (one chunk) is rendering, from its frameStart and samples events. Clock
 * readings in milliseconds (any monotonic origin).
 */
export class FrameTracker {
  private current:
    | {
        frame: number;
        startedAt: number;
        /** The first report of this pass (Cycles: `Sample 0/N` as path tracing starts). */
        first: { at: number; done: number } | null;
        last: { at: number; done: number; total: number } | null;
      }
    | undefined;

  /** Blender started `frame` (render_chunk.py's SKYFARM_FRAME_START). */
  start(frame: number, at: number): void {
    this.current = { frame, startedAt: at, first: null, last: null };
  }

  /**
   * A samples report. 'first-rate': the first report from which a rate is known (worth announcing
   * at once); 'update': a later one; 'ignored': no frame started, or nothing new.
   */
  samples(done: number, total: number, at: number): 'first-rate' | 'update' | 'ignored' {
    const c = this.current;
    if (!c || total <= 0 || done < 0) return 'ignored';
    const hadRate = this.rate() !== null;
    const last = c.last;
    if (last && last.done === done && last.total === total) return 'ignored';
    // Fewer samples than before (another view layer, another pass): a new pass starts.
    if (!c.first || !last || done < last.done || total !== last.total) c.first = { at, done };
    c.last = { at, done, total };
    return !hadRate && this.rate() !== null ? 'first-rate' : 'update';
  }

  /** The frame ended (done, skipped or failed). */
  end(): void {
    this.current = undefined;
  }

  get frame(): number | null {
    return this.current?.frame ?? null;
  }

  private rate(): number | null {
    const c = this.current;
    if (!c?.last) return null;
    const { first, last } = c;
    if (first && last.done > first.done && last.at > first.at)
      return (last.at - first.at) / 1000 / (last.done - first.done);
    if (last.done > 0 && last.at > c.startedAt) return (last.at - c.startedAt) / 1000 / last.done;
    return null;
  }

  /** The frame as seen at `now`; null when none is rendering. */
  report(now: number): FrameReport | null {
    const c = this.current;
    if (!c) return null;
    return {
      frame: c.frame,
      samplesDone: c.last?.done ?? 0,
      samplesTotal: c.last?.total ?? 0,
      reportedSeconds: c.last ? Math.max(0, (c.last.at - c.startedAt) / 1000) : null,
      secondsPerSample: this.rate(),
      elapsedSeconds: Math.max(0, (now - c.startedAt) / 1000),
    };
  }
}

/** A report taken `ageSeconds` ago, seen now: the frame has gone on rendering since. */
export function inFlightFromReport(report: FrameReport, ageSeconds = 0): FrameInFlight {
  return {
    frame: report.frame,
    samplesDone: report.samplesDone,
    samplesTotal: report.samplesTotal,
    elapsedSeconds: report.elapsedSeconds + Math.max(0, ageSeconds),
    reportedSeconds: report.reportedSeconds,
    secondsPerSample: report.secondsPerSample,
  };
}
