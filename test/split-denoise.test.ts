// A split frame of a scene that denoises (issue #17): the parts render without denoising but with
// the denoiser's albedo and normal passes; the merge denoises once, after averaging, with the scene's
// denoiser (OpenImageDenoise) — or, in a Blender built without OpenImageDenoise (Debian's), fails the
// frame saying so rather than writing it noisy.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { findBlender, renderChunk } from '../daemon/src/render/blender.js';
import { readExrLayout } from '../daemon/src/split/exr.js';
import { mergeFrame } from '../daemon/src/split/merge-frame.js';
import { partToMerge } from '../daemon/src/split/plan.js';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { makeNoisyScene, meanAbsoluteDifference, readPixels } from './helpers/split-scenes.js';

function blenderHasOidn(): boolean {
  const out = execFileSync(
    blenderCommand,
    [
      '-b',
      '--factory-startup',
      '--python-expr',
      'import _cycles; print("OIDN", bool(getattr(_cycles, "with_openimagedenoise", False)))',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return /^OIDN True$/m.test(out);
}

t.test('a denoising scene is denoised once, after the merge', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir();
  const blender = (await findBlender()).path;
  const blend = await makeNoisyScene(path.join(dir, 'denoise.blend'), { samples: 4, denoise: true });
  const partsDir = path.join(dir, 'parts');
  for (let part = 0; part < 2; part += 1) {
    const lines: string[] = [];
    const result = await renderChunk({
      blender,
      blendFile: blend,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, 'unused'),
      filePattern: 'frame_####.exr',
      split: { parts: 2, part, dir: partsDir },
      onEvent: () => {},
      onLine: (line) => lines.push(line),
    });
    t.same(result.failed, [], `part ${part} rendered`);
  }
  const parts = [0, 1].map((part) =>
    partToMerge({ parts: 2, samples: 4 }, path.join(partsDir, '1', `${part}.exr`), part),
  );
  const handle = await open(parts[0]!.file, 'r');
  const layout = await readExrLayout(handle, parts[0]!.file).finally(() => handle.close());
  const passes = new Set(layout.parts.flatMap((p) => p.channels.map((c) => c.name.split('.').at(-2))));
  t.ok(passes.has('Denoising Albedo') && passes.has('Denoising Normal'), 'parts carry albedo and normal');
  t.notOk(passes.has('Noisy Image'), 'parts are not denoised (no noisy copy beside a denoised image)');

  const output = path.join(dir, 'render', 'frame_0001.exr');
  const merge = () =>
    mergeFrame({
      blender,
      blendFile: blend,
      scene: 'Scene',
      frame: 1,
      parts,
      samples: 4,
      merged: path.join(dir, 'merged.exr'),
      output,
    });
  if (!blenderHasOidn()) {
    await t.rejects(
      merge(),
      /built without OpenImageDenoise/,
      'no OpenImageDenoise: the frame fails, saying why',
    );
    return;
  }
  const result = await merge();
  t.match(result.denoised, /^OIDN image\+albedo\+normal/, 'denoised with albedo and normal');
  // The same parts finished by the same scene with denoising off: the noisy merge, for comparison.
  const plain = await makeNoisyScene(path.join(dir, 'plain.blend'), { samples: 4, denoise: false });
  const noisyOutput = path.join(dir, 'noisy', 'frame_0001.exr');
  const noisy = await mergeFrame({
    blender,
    blendFile: plain,
    scene: 'Scene',
    frame: 1,
    parts,
    samples: 4,
    merged: path.join(dir, 'merged-noisy.exr'),
    output: noisyOutput,
  });
  t.equal(noisy.denoised, null, 'the comparison is not denoised');
  const [denoised, raw] = await readPixels([output, noisyOutput]);
  t.ok(denoised && raw, 'Blender read both frames');
  if (!denoised || !raw) return;
  const roughness = (image: typeof raw) => {
    let sum = 0;
    for (let i = 4; i < image.pixels.length; i += 1)
      if (i % 4 !== 3) sum += Math.abs(image.pixels[i]! - image.pixels[i - 4]!);
    return sum / image.pixels.length;
  };
  t.comment(
    `neighbour difference: denoised ${roughness(denoised).toFixed(5)}, noisy ${roughness(raw).toFixed(5)}`,
  );
  t.ok(
    roughness(denoised) < roughness(raw) * 0.6,
    'the denoised frame is much smoother than the noisy merge',
  );
  t.ok(meanAbsoluteDifference(denoised, raw) > 0, 'denoising changed the frame');
});
