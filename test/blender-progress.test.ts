// The Blender log parser against real logs captured from each supported Blender (Debian's 3.4.1,
// 4.3.2 and 5.2.2 LTS: test/fixtures/blender-logs/<version>/, made by render_chunk.py with the flags
// the daemon passes, and by plain `-a`/`-f`): Cycles and Eevee, a failing frame, a script error, a
// missing or broken .blend, a missing library, a crash. 5.x prints most of it in a new log format
// (`00:00.425  render           | Fra: 1 | … | Sample 1/4`, `… reports | ERROR …`); the same run must
// give the same events in every version.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  blenderErrorText,
  parseBlenderLine,
  parseBlenderTimecode,
  type BlenderEvent,
} from '../daemon/src/render/progress.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'blender-logs');

const VERSIONS = [
  { dir: '3.4', version: [3, 4, 1], cyclesStatus: 'Scene, ViewLayer | ', timed: true },
  { dir: '4.3', version: [4, 3, 2], cyclesStatus: 'Scene, ViewLayer | ', timed: true },
  // 5.x status lines name neither the scene nor the time since the frame started.
  { dir: '5.2', version: [5, 2, 2], cyclesStatus: '', timed: false },
] as const;

function parseLog(dir: string, name: string): BlenderEvent[] {
  return readFileSync(path.join(fixtures, dir, name), 'utf8')
    .split('\n')
    .map(parseBlenderLine)
    .filter((event): event is BlenderEvent => event !== null);
}

function ofType<K extends BlenderEvent['type']>(
  events: BlenderEvent[],
  type: K,
): Array<Extract<BlenderEvent, { type: K }>> {
  return events.filter((event): event is Extract<BlenderEvent, { type: K }> => event.type === type);
}

/** The render_chunk.py markers, in order (what the daemon's frame bookkeeping runs on). */
function markers(events: BlenderEvent[]): string[] {
  return events.flatMap((event) => {
    switch (event.type) {
      case 'frameStart':
        return [`start ${event.frame}`];
      case 'frameDone':
        return [`done ${event.frame}`];
      case 'frameSkipped':
        return [`skipped ${event.frame}`];
      case 'frameFailed':
        return [`failed ${event.frame}: ${event.message}`];
      default:
        return [];
    }
  });
}

const errorTexts = (events: BlenderEvent[]) =>
  ofType(events, 'error').map((event) => `${event.source}: ${event.message}`);

