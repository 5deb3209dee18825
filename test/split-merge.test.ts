// A split frame with real Blender, without the farm around it (issue #17): four parts render disjoint
// runs of the frame's one sample sequence (the scene's seed); the merge's sample-weighted mean,
// finished by Blender in the scene's output format, is the single render of those samples up to float
// rounding: no further from the scene's single render than a single render with another seed is (the
// issue's criterion), and clearly less noisy than one part alone. Pixel values are read by Blender.
import t from 'tap';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { findBlender, renderChunk } from '../daemon/src/render/blender.js';
import { readExrLayout } from '../daemon/src/split/exr.js';
import { mergeFrame } from '../daemon/src/split/merge-frame.js';
import { blenderSkip } from './helpers/scenes.js';
import { partToMerge } from '../daemon/src/split/plan.js';
import { makeNoisyScene, meanAbsoluteDifference, partsPattern, readPixels } from './helpers/split-scenes.js';

// The merge is the single render of the parts' samples up to float rounding: measured, its mean |Δ|
// from that render is ~1e-7 (3.4, 4.3, 5.2), about 2e-6 of two seeds' difference (~0.07–0.09).
// Allowed: a thousandth of two seeds' difference (500× what was measured).
const SAME_RENDER = 1e-3;

t.test('four parts merge into the frame a single render gives', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir();
  const found = await findBlender();
  const blender = found.path;
  const split = await makeNoisyScene(path.join(dir, 'split.blend'), { samples: 18, seed: 0 });
  const other = await makeNoisyScene(path.join(dir, 'other.blend'), { samples: 18, seed: 7 });
  // The render the parts reproduce: the scene's own, or (4.2/4.3) the same with the tabulated pattern.
  const pattern = partsPattern(found.version);
  const reference = pattern
    ? await makeNoisyScene(path.join(dir, 'reference.blend'), {
        samples: 18,
        seed: 0,
        samplingPattern: pattern,
      })
    : split;

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
  const singleR = reference === split ? singleA : await single(reference, 'single-reference');

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
  // SKYFARM_PART <frame> <part> <samples> <total> <first sample>: the remainder spread, the total exact.
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
  t.same(
    fields.map((f) => f[4]),
    [0, 5, 10, 14],
    'the parts render samples 0–4, 5–9, 10–13 and 14–17 of one sequence',
  );

  const partFiles = [0, 1, 2, 3].map((part) =>
    partToMerge({ parts: 4, samples: 18 }, path.join(partsDir, '1', `${part}.exr`), part),
  );
  const handle = await open(partFiles[0]!.file, 'r');
  const layout = await readExrLayout(handle, partFiles[0]!.file).finally(() => handle.close());
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
    samples: 18,
    merged: path.join(dir, 'merged.exr'),
    output,
  });
  t.same(merged.samples, [5, 5, 4, 4], 'weights are the parts’ shares');
  t.equal(merged.denoised, null, 'a scene without denoising is not denoised');
  const alone = path.join(dir, 'alone', 'frame_0001.exr');
  await mergeFrame({
    blender,
    blendFile: split,
    scene: 'Scene',
    frame: 1,
    parts: [partFiles[3]!],
    samples: 18,
    merged: path.join(dir, 'alone.exr'),
    output: alone,
  });

  const [a, b, m, p, r] = await readPixels([singleA, singleB, output, alone, singleR]);
  t.ok(a && b && m && p && r, 'Blender read all five images');
  if (!a || !b || !m || !p || !r) return;
  t.same(m.size, [64, 64], 'the merged frame has the scene resolution');
  t.ok(m.float, 'the merged frame is in the scene format (float EXR)');
  const seeds = meanAbsoluteDifference(a, b);
  const splitVsReference = meanAbsoluteDifference(m, r);
  const splitVsSingle = meanAbsoluteDifference(m, a);
  // Against the other seed's render: the single render contains the part's samples, so it is not an
  // independent yardstick for the part's noise.
  const splitVsOther = meanAbsoluteDifference(m, b);
  const partVsOther = meanAbsoluteDifference(p, b);
  t.comment(
    `mean |Δ| single vs single (other seed) ${seeds.toFixed(5)}, split vs single ${splitVsSingle.toFixed(5)} ` +
      `(${(splitVsSingle / seeds).toFixed(3)}×), split vs the render the parts reproduce` +
      `${pattern ? ` (${pattern})` : ''} ${splitVsReference.toExponential(2)}, vs the other seed: split ` +
      `${splitVsOther.toFixed(5)}, one part ${partVsOther.toFixed(5)} (${(partVsOther / splitVsOther).toFixed(3)}×)`,
  );
  t.ok(seeds > 0, 'two seeds render different noise');
  t.ok(
    splitVsReference <= seeds * SAME_RENDER,
    `the split frame is a single render of the same samples (${splitVsReference.toExponential(2)} ≤ ${SAME_RENDER} × ${seeds.toFixed(5)})`,
  );
  t.ok(
    splitVsSingle <= seeds,
    `the split frame is as close to the single render as another seed's render is (${splitVsSingle.toFixed(5)} ≤ ${seeds.toFixed(5)})`,
  );
  t.ok(
    partVsOther > splitVsOther * 1.3,
    `one part alone is clearly noisier (${partVsOther.toFixed(5)} vs ${splitVsOther.toFixed(5)} from the other seed's render)`,
  );
});
