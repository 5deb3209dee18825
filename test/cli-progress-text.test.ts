// How the CLI writes progress inside a frame: "frame 12: 340/1024 samples · ETA 41 min 10 s" in the
// TTY bar and the plain --wait lines (a frame's first samples at once, later samples and ETA changes
// at most every 10 s on the injected clock, so a long frame does not flood a log), and `skyfarm
// status`'s progress line.
import t from 'tap';
import type { Job } from '../protocol/generated/protocol.js';
import { formatEta, liveAndEta, progressBar, ProgressPrinter } from '../daemon/src/cli/progress.js';
import { describeJob } from '../daemon/src/cli/commands.js';

function job(fields: Partial<Job> = {}): Job {
  return {
    id: 'j_1',
    name: 'shot',
    state: 'rendering',
    backend: 'local',
    blendFile: '/p/shot.blend',
    scene: 'Scene',
    frames: '1-20',
    output: '/p/render',
    createdAt: '2026-11-27T07:00:00.000Z',
    updatedAt: '2026-11-27T07:00:05.000Z',
    stages: { upload: 'done', copy: 'done', render: 'running', publish: 'pending' },
    framesTotal: 20,
    framesDone: 11,
    framesFailed: 0,
    failedFrames: [],
    progress: (11 + 340 / 1024) / 20,
    etaSeconds: 2470,
    message: 'rendering frame 12',
    lastFrame: null,
    live: { frame: 12, samplesDone: 340, samplesTotal: 1024, rendering: 1 },
    ...fields,
  };
}

/** A stream stand-in that records what is written. */
function stream(isTTY: boolean) {
  const written: string[] = [];
  return {
    written,
    stream: {
      isTTY,
      columns: 200,
      write: (text: string) => written.push(text),
    } as unknown as NodeJS.WriteStream,
  };
}

t.test('the words', async (t) => {
  t.equal(formatEta(35.4), '35 s');
  t.equal(formatEta(2470), '41 min 10 s');
  t.equal(formatEta(7389), '2 h 03 min');
  t.equal(liveAndEta(job()), 'frame 12: 340/1024 samples · ETA 41 min 10 s');
  t.equal(
    liveAndEta(job({ live: { frame: 3, samplesDone: 0, samplesTotal: 0, rendering: 4 }, etaSeconds: null })),
    'frame 3: starting (4 frames rendering)',
  );
  const { live: _live, ...between } = job();
  t.equal(liveAndEta(between), 'ETA 41 min 10 s', 'between frames: the ETA alone');
  t.equal(liveAndEta({ ...between, etaSeconds: null }), null);
  t.match(
    progressBar(job()),
    /^\[#+-+\] 56% 11\/20 frames · frame 12: 340\/1024 samples · ETA 41 min 10 s {2}rendering: /,
  );
  t.match(describeJob(job()), /\n {2}progress {2}56% · frame 12: 340\/1024 samples · ETA 41 min 10 s$/);
  t.notMatch(describeJob(job({ state: 'done', progress: 1 })), /progress/, 'no progress line once done');
});

t.test('plain lines: new samples and ETA at most every 10 s, a frame’s first samples at once', async (t) => {
  let clock = 0;
  const out = stream(false);
  const printer = new ProgressPrinter(out.stream, { now: () => clock });
  const starting = job({
    live: { frame: 12, samplesDone: 0, samplesTotal: 0, rendering: 1 },
    etaSeconds: null,
  });
  printer.update(starting);
  clock += 500;
  printer.update(job({ live: { frame: 12, samplesDone: 1, samplesTotal: 1024, rendering: 1 } }));
  t.equal(out.written.length, 2, 'the first samples of a frame: printed at once');
  t.match(
    out.written[1],
    /^j_1 rendering 11\/20 frames — rendering frame 12 · frame 12: 1\/1024 samples · ETA /,
  );
  for (let i = 0; i < 9; i++) {
    clock += 1000;
    printer.update(job({ etaSeconds: 2470 - i }));
  }
  t.equal(out.written.length, 2, 'ETA and samples changing every second: nothing for 9.5 s');
  clock += 1000;
  printer.update(job({ etaSeconds: 2400 }));
  t.equal(out.written.length, 3, 'then one line');
  clock += 100;
  printer.update(job({ framesDone: 12, message: 'frame 12 done', live: undefined }));
  t.equal(out.written.length, 4, 'a frame done: at once');
  printer.update(job({ framesDone: 12, message: 'frame 12 done', live: undefined }));
  t.equal(out.written.length, 4, 'the same line is not printed twice');
});

t.test('TTY: the bar is redrawn in place with the samples', async (t) => {
  const out = stream(true);
  const printer = new ProgressPrinter(out.stream);
  printer.update(job());
  printer.update(job({ live: { frame: 12, samplesDone: 512, samplesTotal: 1024, rendering: 1 } }));
  printer.finish();
  t.equal(out.written.length, 3);
  t.match(out.written[1], /^\r\[.*frame 12: 512\/1024 samples/);
  t.equal(out.written[2], '\n');
});
