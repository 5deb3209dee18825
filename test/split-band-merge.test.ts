// Band parts (issue #17): where a Blender cannot render a run of the frame's sample sequence (4.2/4.3's
// blue noise, daemon/blender/split_rules.py) each part renders a band of rows with every sample and
// says which in its EXR's Note. The merge puts the bands together: every scanline, every pass (depth
// and ids too) is the one of the part whose band holds it; a merge so far leaves the rest empty; bands
// that overlap, a band of another frame size, or bands mixed with sample shares are refused.
import t from 'tap';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { writeSyntheticPart } from '../bench/lib/exr-parts.js';
import { chunkPrefixBytes, lineBytes, readExrLayout } from '../daemon/src/split/exr.js';
import { mergeParts } from '../daemon/src/split/merge.js';

const CHANNELS = ['ViewLayer.Combined.A', 'ViewLayer.Combined.R', 'ViewLayer.Depth.Z', 'ViewLayer.IndexOB.X'];
const WIDTH = 5;
const HEIGHT = 7;

async function scanlines(file: string): Promise<number[][]> {
  const handle = await open(file, 'r');
  try {
    const layout = await readExrLayout(handle, file);
    const part = layout.parts[0]!;
    const lines: number[][] = [];
    for (const offset of part.offsets) {
      const buffer = Buffer.alloc(lineBytes(part));
      await handle.read(buffer, 0, buffer.length, offset + chunkPrefixBytes(layout));
      lines.push(Array.from(new Float32Array(buffer.buffer, buffer.byteOffset, buffer.length / 4)));
    }
    return lines;
  } finally {
    await handle.close();
  }
}

/** Part `part` of a frame in bands (rows from the bottom, as split_rules.py part_rows gives them). */
async function bandPart(
  dir: string,
  part: number,
  bottom: number,
  top: number,
  height = HEIGHT,
): Promise<string> {
  const file = path.join(dir, `${part}.exr`);
  await writeSyntheticPart(file, WIDTH, height, 18, part + 1, {
    channels: CHANNELS,
    note: `skyfarm-part rows ${bottom} ${top} of ${height}`,
  });
  return file;
}

t.test('every scanline comes from the part whose band holds it', async (t) => {
  const dir = t.testdir();
  // 7 rows in 3 parts: rows 0–1, 2–3, 4–6 from the bottom = scanlines 5–6, 3–4, 0–2 from the top.
  const files = [await bandPart(dir, 0, 0, 2), await bandPart(dir, 1, 2, 4), await bandPart(dir, 2, 4, 7)];
  const out = path.join(dir, 'merged.exr');
  const result = await mergeParts(
    files.map((file) => ({ file, samples: 6 })),
    18,
    out,
  );
  t.same(result.rows, [2, 2, 3], 'the rows each part holds');
  t.same(result.samples, [18, 18, 18], 'each band holds every sample');
  const parts = await Promise.all(files.map(scanlines));
  const merged = await scanlines(out);
  const expectedOwner = [2, 2, 2, 1, 1, 0, 0];
  for (let line = 0; line < HEIGHT; line += 1) {
    const owner = expectedOwner[line]!;
    t.same(
      merged[line],
      parts[owner]![line],
      `scanline ${line} (row ${HEIGHT - 1 - line}) is part ${owner}'s, every pass`,
    );
  }
});

t.test('a merge so far leaves the rows of the missing parts empty', async (t) => {
  const dir = t.testdir();
  const middle = await bandPart(dir, 1, 2, 4);
  const out = path.join(dir, 'so-far.exr');
  const result = await mergeParts([{ file: middle, samples: 6 }], 18, out);
  t.same(result.rows, [2]);
  const [part, merged] = [await scanlines(middle), await scanlines(out)];
  for (let line = 0; line < HEIGHT; line += 1) {
    const inBand = line === 3 || line === 4;
    t.same(
      merged[line],
      inBand ? part[line] : new Array(CHANNELS.length * WIDTH).fill(0),
      `scanline ${line}`,
    );
  }
});

t.test('what the merge of bands refuses', async (t) => {
  const dir = t.testdir();
  const low = await bandPart(path.join(dir), 0, 0, 3);
  const overlapping = await bandPart(dir, 1, 2, 5);
  await t.rejects(
    mergeParts(
      [
        { file: low, samples: 6 },
        { file: overlapping, samples: 6 },
      ],
      18,
      path.join(dir, 'a.exr'),
    ),
    { message: /both hold row 2/ },
    'two bands with the same row',
  );
  const wrong = path.join(dir, 'wrong.exr');
  await writeSyntheticPart(wrong, WIDTH, HEIGHT, 18, 9, {
    channels: CHANNELS,
    note: 'skyfarm-part rows 0 3 of 1080',
  });
  await t.rejects(mergeParts([{ file: wrong, samples: 6 }], 18, path.join(dir, 'b.exr')), {
    message: /rows 0–2 of 1080, but it is 7 rows high/,
  });
  const share = path.join(dir, 'share.exr');
  await writeSyntheticPart(share, WIDTH, HEIGHT, 6, 3, { channels: CHANNELS });
  await t.rejects(
    mergeParts(
      [
        { file: low, samples: 6 },
        { file: share, samples: 6 },
      ],
      18,
      path.join(dir, 'c.exr'),
    ),
    { message: /some parts are bands of rows and some are shares of the samples/ },
  );
});
