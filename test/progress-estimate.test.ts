// The in-frame progress estimator (daemon/src/jobs/estimate.ts): a frame's samples and per-sample
// rate from Blender's reports (FrameTracker, on an injected clock), the estimate running on between
// reports, blended with finished frame times, over frames rendering in parallel.
import t from 'tap';
import {
  estimateJob,
  frameRemaining,
  frameShare,
  FrameTracker,
  inFlightFromReport,
  MAX_FRAME_SHARE,
  type FrameInFlight,
} from '../daemon/src/jobs/estimate.js';

function flight(fields: Partial<FrameInFlight>): FrameInFlight {
  return {
    frame: 1,
    samplesDone: 0,
    samplesTotal: 1000,
    elapsedSeconds: 0,
    reportedSeconds: null,
    secondsPerSample: null,
    ...fields,
  };
}

t.test('Cycles: an ETA from the first samples, before any frame has finished', async (t) => {
  const tracker = new FrameTracker();
  t.equal(tracker.samples(1, 1000, 0), 'ignored', 'no frame started yet');
  tracker.start(12, 0);
  // 2 s of scene sync, then `Sample 0/1000` as path tracing starts and `Sample 1/1000` 0.1 s later.
  t.equal(tracker.samples(0, 1000, 2000), 'update', 'Sample 0: no rate yet');
  const before = estimateJob({
    framesTotal: 2,
    framesFinished: 0,
    frameSeconds: [],
    inFlight: [inFlightFromReport(tracker.report(2000)!)],
    parallel: 1,
  });
  t.equal(before.etaSeconds, null, 'no ETA without a rate or a finished frame');
  t.equal(before.inFlightFraction, 0);
  t.same(before.live, { frame: 12, samplesDone: 0, samplesTotal: 1000, rendering: 1 });

  t.equal(tracker.samples(1, 1000, 2100), 'first-rate', 'Sample 1: the first rate, worth announcing');
  t.equal(tracker.samples(1, 1000, 2150), 'ignored', 'the same report again');
  const report = tracker.report(2100)!;
  t.equal(report.frame, 12);
  t.equal(report.samplesDone, 1);
  t.ok(Math.abs(report.secondsPerSample! - 0.1) < 1e-9, '0.1 s per sample, measured after the sync');
  t.ok(Math.abs(report.reportedSeconds! - 2.1) < 1e-9);

  // Cycles reports again only ~30 s later; 10 s on, the estimate has run on at 0.1 s per sample.
  const now = estimateJob({
    framesTotal: 2,
    framesFinished: 0,
    frameSeconds: [],
    inFlight: [inFlightFromReport(tracker.report(12_100)!)],
    parallel: 1,
  });
  t.ok(Math.abs(now.inFlightFraction - 0.101) < 1e-9, `101 of 1000 samples by now (${now.inFlightFraction})`);
  // This frame: 899 samples × 0.1 s left; the other frame: as long as this one is projected to take.
  const left = 899 * 0.1;
  t.ok(Math.abs(now.etaSeconds! - (left + (12.1 + left))) < 1e-6, `ETA ${now.etaSeconds}`);
  t.same(now.live, { frame: 12, samplesDone: 1, samplesTotal: 1000, rendering: 1 }, 'samples as reported');
});

t.test('Eevee: the first report gives a rate from the frame start; later ones between reports', async (t) => {
  const tracker = new FrameTracker();
  tracker.start(3, 1000);
  t.equal(tracker.samples(1, 16, 1500), 'first-rate');
  t.ok(Math.abs(tracker.report(1500)!.secondsPerSample! - 0.5) < 1e-9, 'first sample took 0.5 s');
  t.equal(tracker.samples(2, 16, 1700), 'update');
  t.ok(Math.abs(tracker.report(1700)!.secondsPerSample! - 0.2) < 1e-9, 'then 0.2 s per sample');
  tracker.end();
  t.equal(tracker.report(1800), null, 'no frame after the end');
  t.equal(tracker.frame, null);
});

t.test('a second pass (another view layer) starts the rate again', async (t) => {
  const tracker = new FrameTracker();
  tracker.start(1, 0);
  tracker.samples(0, 100, 1000);
  tracker.samples(100, 100, 11_000); // 0.1 s per sample
  t.equal(tracker.samples(0, 100, 12_000), 'update', 'the count went back: a new pass');
  tracker.samples(10, 100, 14_000); // 0.2 s per sample in this pass
  t.ok(Math.abs(tracker.report(14_000)!.secondsPerSample! - 0.2) < 1e-9);
});