for (const v of VERSIONS) {
  const root = `/tmp/skyfarm-logs/${v.dir}`;

  t.test(`Blender ${v.dir}`, async (t) => {
    t.test('Cycles chunk: markers, status lines, every sample', async (t) => {
      const events = parseLog(v.dir, 'cycles-chunk.log');
      t.same(ofType(events, 'version'), [{ type: 'version', version: v.version }]);
      t.same(markers(events), ['start 1', 'done 1', 'start 2', 'done 2']);
      const done = ofType(events, 'frameDone');
      t.same(
        done.map((event) => event.path),
        [`${root}/output/frame_0001.png`, `${root}/output/frame_0002.png`],
      );
      t.ok(
        done.every((event) => event.seconds > 0 && event.seconds < 60),
        'seconds parsed',
      );
      const samples = ofType(events, 'samples');
      t.same(
        samples.map((event) => [event.frame, event.done, event.total, event.engine]),
        [1, 2].flatMap((frame) => [
          [frame, 0, 4, 'cycles'],
          [frame, 1, 4, 'cycles'],
          [frame, 4, 4, 'cycles'],
        ]),
        'Sample 0/4, 1/4, 4/4 of each frame',
      );
      const frames = ofType(events, 'frame');
      t.ok(frames.length > 60, 'status lines parsed');
      t.same([...new Set(frames.map((event) => event.frame))], [1, 2]);
      t.ok(
        frames.some((event) => event.status === `${v.cyclesStatus}Synchronizing object | Cube`),
        'Cycles status keeps its fields',
      );
      t.same(
        frames.filter((event) => event.status === `${v.cyclesStatus}Finished`).map((event) => event.frame),
        [1, 2],
        'each frame finishes',
      );
      t.ok(
        frames.every((event) => (typeof event.elapsedSeconds === 'number') === v.timed),
        v.timed ? 'elapsed time on every status line' : 'no elapsed time in 5.x status lines',
      );
      t.same(ofType(events, 'quit'), [{ type: 'quit' }]);
      t.same(ofType(events, 'error'), [], 'no errors in a clean run');
      t.same(ofType(events, 'warning'), [], 'no warnings either');
    });

    t.test('rerun of a finished chunk: every frame skipped', async (t) => {
      const events = parseLog(v.dir, 'cycles-chunk-rerun.log');
      t.same(ofType(events, 'frameSkipped'), [
        { type: 'frameSkipped', frame: 1, path: `${root}/output/frame_0001.png` },
        { type: 'frameSkipped', frame: 2, path: `${root}/output/frame_0002.png` },
      ]);
      t.same(ofType(events, 'samples'), [], 'nothing rendered');
    });

    t.test('Eevee chunk: "Rendering n / m samples", EGL noise is no error', async (t) => {
      const events = parseLog(v.dir, 'eevee-chunk.log');
      t.same(
        ofType(events, 'samples').map((event) => [event.frame, event.done, event.total, event.engine]),
        [
          [1, 1, 4, 'eevee'],
          [1, 4, 4, 'eevee'],
          [2, 1, 4, 'eevee'],
          [2, 4, 4, 'eevee'],
        ],
      );
      t.same(markers(events), ['start 1', 'done 1', 'start 2', 'done 2']);
      t.same(ofType(events, 'error'), []);
    });

    t.test('a frame without a camera: its error, the traceback, the marker; the rest render', async (t) => {
      const events = parseLog(v.dir, 'failing-first-frame.log');
      t.same(markers(events), [
        'start 1',
        'failed 1: Error: Cannot render, no camera',
        'start 2',
        'done 2',
        'start 3',
        'done 3',
      ]);
      t.same(errorTexts(events).sort(), [
        'blender: Cannot render, no camera',
        'python: RuntimeError: Error: Cannot render, no camera',
      ]);
      t.equal(ofType(events, 'traceback').length, 1);
      t.same(
        [...new Set(ofType(events, 'samples').map((event) => event.frame))],
        [2, 3],
        'samples of the frames that render',
      );
    });

    t.test('plain `blender -a` / `-f`: Saved and Time lines, the no-camera error', async (t) => {
      const events = parseLog(v.dir, 'cycles-animation.log');
      t.same(ofType(events, 'saved'), [
        { type: 'saved', path: `${root}/anim/frame_0001.png` },
        { type: 'saved', path: `${root}/anim/frame_0002.png` },
      ]);
      const times = ofType(events, 'time');
      t.equal(times.length, 2);
      t.ok(
        times.every((time) => time.savingSeconds !== null && time.seconds >= time.savingSeconds),
        'frame time and saving time',
      );
      t.same(
        [...new Set(ofType(events, 'samples').map((event) => event.frame))],
        [1, 2],
        '-a prints sample lines in every version',
      );
      const eevee = parseLog(v.dir, 'eevee-frame.log');
      t.same(ofType(eevee, 'saved'), [{ type: 'saved', path: `${root}/anim-eevee/frame_0001.png` }]);
      t.equal(ofType(eevee, 'time').length, 1);
      // Plain -a stops the whole animation at the first frame without a camera.
      const noCamera = parseLog(v.dir, 'no-camera-animation.log');
      t.same(errorTexts(noCamera), ['blender: Cannot render, no camera']);
      t.same(ofType(noCamera, 'saved'), []);
    });

    t.test('a missing or broken .blend: Blender says why', async (t) => {
      const missing = errorTexts(parseLog(v.dir, 'missing-blend.log'));
      t.equal(missing.length, 1);
      t.match(missing[0], /^blender: Cannot read file .*\/nonexistent\.blend.: No such file or directory$/);
      t.same(errorTexts(parseLog(v.dir, 'broken-blend.log')), [
        `blender: Failed to read blend file '${root}/broken.blend': Missing DNA block`,
      ]);
    });

    t.test('a missing library: warnings, no error; the frame renders', async (t) => {
      const events = parseLog(v.dir, 'missing-library.log');
      const warnings = ofType(events, 'warning').map((event) => event.message);
      t.equal(warnings.length, 2);
      t.equal(warnings[0], `Unable to open '${root}/lib/lib.blend': No such file or directory`);
      t.match(warnings[1], /^1 libraries and 1 linked data-blocks are missing/);
      t.same(ofType(events, 'error'), []);
      t.same(markers(events), ['start 1', 'done 1']);
    });

    t.test('script error: traceback, exception line, "script failed"', async (t) => {
      const events = parseLog(v.dir, 'script-error.log');
      t.equal(ofType(events, 'traceback').length, 1);
      t.same(errorTexts(events), [
        'python: json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)',
        "blender: script failed, file: '/work/main/daemon/blender/render_chunk.py', exiting.",
      ]);
    });

    t.test('probe line carries the JSON', async (t) => {
      const [probe] = ofType(parseLog(v.dir, 'probe.log'), 'probe');
      t.ok(probe, 'probe event');
      const data = probe!.data as { blenderVersion: number[]; scenes: string[]; scene: { frameEnd: number } };
      t.same(data.blenderVersion, v.version);
      t.same(data.scenes, ['Scene']);
      t.equal(data.scene.frameEnd, 2);
    });

    t.test('crash: the crash report path', async (t) => {
      t.same(ofType(parseLog(v.dir, 'crash.log'), 'crash'), [
        { type: 'crash', reportPath: '/tmp/cycles.crash.txt' },
      ]);
    });
  });
}

