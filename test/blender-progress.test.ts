// The Blender log parser, against real logs captured from Debian's Blender 3.4.1 (Cycles and Eevee,
// render_chunk.py and plain `-a`/`-f`, a failing frame, a script error, a crash) in
// test/fixtures/blender-logs/, and against the line formats Blender 4.x prints.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBlenderLine, parseBlenderTimecode, type BlenderEvent } from '../daemon/src/render/progress.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'blender-logs');

function parseLog(name: string): BlenderEvent[] {
  return readFileSync(path.join(fixtures, name), 'utf8')
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

t.test('Cycles chunk: markers, status lines and samples', async (t) => {
  const events = parseLog('cycles-chunk.log');
  t.same(ofType(events, 'version'), [{ type: 'version', version: [3, 4, 1] }]);
  t.same(
    ofType(events, 'frameStart').map((event) => event.frame),
    [1, 2],
  );
  const done = ofType(events, 'frameDone');
  t.same(
    done.map((event) => [event.frame, event.path]),
    [
      [1, '/tmp/skyfarm-job/output/frame_0001.png'],
      [2, '/tmp/skyfarm-job/output/frame_0002.png'],
    ],
  );
  t.ok(
    done.every((event) => event.seconds > 0 && event.seconds < 60),
    'seconds parsed',
  );
  const samples = ofType(events, 'samples');
  t.ok(samples.length >= 4, 'sample lines found');
  t.ok(
    samples.every((event) => event.engine === 'cycles' && event.total === 4),
    'Cycles, 4 samples',
  );
  t.same(
    samples.filter((event) => event.done === event.total).map((event) => event.frame),
    [1, 2],
    'each frame reaches its last sample',
  );
  const frames = ofType(events, 'frame');
  t.ok(frames.length > 30, 'status lines parsed');
  t.same([...new Set(frames.map((event) => event.frame))], [1, 2]);
  t.ok(
    frames.some((event) => event.status === 'Scene, ViewLayer | Synchronizing object | Cube'),
    'Cycles status keeps its fields',
  );
  t.ok(
    frames.some((event) => event.status === 'Scene, ViewLayer | Finished'),
    'Finished status',
  );
  t.ok(
    frames.every((event) => typeof event.elapsedSeconds === 'number'),
    'elapsed time on every status line',
  );
  t.same(ofType(events, 'quit'), [{ type: 'quit' }]);
  t.same(ofType(events, 'error'), [], 'no errors in a clean run');
});

t.test('rerun of a finished chunk: every frame skipped', async (t) => {
  const events = parseLog('cycles-chunk-rerun.log');
  t.same(ofType(events, 'frameSkipped'), [
    { type: 'frameSkipped', frame: 1, path: '/tmp/skyfarm-job/output/frame_0001.png' },
    { type: 'frameSkipped', frame: 2, path: '/tmp/skyfarm-job/output/frame_0002.png' },
  ]);
  t.same(ofType(events, 'samples'), [], 'nothing rendered');
});

t.test('Eevee chunk: "Rendering n / m samples" and EGL noise', async (t) => {
  const events = parseLog('eevee-chunk.log');
  const samples = ofType(events, 'samples');
  t.same(
    samples.map((event) => [event.frame, event.done, event.total, event.engine]),
    [
      [1, 1, 4, 'eevee'],
      [1, 4, 4, 'eevee'],
      [2, 1, 4, 'eevee'],
      [2, 4, 4, 'eevee'],
    ],
  );
  t.ok(
    ofType(events, 'frame').some((event) => event.status === 'Syncing Cube'),
    'Eevee status',
  );
  t.same(
    ofType(events, 'frameDone').map((event) => event.frame),
    [1, 2],
  );
  t.same(ofType(events, 'error'), [], 'EGL fallback messages are not errors');
});

t.test('failing first frame: Blender error, traceback, marker', async (t) => {
  const events = parseLog('failing-first-frame.log');
  t.same(ofType(events, 'frameFailed'), [
    { type: 'frameFailed', frame: 1, message: 'Error: Cannot render, no camera' },
  ]);
  t.same(ofType(events, 'error'), [
    { type: 'error', source: 'blender', message: 'Cannot render, no camera' },
    { type: 'error', source: 'python', message: 'RuntimeError: Error: Cannot render, no camera' },
  ]);
  t.equal(ofType(events, 'traceback').length, 1);
  t.same(
    ofType(events, 'frameDone').map((event) => event.frame),
    [2, 3],
  );
  const order = events
    .filter((event) => event.type.startsWith('frame') && event.type !== 'frame')
    .map((event) => event.type);
  t.same(order, ['frameStart', 'frameFailed', 'frameStart', 'frameDone', 'frameStart', 'frameDone']);
});

t.test('plain `blender -a` / `-f`: Saved and Time lines', async (t) => {
  const events = parseLog('cycles-animation.log');
  t.same(ofType(events, 'saved'), [
    { type: 'saved', path: '/tmp/skyfarm-job/anim/frame_0001.png' },
    { type: 'saved', path: '/tmp/skyfarm-job/anim/frame_0002.png' },
  ]);
  t.same(ofType(events, 'time'), [
    { type: 'time', seconds: 0.37, savingSeconds: 0.29 },
    { type: 'time', seconds: 0.03, savingSeconds: 0 },
  ]);
  const eevee = parseLog('eevee-frame.log');
  t.same(ofType(eevee, 'saved'), [{ type: 'saved', path: '/tmp/skyfarm-job/anim-eevee/frame_0001.png' }]);
  t.same(ofType(eevee, 'time'), [{ type: 'time', seconds: 3.2, savingSeconds: 0.3 }]);
  // Plain -a stops the whole animation at the first frame without a camera.
  const noCamera = parseLog('no-camera-animation.log');
  t.same(ofType(noCamera, 'error'), [
    { type: 'error', source: 'blender', message: 'Cannot render, no camera' },
  ]);
  t.same(ofType(noCamera, 'saved'), []);
});

t.test('probe line carries the JSON', async (t) => {
  const [probe] = ofType(parseLog('probe.log'), 'probe');
  t.ok(probe, 'probe event');
  const data = probe!.data as { blenderVersion: number[]; scenes: string[]; scene: { frameEnd: number } };
  t.same(data.blenderVersion, [3, 4, 1]);
  t.same(data.scenes, ['Scene']);
  t.equal(data.scene.frameEnd, 2);
  t.equal(parseBlenderLine('SKYFARM_PROBE {not json'), null, 'a broken probe line is no event');
});

t.test('script error: traceback, exception line, "script failed"', async (t) => {
  const events = parseLog('script-error.log');
  t.equal(ofType(events, 'traceback').length, 1, 'Blender prefixes it with "Error: Python: "');
  const errors = ofType(events, 'error').map((event) => `${event.source}: ${event.message}`);
  t.same(errors, [
    'python: json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)',
    "blender: script failed, file: '/work/main/daemon/blender/render_chunk.py', exiting.",
  ]);
});

t.test('crash: the crash report path', async (t) => {
  const events = parseLog('crash.log');
  t.same(ofType(events, 'crash'), [{ type: 'crash', reportPath: '/tmp/cycles.crash.txt' }]);
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
    t.same(parseBlenderLine('Warning: 1 libraries and 1 linked data-blocks are missing'), {
      type: 'warning',
      message: '1 libraries and 1 linked data-blocks are missing',
    });
    t.same(parseBlenderLine('Error: Cannot read file "/x.blend": No such file or directory\r'), {
      type: 'error',
      source: 'blender',
      message: 'Cannot read file "/x.blend": No such file or directory',
    });
    t.same(parseBlenderLine('Traceback (most recent call last):'), { type: 'traceback' });
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
  for (const line of [
    '',
    'Read blend: /tmp/scene.blend',
    'Blender quit now',
    'Managed to successfully fallback to surfaceless EGL rendering!',
    "Info: Saved 'x.blend'",
    '  File "/x.py", line 1, in <module>',
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
