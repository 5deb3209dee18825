// The merge's arithmetic and its refusals, on EXRs laid out as a part render writes them (issue #17):
// every channel is the sample-weighted mean of the parts (weights: their shares of the frame's samples,
// checked against the `cycles.<layer>.samples` Cycles records), Depth is the first part's, and a file
// the merge cannot read exactly, or that does not hold its share, is refused with the reason.
import t from 'tap';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { writeSyntheticPart } from '../bench/lib/exr-parts.js';
import { chunkPrefixBytes, lineBytes, readExrLayout } from '../daemon/src/split/exr.js';
import { mergeParts } from '../daemon/src/split/merge.js';

const CHANNELS = ['ViewLayer.Combined.A', 'ViewLayer.Combined.R', 'ViewLayer.Depth.Z', 'ViewLayer.Normal.X'];

/** Every float of a file, line by line, channel by channel (read through the layout's offsets). */
async function floats(file: string): Promise<number[][]> {
  const handle = await open(file, 'r');
  try {
    const layout = await readExrLayout(handle, file);
    const part = layout.parts[0]!;
    const values: number[][] = [];
    for (const offset of part.offsets) {
      const buffer = Buffer.alloc(lineBytes(part));
      await handle.read(buffer, 0, buffer.length, offset + chunkPrefixBytes(layout));
      values.push(Array.from(new Float32Array(buffer.buffer, buffer.byteOffset, buffer.length / 4)));
    }
    return values;
  } finally {
    await handle.close();
  }
}

t.test('sample-weighted mean of every channel, depth from the first part', async (t) => {
  const dir = t.testdir();
  const a = path.join(dir, 'a.exr');
  const b = path.join(dir, 'b.exr');
  await writeSyntheticPart(a, 5, 3, 3, 1, { channels: CHANNELS });
  await writeSyntheticPart(b, 5, 3, 1, 2, { channels: CHANNELS });
  const out = path.join(dir, 'merged.exr');
  const result = await mergeParts(
    [
      { file: a, samples: 3 },
      { file: b, samples: 1 },
    ],
    4,
    out,
  );
  t.same(result.samples, [3, 1], 'weights: the shares, as each file records');
  const [va, vb, vm] = [await floats(a), await floats(b), await floats(out)];
  let worst = 0;
  let depthKept = true;
  for (let line = 0; line < 3; line += 1) {
    for (let i = 0; i < 4 * 5; i += 1) {
      const channel = CHANNELS[Math.floor(i / 5)]!;
      if (channel.includes('.Depth.')) depthKept &&= vm[line]![i] === va[line]![i];
      else worst = Math.max(worst, Math.abs(vm[line]![i]! - (3 * va[line]![i]! + vb[line]![i]!) / 4));
    }
  }
  t.ok(worst < 1e-6, `every averaged value is (3a + b) / 4 (worst error ${worst})`);
  t.ok(depthKept, 'depth is the first part’s');
});

t.test('what the merge refuses', async (t) => {
  const dir = t.testdir();
  const good = path.join(dir, 'good.exr');
  await writeSyntheticPart(good, 4, 2, 2, 1, { channels: CHANNELS });
  const zip = path.join(dir, 'zip.exr');
  await writeSyntheticPart(zip, 4, 2, 2, 2, { channels: CHANNELS, compression: 3 });
  const smaller = path.join(dir, 'smaller.exr');
  await writeSyntheticPart(smaller, 3, 2, 2, 3, { channels: CHANNELS });
  const unknown = path.join(dir, 'unknown.exr');
  await writeSyntheticPart(unknown, 4, 2, null, 4, { channels: CHANNELS });
  const out = path.join(dir, 'out.exr');
  const two = (file: string) => [
    { file: good, samples: 2 },
    { file, samples: 2 },
  ];
  await t.rejects(mergeParts(two(zip), 4, out), /compressed EXR/, 'a compressed file');
  await t.rejects(mergeParts(two(smaller), 4, out), /same passes and size/, 'parts of another size');
  await t.rejects(mergeParts(two(unknown), 4, out), /how many samples/, 'a part without its samples');
  await t.rejects(
    mergeParts(
      [
        { file: good, samples: 3 },
        { file: good, samples: 1 },
      ],
      4,
      out,
    ),
    /good\.exr holds 2 samples; as a part of a 4-sample frame it should hold 3/,
    'a part that does not hold its share',
  );
  await t.rejects(mergeParts([], 4, out), /no parts/, 'nothing to merge');
});

t.test('a sample subset records the whole sequence: weighted by its share', async (t) => {
  const dir = t.testdir();
  // Blender 4.4+ renders a part as a subset of the frame's sequence and records the sequence's
  // samples (here 4) in every part, whatever its share.
  const a = path.join(dir, 'a.exr');
  const b = path.join(dir, 'b.exr');
  await writeSyntheticPart(a, 4, 2, 4, 1, { channels: CHANNELS });
  await writeSyntheticPart(b, 4, 2, 4, 2, { channels: CHANNELS });
  const out = path.join(dir, 'merged.exr');
  const result = await mergeParts(
    [
      { file: a, samples: 3 },
      { file: b, samples: 1 },
    ],
    4,
    out,
  );
  t.same(result.samples, [3, 1], 'weights are the shares');
  const [va, vb, vm] = [await floats(a), await floats(b), await floats(out)];
  const combinedR = 5; // channel 1 (Combined.R) of a 4-wide line: floats 4…7
  t.ok(
    Math.abs(vm[0]![combinedR]! - (3 * va[0]![combinedR]! + vb[0]![combinedR]!) / 4) < 1e-6,
    'a value is (3a + b) / 4, not (a + b) / 2',
  );
  t.not(va[0]![combinedR], vb[0]![combinedR], 'the parts differ there');
});
