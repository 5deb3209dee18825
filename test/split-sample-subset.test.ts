// A split frame of a scene that itself renders only part of its sample sequence (issue #17): Cycles'
// sample offset (and, in Blender 4.4+, a sample subset). The parts share exactly the samples the
// scene's own render renders, so their merge is that render up to float rounding (in 4.2/4.3, whose
// default blue noise parts cannot reproduce, each part renders all of them in a band of rows).
import t from 'tap';
import path from 'node:path';
import { compareVersions, findBlender, renderChunk } from '../daemon/src/render/blender.js';
import { mergeFrame } from '../daemon/src/split/merge-frame.js';
import { partToMerge } from '../daemon/src/split/plan.js';
import { blenderSkip } from './helpers/scenes.js';
import { makeNoisyScene, meanAbsoluteDifference, readPixels, splitKind } from './helpers/split-scenes.js';

/** As split-merge.test.ts: the same render up to float rounding, measured ~2e-6 of two seeds' difference. */
const SAME_RENDER = 1e-3;

t.test('a scene rendering a sample subset splits that subset', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir();
  const found = await findBlender();
  const blender = found.path;
  const subsets = compareVersions(found.version, [4, 4, 0]) >= 0;
  // 18 samples from sample 3; 4.4+: a subset of 12 of them (samples 3…14).
  const kind = splitKind(found.version);
  const scene = { samples: 18, sampleOffset: 3, sampleSubsetLength: 12 };
  const frameSamples = subsets ? 12 : 18;
  const blend = await makeNoisyScene(path.join(dir, 'subset.blend'), { ...scene, seed: 0 });
  const other = await makeNoisyScene(path.join(dir, 'other.blend'), { ...scene, seed: 7 });
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

  const partsDir = path.join(dir, 'parts');
  const announced: number[][] = [];
  for (let part = 0; part < 3; part += 1) {
    const lines: string[] = [];
    const result = await renderChunk({
      blender,
      blendFile: blend,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, 'unused'),
      filePattern: 'frame_####.exr',
      split: { parts: 3, part, dir: partsDir },
      onEvent: () => {},
      onLine: (line) => lines.push(line),
    });
    t.same(result.failed, [], `part ${part} rendered`);
    for (const line of lines)
      if (line.startsWith('SKYFARM_PART ')) announced.push(line.split(' ').slice(1).map(Number));
  }
  // SKYFARM_PART <frame> <part> <samples> <total> <first sample> <seed> <rows>
  const share = frameSamples / 3;
  t.same(
    announced.map((f) => [f[2], f[3], f[4], f[5]]),
    kind === 'band'
      ? [0, 1, 2].map(() => [frameSamples, frameSamples, 3, 0])
      : [0, 1, 2].map((part) => [share, frameSamples, 3 + part * share, 0]),
    kind === 'band'
      ? `each band renders the scene's ${frameSamples} samples from sample 3 of seed 0's sequence`
      : `the parts share the scene's ${frameSamples} samples from sample 3 of seed 0's sequence`,
  );

  const output = path.join(dir, 'render', 'frame_0001.exr');
  await mergeFrame({
    blender,
    blendFile: blend,
    scene: 'Scene',
    frame: 1,
    parts: [0, 1, 2].map((part) =>
      partToMerge({ parts: 3, samples: frameSamples }, path.join(partsDir, '1', `${part}.exr`), part),
    ),
    samples: frameSamples,
    merged: path.join(dir, 'merged.exr'),
    output,
  });
  const files = [output, await single(blend, 'a'), await single(other, 'b')];
  const [m, a, b] = await readPixels(files);
  t.ok(m && a && b, 'Blender read the images');
  if (!m || !a || !b) return;
  const seeds = meanAbsoluteDifference(a, b);
  const sameSamples = meanAbsoluteDifference(m, a);
  t.comment(
    `mean |Δ|: two seeds ${seeds.toFixed(5)}, split vs the scene's render ${sameSamples.toExponential(2)}`,
  );
  t.ok(seeds > 0, 'two seeds render different noise');
  t.ok(
    sameSamples <= seeds * SAME_RENDER,
    `the split frame is the scene's render of those samples (${sameSamples.toExponential(2)} ≤ ${SAME_RENDER} × ${seeds.toFixed(5)})`,
  );
});