t.test('5.x log lines: levels, hours, memory column, negative frames', async (t) => {
  t.same(
    parseBlenderLine('00:00.425  render           | Fra: 1 | Remaining: 00:01.50 | Mem: 4M | Sample 1/32'),
    {
      type: 'samples',
      frame: 1,
      done: 1,
      total: 32,
      engine: 'cycles',
    },
  );
  t.same(
    parseBlenderLine('01:02:03.456  render           | Fra: -3 | Mem: 1M | Updating Scene BVH | Building'),
    {
      type: 'frame',
      frame: -3,
      elapsedSeconds: null,
      status: 'Updating Scene BVH | Building',
    },
  );
  t.same(parseBlenderLine('00:08.523  12M    render           | Fra: 250 | Rendering 16 / 64 samples'), {
    type: 'samples',
    frame: 250,
    done: 16,
    total: 64,
    engine: 'eevee',
  });
  t.same(parseBlenderLine('00:00.359  reports          | ERROR Failed to read blend file'), {
    type: 'error',
    source: 'blender',
    message: 'Failed to read blend file',
  });
  t.same(parseBlenderLine('00:02.000  gpu.shader       | FATAL Shader compilation failed'), {
    type: 'error',
    source: 'blender',
    message: 'Shader compilation failed',
  });
  t.same(parseBlenderLine('00:00.359  reports          | ERROR Python: Traceback (most recent call last):'), {
    type: 'traceback',
  });
  t.same(parseBlenderLine('00:01.327  a.very_long_category_name | WARNING 1 libraries are missing\r'), {
    type: 'warning',
    message: '1 libraries are missing',
  });
  for (const line of [
    "00:01.327  reports          | Cannot find lib '/x/lib.blend'",
    '00:01.119  render           | Rendering animation (frames 1..2)',
    '00:01.191  render           | Engine: Cycles',
    '00:00.899  blend            | Read blend: "/tmp/scene.blend"',
  ]) {
    t.equal(parseBlenderLine(line), null, `INFO carries nothing: ${line}`);
  }
});

t.test('an error as one line for failure messages, whatever the version printed', async (t) => {
  const texts = [
    'Error: Cannot render, no camera',
    '00:01.132  reports          | ERROR Cannot render, no camera',
  ].map((line) => {
    const event = parseBlenderLine(line);
    return event?.type === 'error' ? blenderErrorText(event) : null;
  });
  t.same(texts, ['Error: Cannot render, no camera', 'Error: Cannot render, no camera']);
  const python = parseBlenderLine('RuntimeError: Error: Cannot render, no camera');
  t.equal(
    python?.type === 'error' && blenderErrorText(python),
    'RuntimeError: Error: Cannot render, no camera',
  );
});