t.test('a frame never counts as finished before its end', async (t) => {
  // Extrapolated far past the last sample: still below one frame.
  const late = flight({ samplesDone: 900, elapsedSeconds: 500, reportedSeconds: 90, secondsPerSample: 0.1 });
  t.equal(frameShare(late), MAX_FRAME_SHARE);
  const saving = flight({
    samplesDone: 1000,
    elapsedSeconds: 101,
    reportedSeconds: 100,
    secondsPerSample: 0.1,
  });
  t.equal(frameShare(saving), MAX_FRAME_SHARE, 'all samples done, the frame is being saved');
  t.equal(frameRemaining(saving, null), 0);
  const estimate = estimateJob({
    framesTotal: 1,
    framesFinished: 0,
    frameSeconds: [],
    inFlight: [late],
    parallel: 1,
  });
  t.ok(estimate.inFlightFraction < 1, 'progress stays below the frame');
  t.equal(estimate.etaSeconds, 0, 'the estimate has run out: 0, not negative');
});

t.test('finished frame times blend in: the further the frame, the more its own rate counts', async (t) => {
  // Half done after 10 s at 0.02 s/sample → 10 s left by its own rate; finished frames took 100 s → 50 s.
  const half = flight({ samplesDone: 500, elapsedSeconds: 10, reportedSeconds: 10, secondsPerSample: 0.02 });
  t.equal(frameRemaining(half, null), 10, 'its own rate alone');
  t.equal(frameRemaining(half, 100), 0.5 * 10 + 0.5 * 50, 'halfway: half each');
  const early = flight({ samplesDone: 0, elapsedSeconds: 30 });
  t.equal(frameRemaining(early, 100), 70, 'no samples yet: a finished frame’s time less the time spent');
  t.equal(frameRemaining(early, null), null, 'nothing known: no estimate');

  // A frame in flight counts towards the typical frame time by the share of it that is done.
  const estimate = estimateJob({
    framesTotal: 4,
    framesFinished: 1,
    frameSeconds: [100],
    inFlight: [half],
    parallel: 1,
  });
  const left = 0.5 * 10 + 0.5 * 50; // 30 s, so this frame takes 40 s in all
  const perFrame = (100 + 0.5 * 40) / 1.5; // 80 s
  t.ok(Math.abs(estimate.etaSeconds! - (left + 2 * perFrame)) < 1e-9, `ETA ${estimate.etaSeconds}`);
  t.equal(estimate.inFlightFraction, 0.5);
});

t.test(
  'frames rendering in parallel: shares add up, work is spread, the live frame is the lowest',
  async (t) => {
    const a = flight({
      frame: 7,
      samplesDone: 250,
      elapsedSeconds: 25,
      reportedSeconds: 25,
      secondsPerSample: 0.1,
    });
    const b = flight({
      frame: 3,
      samplesDone: 750,
      elapsedSeconds: 75,
      reportedSeconds: 75,
      secondsPerSample: 0.1,
    });
    const estimate = estimateJob({
      framesTotal: 10,
      framesFinished: 2,
      frameSeconds: [],
      inFlight: [a, b],
      parallel: 2,
    });
    t.equal(estimate.inFlightFraction, 1, '¼ + ¾ of a frame');
    t.same(estimate.live, { frame: 3, samplesDone: 750, samplesTotal: 1000, rendering: 2 });
    // Left: 75 s and 25 s in flight, 6 unstarted frames of 100 s each, over 2 lanes.
    t.equal(estimate.etaSeconds, (75 + 25 + 600) / 2);
    const single = estimateJob({
      framesTotal: 2,
      framesFinished: 0,
      frameSeconds: [],
      inFlight: [a, b],
      parallel: 8,
    });
    t.equal(single.etaSeconds, 75, 'never shorter than the longest frame in flight');
  },
);

t.test('a frame with no samples yet takes the typical frame time', async (t) => {
  const starting = flight({ frame: 4, samplesTotal: 0, elapsedSeconds: 5 });
  const estimate = estimateJob({
    framesTotal: 3,
    framesFinished: 2,
    frameSeconds: [40, 60],
    inFlight: [starting],
    parallel: 1,
  });
  t.equal(estimate.etaSeconds, 45);
  t.equal(estimate.inFlightFraction, 0);
  t.same(estimate.live, { frame: 4, samplesDone: 0, samplesTotal: 0, rendering: 1 });
  const unknown = estimateJob({
    framesTotal: 3,
    framesFinished: 0,
    frameSeconds: [],
    inFlight: [starting],
    parallel: 1,
  });
  t.equal(unknown.etaSeconds, null, 'nothing to go by');
  const none = estimateJob({
    framesTotal: 3,
    framesFinished: 1,
    frameSeconds: [30],
    inFlight: [],
    parallel: 0,
  });
  t.equal(none.etaSeconds, 60, 'between frames: the finished frames’ mean');
  t.equal(none.live, undefined);
});
