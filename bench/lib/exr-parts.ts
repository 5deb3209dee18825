// Parts of a split frame for the merge benchmark: uncompressed float32 scanline EXRs laid out as
// Blender 3.4–4.x writes a part (daemon/blender/split_rules.py; one part holding every pass, names
// `ViewLayer.<pass>.<channel>`, `cycles.ViewLayer.samples`), filled with pseudo-random values.
import { open } from 'node:fs/promises';

/** A part's passes when the scene denoises: the image, and the denoiser's albedo and normal. */
export const PART_CHANNELS = [
  'ViewLayer.Combined.A',
  'ViewLayer.Combined.B',
  'ViewLayer.Combined.G',
  'ViewLayer.Combined.R',
  'ViewLayer.Denoising Albedo.B',
  'ViewLayer.Denoising Albedo.G',
  'ViewLayer.Denoising Albedo.R',
  'ViewLayer.Denoising Normal.X',
  'ViewLayer.Denoising Normal.Y',
  'ViewLayer.Denoising Normal.Z',
];

function attribute(name: string, type: string, value: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeInt32LE(value.length);
  return Buffer.concat([Buffer.from(`${name}\0${type}\0`, 'latin1'), size, value]);
}

function ints(...values: number[]): Buffer {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((value, index) => buffer.writeInt32LE(value, index * 4));
  return buffer;
}

export async function writeSyntheticPart(
  file: string,
  width: number,
  height: number,
  samples: number | null,
  seed: number,
  options: { channels?: string[]; compression?: number; note?: string } = {},
): Promise<number> {
  const channels = options.channels ?? PART_CHANNELS;
  const channelList = Buffer.concat([
    ...channels.map((name) => Buffer.concat([Buffer.from(`${name}\0`, 'latin1'), ints(2, 0, 1, 1)])),
    Buffer.from([0]),
  ]);
  const box = ints(0, 0, width - 1, height - 1);
  const header = Buffer.concat([
    ints(20000630, 2 | 0x400),
    attribute('channels', 'chlist', channelList),
    attribute('compression', 'compression', Buffer.from([options.compression ?? 0])),
    ...(samples !== null
      ? [attribute('cycles.ViewLayer.samples', 'string', Buffer.from(String(samples)))]
      : []),
    attribute('dataWindow', 'box2i', box),
    attribute('displayWindow', 'box2i', box),
    attribute('lineOrder', 'lineOrder', Buffer.from([0])),
    ...(options.note !== undefined ? [attribute('Note', 'string', Buffer.from(options.note, 'latin1'))] : []),
    attribute('pixelAspectRatio', 'float', Buffer.from(new Float32Array([1]).buffer)),
    attribute('screenWindowCenter', 'v2f', Buffer.alloc(8)),
    attribute('screenWindowWidth', 'float', Buffer.from(new Float32Array([1]).buffer)),
    Buffer.from([0]),
  ]);
  const lineBytes = channels.length * width * 4;
  const chunkBytes = 8 + lineBytes;
  const offsets = Buffer.alloc(height * 8);
  for (let y = 0; y < height; y += 1)
    offsets.writeBigUInt64LE(BigInt(header.length + offsets.length + y * chunkBytes), y * 8);
  const handle = await open(file, 'w');
  try {
    await handle.write(Buffer.concat([header, offsets]));
    const chunk = Buffer.alloc(chunkBytes);
    const pixels = new Float32Array(chunk.buffer, chunk.byteOffset + 8, lineBytes / 4);
    let state = (seed * 2654435761) >>> 0 || 1;
    for (let y = 0; y < height; y += 1) {
      chunk.writeInt32LE(y, 0);
      chunk.writeInt32LE(lineBytes, 4);
      for (let i = 0; i < pixels.length; i += 1) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        pixels[i] = (state >>> 0) / 4294967296;
      }
      await handle.write(chunk);
    }
  } finally {
    await handle.close();
  }
  return header.length + height * (8 + chunkBytes);
}
