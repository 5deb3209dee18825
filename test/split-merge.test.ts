// A split frame with real Blender, without the farm around it (issue #17): four parts render their
// shares of the scene's samples with their own seeds; the merge's sample-weighted mean, finished by
// Blender in the scene's output format, is a render of the whole frame: as close to a single render
// with the same samples as a single render with another seed is (within a stated margin, below), and
// clearly less noisy than one part alone. Pixel values are read by Blender itself.
import t from 'tap';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { findBlender, renderChunk } from '../daemon/src/render/blender.js';
import { readExrLayout } from '../daemon/src/split/exr.js';
import { mergeFrame } from '../daemon/src/split/merge-frame.js';
import { blenderSkip } from './helpers/scenes.js';
import { makeNoisyScene, meanAbsoluteDifference, readPixels } from './helpers/split-scenes.js';

// Independent seeds lose the stratification one render's sample pattern has across all its samples:
// measured here, the merge is 5–6 % further from a single render than another single render is (the
// parts themselves ~60 %). The margin allows that, and no more.
const STRATIFICATION_MARGIN = 1.15;

t.test('four parts merge into the frame a single render gives', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir();
  const blender = (await findBlender()).path;
  const split = await makeNoisyScene(path.join(dir, 'split.blend'), { samples: 18, seed: 0 });
  const other = await makeNoisyScene(path.join(dir, 'other.blend'), { samples: 18, seed: 7 });

  const single = async (blendFile: string, name: string) => {
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, name),
      filePattern: 'frame_####.exr',
      onEvent: () => {},
    });
    t.same(result.failed, [], `${name} rendered`);
    return path.join(dir, name, 'frame_0001.exr');
  };
  const singleA = await single(split, 'single-a');
  const singleB = await single(other, 'single-b');

  const partsDir = path.join(dir, 'parts');
  const announced: string[] = [];
  for (let part = 0; part < 4; part += 1) {
    const lines: string[] = [];
    const result = await renderChunk({
      blender,
      blendFile: split,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, 'unused'),
      filePattern: 'frame_####.exr',
      split: { parts: 4, part, dir: partsDir },
      onEvent: () => {},
      onLine: (line) => lines.push(line),
    });
    t.same(result.failed, [], `part ${part} rendered`);
    announced.push(...lines.filter((line) => line.startsWith('SKYFARM_PART ')));
  }
  // SKYFARM_PART <frame> <part> <samples> <total> <seed>: the remainder spread, the total exact.
  const fields = announced.map((line) => line.split(' ').slice(1).map(Number));
  t.same(
    fields.map((f) => f[2]),
    [5, 5, 4, 4],
    '18 samples in 4 parts: 5, 5, 4, 4',
  );
  t.ok(
    fields.every((f) => f[3] === 18),
    'each part knows the total',
  );
  t.equal(new Set(fields.map((f) => f[4])).size, 4, 'each part has its own seed');

  const partFiles = [0, 1, 2, 3].map((part) => path.join(partsDir, '1', `${part}.exr`));
  const handle = await open(partFiles[0]!, 'r');
  const layout = await readExrLayout(handle, partFiles[0]!).finally(() => handle.close());
  const channels = layout.parts.flatMap((part) => part.channels.map((c) => c.name));
  t.ok(
    channels.some((name) => name.endsWith('Combined.R')),
    `a part is a multilayer EXR with the Combined pass (${channels.join(', ')})`,
  );

  const output = path.join(dir, 'render', 'frame_0001.exr');
  const merged = await mergeFrame({
    blender,
    blendFile: split,
    scene: 'Scene',
    frame: 1,
    parts: partFiles,
    merged: path.join(dir, 'merged.exr'),
    output,
  });
  t.same(merged.samples, [5, 5, 4, 4], 'weights are the samples each part recorded');
  t.equal(merged.denoised, null, 'a scene without denoising is not denoised');
  const alone = path.join(dir, 'alone', 'frame_0001.exr');
  await mergeFrame({
    blender,
    blendFile: split,
    scene: 'Scene',
    frame: 1,
    parts: [partFiles[3]!],
    merged: path.join(dir, 'alone.exr'),
    output: alone,
  });

  const [a, b, m, p] = await readPixels([singleA, singleB, output, alone]);
  t.ok(a && b && m && p, 'Blender read all four images');
  if (!a || !b || !m || !p) return;
  t.same(m.size, [64, 64], 'the merged frame has the scene resolution');
  t.ok(m.float, 'the merged frame is in the scene format (float EXR)');
  const seeds = meanAbsoluteDifference(a, b);
  const splitVsSingle = meanAbsoluteDifference(m, a);
  const partVsSingle = meanAbsoluteDifference(p, a);
  t.comment(
    `mean |Δ| single vs single (other seed) ${seeds.toFixed(5)}, split vs single ${splitVsSingle.toFixed(5)} ` +
      `(${(splitVsSingle / seeds).toFixed(3)}×), one part vs single ${partVsSingle.toFixed(5)} ` +
      `(${(partVsSingle / seeds).toFixed(3)}×)`,
  );
  t.ok(seeds > 0, 'two seeds render different noise');
  t.ok(
    splitVsSingle <= seeds * STRATIFICATION_MARGIN,
    `the split frame is a single render within noise (${splitVsSingle.toFixed(5)} ≤ ${STRATIFICATION_MARGIN} × ${seeds.toFixed(5)})`,
  );
  t.ok(
    partVsSingle > splitVsSingle * 1.3,
    `one part alone is clearly noisier (${partVsSingle.toFixed(5)} vs ${splitVsSingle.toFixed(5)})`,
  );
});
