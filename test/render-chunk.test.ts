// renderChunk with real Blender: frames land as valid PNGs, a rerun skips them, one failing frame
// fails alone, remapped dependencies are used, and abort or a crash leave no Blender behind.
import t from 'tap';
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { isSkyfarmError } from '../daemon/src/errors.js';
import {
  findBlender,
  PARTIAL_FRAME_PREFIX,
  renderChunk,
  type RenderChunkOptions,
} from '../daemon/src/render/blender.js';
import type { BlenderEvent } from '../daemon/src/render/progress.js';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';

/** Pids of live processes whose command line contains `needle` (here: the test's unique folder). */
async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`)).toString('utf8');
      const state = /^State:\s+(\w)/m.exec(await readFile(`/proc/${entry}/status`, 'utf8'))?.[1];
      if (cmdline.includes(needle) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

function recorder() {
  const events: BlenderEvent[] = [];
  const lines: string[] = [];
  return {
    events,
    lines,
    onEvent: (event: BlenderEvent) => events.push(event),
    onLine: (line: string) => lines.push(line),
  };
}

t.test('renderChunk with real Blender', { skip: blenderSkip }, async (t) => {
  const blender = (await findBlender()).path;

  t.test('renders frames to valid PNGs, then a rerun skips them all', async (t) => {
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { frames: [1, 3] });
    const outputDir = path.join(dir, 'out frames');
    const options: Omit<RenderChunkOptions, 'onEvent'> = {
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2, 3],
      outputDir,
      filePattern: 'frame_####',
    };
    const first = recorder();
    const result = await renderChunk({ ...options, ...first });
    t.same(result, { exitCode: 0, signal: null, done: [1, 2, 3], skipped: [], failed: [] });
    const files = [1, 2, 3].map((frame) => path.join(outputDir, `frame_000${frame}.png`));
    t.same(
      (await readdir(outputDir)).sort(),
      files.map((file) => path.basename(file)),
      'no temporary files left',
    );
    const pngs = await Promise.all(files.map(readPng));
    for (const png of pngs) t.match(png, { width: 64, height: 36, bitDepth: 8 });
    t.notOk(pngs[0]!.pixels.equals(pngs[2]!.pixels), 'the cube turns: frame 1 and 3 differ');
    t.same(
      first.events
        .filter((event) => event.type === 'frameDone')
        .map((event) => event.type === 'frameDone' && event.path),
      files,
      'frameDone names the final files',
    );
    // 5.x prints these only with `--log render` (renderLogArgs): every version must stream them.
    t.same(
      first.events.flatMap((event) =>
        event.type === 'samples' && event.done === event.total ? [[event.frame, event.total]] : [],
      ),
      [
        [1, 4],
        [2, 4],
        [3, 4],
      ],
      'sample progress streamed: every frame reaches its 4th sample',
    );
    t.ok(first.lines.length > 20, 'raw lines streamed');

    const mtimes = await Promise.all(files.map(async (file) => (await stat(file)).mtimeMs));
    const second = recorder();
    const rerun = await renderChunk({ ...options, ...second });
    t.same(rerun, { exitCode: 0, signal: null, done: [], skipped: [1, 2, 3], failed: [] });
    t.same(
      second.events.filter((event) => event.type === 'samples'),
      [],
      'nothing rendered again',
    );
    t.same(
      await Promise.all(files.map(async (file) => (await stat(file)).mtimeMs)),
      mtimes,
      'files untouched',
    );
  });

  t.test('an empty leftover file is not a finished frame; stale partial frames are removed', async (t) => {
    const stale = `${PARTIAL_FRAME_PREFIX}999999-frame_0002.png`;
    const dir = t.testdir({ out: { 'frame_0001.png': '', [stale]: 'half a PNG' } });
    const blendFile = await makeScene(dir, { frames: [1, 2] });
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2],
      outputDir: path.join(dir, 'out'),
      filePattern: 'frame_####',
      onEvent: () => {},
    });
    t.same(result.done, [1, 2]);
    t.match(await readPng(path.join(dir, 'out', 'frame_0001.png')), { width: 64, height: 36 });
    t.same((await readdir(path.join(dir, 'out'))).sort(), ['frame_0001.png', 'frame_0002.png']);
  });

  t.test('a frame without a camera fails alone; the others render; exit code 1', async (t) => {
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { frames: [1, 3], failFirstFrame: true });
    const outputDir = path.join(dir, 'out');
    const events = recorder();
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2, 3],
      outputDir,
      filePattern: 'shot_##',
      ...events,
    });
    t.equal(result.exitCode, 1);
    t.equal(result.signal, null);
    t.same(result.done, [2, 3]);
    t.same(result.skipped, []);
    t.same(result.failed, [{ frame: 1, message: 'Error: Cannot render, no camera' }]);
    t.same((await readdir(outputDir)).sort(), ['shot_02.png', 'shot_03.png'], 'no file for the failed frame');
    t.ok(
      events.events.some((event) => event.type === 'error' && event.message.includes('no camera')),
      "Blender's error line streamed",
    );

    // Retrying the chunk renders only what is missing, and the failure is deterministic.
    const retry = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2, 3],
      outputDir,
      filePattern: 'shot_##',
      onEvent: () => {},
    });
    t.same(retry.skipped, [2, 3]);
    t.same(retry.failed, [{ frame: 1, message: 'Error: Cannot render, no camera' }]);
    t.equal(retry.exitCode, 1);

    // Frame order does not matter: frame 1 after frame 3 fails the same way.
    const reversed = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [3, 1],
      outputDir: path.join(dir, 'reversed'),
      filePattern: 'shot_##',
      onEvent: () => {},
    });
    t.same(reversed.done, [3]);
    t.same(
      reversed.failed.map((failure) => failure.frame),
      [1],
    );
  });

  t.test('an unknown scene fails every frame with the scene list', async (t) => {
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { extraScenes: ['Other'] });
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Nope',
      frames: [1, 2],
      outputDir: path.join(dir, 'out'),
      filePattern: 'frame_####',
      onEvent: () => {},
    });
    t.equal(result.exitCode, 1);
    t.same(
      result.failed.map((failure) => failure.frame),
      [1, 2],
    );
    t.match(result.failed[0]!.message, /scene "Nope" not found; scenes: .*Other/);
  });

  t.test('remaps point moved dependencies (texture, linked library) at their new place', async (t) => {
    const dir = t.testdir({ project: {}, outside: {}, moved: {} });
    const texture = path.join(dir, 'outside', 'paint ü.png');
    const library = path.join(dir, 'outside', 'props.blend');
    const blendFile = await makeScene(path.join(dir, 'project'), {
      frames: [1, 1],
      textures: [{ path: texture, relative: false }],
      library,
    });
    const render = async (name: string, remaps?: Record<string, string>) => {
      const result = await renderChunk({
        blender,
        blendFile,
        scene: 'Scene',
        frames: [1],
        outputDir: path.join(dir, name),
        filePattern: 'frame_####',
        remaps,
        onEvent: () => {},
      });
      t.same(result.done, [1], `${name} rendered`);
      return (await readPng(path.join(dir, name, 'frame_0001.png'))).pixels;
    };
    const original = await render('original');
    await rename(texture, path.join(dir, 'moved', 'paint.png'));
    await rename(library, path.join(dir, 'moved', 'props.blend'));
    const withoutRemaps = await render('without');
    t.not(
      withoutRemaps.equals(original),
      true,
      'moved files change the picture (missing texture and object)',
    );
    // Enough entries to push the JSON past the inline limit: it then travels through a file.
    const filler = Object.fromEntries(
      Array.from({ length: 1500 }, (_, index) => [
        `/nowhere/${'x'.repeat(40)}/${index}.png`,
        `/elsewhere/${index}.png`,
      ]),
    );
    const remapped = await render('remapped', {
      ...filler,
      [texture]: path.join(dir, 'moved', 'paint.png'),
      [library]: path.join(dir, 'moved', 'props.blend'),
    });
    t.ok(remapped.equals(original), 'with remaps the picture is the original one');
  });

  t.test('an image strip whose folder moved is found through a folder remap', async (t) => {
    const dir = t.testdir({ project: {}, moved: {} });
    const plates = path.join(dir, 'plates ü');
    const blendFile = await makeScene(path.join(dir, 'project'), {
      frames: [1, 1],
      imageStrip: path.join(plates, 'plate 1.png'),
    });
    const render = async (name: string, remaps?: Record<string, string>) => {
      const { lines, ...events } = recorder();
      const result = await renderChunk({
        blender,
        blendFile,
        scene: 'Scene',
        frames: [1],
        outputDir: path.join(dir, name),
        filePattern: 'frame_####',
        remaps,
        ...events,
        onLine: (line) => lines.push(line),
      });
      t.same(result.done, [1], `${name} rendered`);
      return { pixels: (await readPng(path.join(dir, name, 'frame_0001.png'))).pixels, lines };
    };
    const original = await render('original');
    const moved = path.join(dir, 'moved', 'plates');
    await rename(plates, moved);
    const without = await render('without');
    t.notOk(without.pixels.equals(original.pixels), 'without its image the strip renders differently');
    const remapped = await render('remapped', { [plates]: moved });
    t.ok(remapped.pixels.equals(original.pixels), 'with the remap the picture is the original one');
    t.ok(
      remapped.lines.some(
        (line) => line.startsWith(`SKYFARM_REMAP ${plates}`) && line.endsWith(`-> ${moved}/`),
      ),
      'the strip folder remap is logged',
    );
  });

  t.test('abort kills Blender and everything it started', async (t) => {
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { frames: [1, 3], samples: 1_000_000 });
    const controller = new AbortController();
    let abortedAt = 0;
    const started = Date.now();
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2, 3],
      outputDir: path.join(dir, 'out'),
      filePattern: 'frame_####',
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'samples' && !controller.signal.aborted) {
          abortedAt = Date.now();
          controller.abort();
        }
      },
    });
    t.ok(abortedAt > 0, 'rendering had started');
    t.ok(result.signal === 'SIGTERM' || result.signal === 'SIGKILL', `ended by ${result.signal}`);
    t.same(result.done, []);
    t.same(
      result.failed,
      [1, 2, 3].map((frame) => ({ frame, message: 'render canceled' })),
    );
    t.same(await processesMentioning(dir), [], 'no Blender process remains');
    t.same(
      existsSync(path.join(dir, 'out')) ? await readdir(path.join(dir, 'out')) : [],
      [],
      'no partial frame',
    );
    t.comment(`stopped ${Date.now() - abortedAt} ms after abort (${Date.now() - started} ms in all)`);

    const early = new AbortController();
    early.abort();
    const never = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, 'early'),
      filePattern: 'frame_####',
      signal: early.signal,
      onEvent: () => {},
    });
    t.same(
      never.failed,
      [{ frame: 1, message: 'render canceled' }],
      'an already aborted signal renders nothing',
    );
  });

  t.test('a Blender that dies mid-frame fails the unfinished frames with what it said', async (t) => {
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { frames: [1, 3], samples: 1_000_000 });
    let killStarted = false;
    let killed: number[] = [];
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2, 3],
      outputDir: path.join(dir, 'out'),
      filePattern: 'frame_####',
      onEvent: (event) => {
        if (event.type === 'samples' && !killStarted) {
          killStarted = true;
          void processesMentioning(dir).then((pids) => {
            killed = pids;
            for (const pid of pids) process.kill(pid, 'SIGKILL');
          });
        }
      },
    });
    t.equal(killed.length, 1, `killed Blender (pid ${killed})`);
    t.equal(result.signal, 'SIGKILL');
    t.equal(result.exitCode, null);
    t.same(
      result.failed.map((failure) => failure.frame),
      [1, 2, 3],
    );
    t.match(result.failed[0]!.message, /^Blender was killed by SIGKILL before finishing this frame/);
    t.same(await processesMentioning(dir), []);
  });

  t.test('bad arguments are refused before Blender starts', async (t) => {
    for (const filePattern of ['', '../frame_####', 'sub/frame_####', '..']) {
      const error = await renderChunk({
        blender,
        blendFile: '/nonexistent.blend',
        scene: 'Scene',
        frames: [1],
        outputDir: t.testdir(),
        filePattern,
        onEvent: () => {},
      }).catch((caught: unknown) => caught);
      t.ok(
        isSkyfarmError(error) && error.code === 'BAD_ARGUMENT',
        `file pattern ${JSON.stringify(filePattern)}`,
      );
    }
    const noFrames = await renderChunk({
      blender,
      blendFile: '/nonexistent.blend',
      scene: 'Scene',
      frames: [],
      outputDir: t.testdir(),
      filePattern: 'f_####',
      onEvent: () => {},
    }).catch((caught: unknown) => caught);
    t.ok(isSkyfarmError(noFrames) && noFrames.code === 'BAD_ARGUMENT', 'no frames');
  });

  t.test('a .blend Blender cannot open fails every frame with its error', async (t) => {
    const dir = t.testdir({ 'broken.blend': 'BLENDER-v304RENDH' });
    const result = await renderChunk({
      blender,
      blendFile: path.join(dir, 'broken.blend'),
      scene: 'Scene',
      frames: [1, 2],
      outputDir: path.join(dir, 'out'),
      filePattern: 'f_####',
      onEvent: () => {},
    });
    t.equal(result.exitCode, 1);
    t.same(
      result.failed.map((failure) => failure.frame),
      [1, 2],
    );
    t.match(
      result.failed[0]!.message,
      /exited with code 1 before finishing this frame: Error: Failed to read blend file/,
    );
  });
});
