// A split frame of a scene with a compositor (issue #17): the merge composites the merged passes with
// the scene's own node tree (its Render Layers node replaced by the merged EXR), so the frame equals a
// single render through the same compositor, up to float rounding (parts render runs of one sample
// sequence, or in 4.2/4.3 bands of rows: split-merge.test.ts).
import t from 'tap';
import path from 'node:path';
import { findBlender, renderChunk } from '../daemon/src/render/blender.js';
import { mergeFrame } from '../daemon/src/split/merge-frame.js';
import { partToMerge } from '../daemon/src/split/plan.js';
import { blenderSkip } from './helpers/scenes.js';
import {
  makeNoisyScene,
  meanAbsoluteDifference,
  readPixels,
  renderVariants,
  splitKind,
} from './helpers/split-scenes.js';

/** As split-merge.test.ts: the same render up to float rounding. */
const SAME_RENDER = 1e-3;

t.test("the scene's compositor runs on the merged frame", { skip: blenderSkip }, async (t) => {
  const dir = t.testdir();
  const found = await findBlender();
  const blender = found.path;
  const blend = await makeNoisyScene(path.join(dir, 'blur.blend'), { samples: 16, compositor: 'blur' });
  const partsDir = path.join(dir, 'parts');
  for (let part = 0; part < 4; part += 1) {
    const result = await renderChunk({
      blender,
      blendFile: blend,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, 'unused'),
      filePattern: 'frame_####.exr',
      split: { parts: 4, part, dir: partsDir },
      onEvent: () => {},
    });
    t.same(result.failed, [], `part ${part} rendered`);
  }
  const parts = [0, 1, 2, 3].map((part) =>
    partToMerge({ parts: 4, samples: 16 }, path.join(partsDir, '1', `${part}.exr`), part),
  );
  const output = path.join(dir, 'render', 'frame_0001.exr');
  await mergeFrame({
    blender,
    blendFile: blend,
    scene: 'Scene',
    frame: 1,
    parts,
    samples: 16,
    merged: path.join(dir, 'merged.exr'),
    output,
  });
  // Single renders through the same compositor (Blender's own render), two seeds; and the merge
  // without the compositor (the raw merged image) to show the blur was applied.
  const single = (name: string, seed: number) => ({ samples: 16, seed, path: path.join(dir, `${name}.exr`) });
  await renderVariants(blend, [single('single-a', 0), single('single-b', 7)]);
  const kind = splitKind(found.version);
  const plain = await makeNoisyScene(path.join(dir, 'plain.blend'), { samples: 16 });
  const unblurred = path.join(dir, 'unblurred', 'frame_0001.exr');
  await mergeFrame({
    blender,
    blendFile: plain,
    scene: 'Scene',
    frame: 1,
    parts,
    samples: 16,
    merged: path.join(dir, 'merged-plain.exr'),
    output: unblurred,
  });
  const [m, a, b, raw] = await readPixels([
    output,
    path.join(dir, 'single-a.exr'),
    path.join(dir, 'single-b.exr'),
    unblurred,
  ]);
  t.ok(m && a && b && raw, 'Blender read the images');
  if (!m || !a || !b || !raw) return;
  const seeds = meanAbsoluteDifference(a, b);
  const split = meanAbsoluteDifference(m, a);
  const withoutCompositor = meanAbsoluteDifference(raw, a);
  t.comment(
    `mean |Δ| vs a single render through the compositor: other seed ${seeds.toFixed(5)}, split ${split.toFixed(5)} ` +
      `(${(split / seeds).toExponential(2)}×, parts by ${kind}), split without the ` +
      `compositor ${withoutCompositor.toFixed(5)}`,
  );
  t.ok(split <= seeds * SAME_RENDER, 'the split frame went through the compositor as a single render does');
  t.ok(withoutCompositor > split * 1.5, 'without the compositor it would differ clearly (the blur is there)');
});