t.test(
  'Blender 4.x line formats (same printf formats as 3.4 in pipeline.cc / eevee_instance.cc)',
  async (t) => {
    t.same(parseBlenderLine('Blender 4.2.3 LTS (hash 2ad2d7b2ad55 built 2024-10-15 23:28:45)'), {
      type: 'version',
      version: [4, 2, 3],
    });
    t.same(parseBlenderLine('Blender 4.1'), { type: 'version', version: [4, 1, 0] });
    t.same(parseBlenderLine('Fra:12 Mem:25.67M (Peak 26.20M) | Time:00:00.31 | Rendering 1 / 64 samples'), {
      type: 'samples',
      frame: 12,
      done: 1,
      total: 64,
      engine: 'eevee',
    });
    t.same(
      parseBlenderLine(
        'Fra:250 Mem:166.92M (Peak 318.39M) | Time:01:02:03.45 | Remaining:00:10.00 | Mem:80.00M, Peak:90.00M | ' +
          'Scene, ViewLayer | Sample 512/4096',
      ),
      { type: 'samples', frame: 250, done: 512, total: 4096, engine: 'cycles' },
    );
    t.same(
      parseBlenderLine(
        'Fra:-3 Mem:16.00M (Peak 18.00M) | Time:01:02:03.45 | Mem:1.00M, Peak:1.00M | Scene, ViewLayer | Finished',
      ),
      { type: 'frame', frame: -3, elapsedSeconds: 3723.45, status: 'Scene, ViewLayer | Finished' },
    );
    t.same(parseBlenderLine("Saved: '/render/it''s here/frame_0001.exr'"), {
      type: 'saved',
      path: "/render/it''s here/frame_0001.exr",
    });
    t.same(parseBlenderLine(' Time: 01:00:00.50 (Saving: 00:02.00)'), {
      type: 'time',
      seconds: 3600.5,
      savingSeconds: 2,
    });
    t.same(parseBlenderLine(' Time: 00:04.20'), { type: 'time', seconds: 4.2, savingSeconds: null });
    t.same(parseBlenderLine('Error: Cannot read file "/x.blend": No such file or directory\r'), {
      type: 'error',
      source: 'blender',
      message: 'Cannot read file "/x.blend": No such file or directory',
    });
    t.same(parseBlenderLine('Traceback (most recent call last):'), { type: 'traceback' });
    t.same(parseBlenderLine('Error: Python: Traceback (most recent call last):'), { type: 'traceback' });
    t.same(parseBlenderLine('/tmp/script.py:19: UserWarning: a python warning'), {
      type: 'warning',
      message: 'UserWarning: a python warning',
    });
  },
);

t.test('markers and lines that carry nothing', async (t) => {
  t.same(parseBlenderLine('SKYFARM_FRAME_START -4'), { type: 'frameStart', frame: -4 });
  t.same(parseBlenderLine('SKYFARM_FRAME_DONE 12 3.250 /out/with space/frame_0012.png'), {
    type: 'frameDone',
    frame: 12,
    seconds: 3.25,
    path: '/out/with space/frame_0012.png',
  });
  t.same(parseBlenderLine('SKYFARM_FRAME_FAILED 3 Error: Cannot render, no camera'), {
    type: 'frameFailed',
    frame: 3,
    message: 'Error: Cannot render, no camera',
  });
  t.same(parseBlenderLine('SKYFARM_FRAME_FAILED 3'), {
    type: 'frameFailed',
    frame: 3,
    message: 'unknown error',
  });
  t.equal(parseBlenderLine('SKYFARM_FRAME_DONE x'), null);
  t.equal(parseBlenderLine('SKYFARM_FRAME_SKIPPED 3'), null, 'a skipped frame names its file');
  t.equal(parseBlenderLine('SKYFARM_PROBE {not json'), null, 'a broken probe line is no event');
  for (const line of [
    '',
    'Read blend: /tmp/scene.blend',
    'Blender quit now',
    'Managed to successfully fallback to surfaceless EGL rendering!',
    "Info: Saved 'x.blend'",
    '  File "/x.py", line 1, in <module>',
    'a | b',
    'render | ERROR not a log line without its time',
  ]) {
    t.equal(parseBlenderLine(line), null, JSON.stringify(line));
  }
  t.same(parseBlenderLine('Blender quit'), { type: 'quit' });
});

t.test('parseBlenderTimecode', async (t) => {
  t.equal(parseBlenderTimecode('00:01.23'), 1.23);
  t.equal(parseBlenderTimecode('02:00:01.5'), 7201.5);
  t.equal(parseBlenderTimecode('12.5'), 12.5);
  t.equal(parseBlenderTimecode('a:b'), null);
  t.equal(parseBlenderTimecode('1:2:3:4'), null);
});
