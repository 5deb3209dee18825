// A split frame of a scene with a compositor (issue #17): the merge composites the merged passes with
// the scene's own node tree (its Render Layers node replaced by the merged EXR), so the frame equals a
// single render through the same compositor: the one of the same samples up to float rounding
// (split-merge.test.ts), and so no further from it than a render with another seed is.
import t from 'tap';
import path from 'node:path';
import { findBlender, renderChunk } from '../daemon/src/render/blender.js';
import { mergeFrame } from '../daemon/src/split/merge-frame.js';
import { partToMerge } from '../daemon/src/split/plan.js';
import { blenderSkip } from './helpers/scenes.js';
import {
  makeNoisyScene,
  meanAbsoluteDifference,
  partsPattern,
  readPixels,
  renderVariants,
} from './helpers/split-scenes.js';

/** As split-merge.test.ts: the same render up to float rounding, measured ~2e-6 of two seeds' difference. */
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
  // Single renders through the same compositor (Blender's own render), two seeds (and, in 4.2/4.3,
  // the one with the pattern the parts render); and the merge without the compositor (the raw
  // merged image) to show the blur was applied.
  const single = (name: string, seed: number, samplingPattern?: string) => ({
    samples: 16,
    seed,
    path: path.join(dir, `${name}.exr`),
    ...(samplingPattern ? { samplingPattern } : {}),
  });
  const pattern = partsPattern(found.version);
  await renderVariants(blend, [
    single('single-a', 0),
    single('single-b', 7),
    ...(pattern ? [single('single-reference', 0, pattern)] : []),
  ]);
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
  const [m, a, b, raw, r] = await readPixels([
    output,
    path.join(dir, 'single-a.exr'),
    path.join(dir, 'single-b.exr'),
    unblurred,
    path.join(dir, pattern ? 'single-reference.exr' : 'single-a.exr'),
  ]);
  t.ok(m && a && b && raw && r, 'Blender read the images');
  if (!m || !a || !b || !raw || !r) return;
  const seeds = meanAbsoluteDifference(a, b);
  const split = meanAbsoluteDifference(m, a);
  const sameSamples = meanAbsoluteDifference(m, r);
  const withoutCompositor = meanAbsoluteDifference(raw, a);
  t.comment(
    `mean |Δ| vs a single render through the compositor: other seed ${seeds.toFixed(5)}, split ${split.toFixed(5)} ` +
      `(${(split / seeds).toFixed(3)}×), split without the compositor ${withoutCompositor.toFixed(5)}, ` +
      `split vs the render of the same samples${pattern ? ` (${pattern})` : ''} ${sameSamples.toExponential(2)}`,
  );
  t.ok(
    sameSamples <= seeds * SAME_RENDER,
    'the split frame went through the compositor as a single render of the same samples does',
  );
  t.ok(split <= seeds, 'it is no further from the single render than another seed’s render is');
  t.ok(withoutCompositor > split * 1.5, 'without the compositor it would differ clearly (the blur is there)');
});
