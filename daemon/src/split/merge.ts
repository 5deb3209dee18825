// The merge of a split frame (issue #17): the sample-weighted mean of every pass of its parts'
// EXRs, written as one EXR of the same layout. Each part's weight is its share of the frame's samples
// (plan.ts partSamples), checked against what Cycles recorded in it (`cycles.<view layer>.samples`).
// Parts that render disjoint runs of one sample sequence (split_rules.py) make the mean the single
// render of the frame up to float rounding. Passes that are not a mean over samples (ids, the first hit's depth:
// split_rules.py FIRST_PART_PASSES) are taken from the first part. Where Blender cannot render a run of
// the sequence (4.2/4.3's blue noise) each part is a band of the frame's rows with every sample, said
// in its header's Note (split_rules.py REGION_NOTE), and the merge puts the bands together. It streams
// scanline by scanline, so memory stays at a few lines per part whatever the resolution.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import {
  ExrFormatError,
  chunkPrefixBytes,
  lineBytes,
  passOfChannel,
  readExrLayout,
  type ExrLayout,
} from './exr.js';

/** Mirrors daemon/blender/split_rules.py FIRST_PART_PASSES. */
export const FIRST_PART_PASSES = new Set(['Depth', 'IndexOB', 'IndexMA', 'Denoising Depth']);

/** A part's EXR (daemon/blender/render_chunk.py `split`) and its share of the frame's samples. */
export interface PartFile {
  file: string;
  samples: number;
}

export interface MergeResult {
  /** Samples of each part: its weight (a band part: every sample of its rows). */
  samples: number[];
  /** Band parts: the rows each holds; absent for parts that split the samples. */
  rows?: number[];
  width: number;
  height: number;
  channels: number;
}

function recordedSamples(layout: ExrLayout, file: string): number {
  for (const part of layout.parts) {
    for (const [key, value] of part.strings) {
      if (/^cycles\..+\.samples$/.test(key) && /^\d+$/.test(value.trim())) return Number(value.trim());
    }
  }
  throw new ExrFormatError(`${file} does not say how many samples it holds (no cycles.<layer>.samples)`);
}

/**
 * A part holds its share: Cycles records the samples it rendered before Blender 4.4 (samples = the
 * share, started at sample_offset), and the whole sequence's for a sample subset (4.4+), which is at
 * least the frame's. Anything else is not this part of this frame.
 */
function assertShare(recorded: number, part: PartFile, frameSamples: number): void {
  if (recorded === part.samples || recorded >= frameSamples) return;
  throw new ExrFormatError(
    `${part.file} holds ${recorded} samples; as a part of a ${frameSamples}-sample frame it should ` +
      `hold ${part.samples} (or be a subset of the frame's sequence)`,
  );
}

function assertSameLayout(first: ExrLayout, other: ExrLayout, file: string): void {
  const describe = (layout: ExrLayout) =>
    JSON.stringify(layout.parts.map((p) => [p.name, p.window, p.channels.map((c) => c.name)]));
  if (describe(first) !== describe(other)) {
    throw new ExrFormatError(`${file} does not hold the same passes and size as the first part`);
  }
}

/** A band part's rows as EXR scanlines (top down), first … end-1. */
interface Band {
  first: number;
  end: number;
}

const BAND_NOTE = /^skyfarm-part rows (\d+) (\d+) of (\d+)$/;

/** The band a part renders (split_rules.py REGION_NOTE: rows from the bottom), or null. */
function bandOf(layout: ExrLayout, file: string): Band | null {
  const note = layout.parts.map((part) => part.strings.get('Note')).find((value) => value !== undefined);
  const match = note === undefined ? null : BAND_NOTE.exec(note.trim());
  if (!match) return null;
  const [bottom, top, rows] = [match[1], match[2], match[3]].map(Number) as [number, number, number];
  const height = layout.parts[0]!.height;
  if (rows !== height || !(bottom < top && top <= rows)) {
    throw new ExrFormatError(
      `${file} says it holds rows ${bottom}–${top - 1} of ${rows}, but it is ${height} rows high`,
    );
  }
  return { first: height - top, end: height - bottom };
}

/** For each scanline, the part whose band holds it (-1: none yet); refuses overlapping bands. */
function bandOwners(bands: readonly Band[], height: number, files: readonly string[]): Int32Array {
  const owners = new Int32Array(height).fill(-1);
  bands.forEach((band, part) => {
    for (let line = band.first; line < band.end; line += 1) {
      const other = owners[line]!;
      if (other >= 0)
        throw new ExrFormatError(`${files[part]} and ${files[other]} both hold row ${height - 1 - line}`);
      owners[line] = part;
    }
  });
  return owners;
}

/**
 * Merges the parts of a frame of `frameSamples` samples (all of them, or those present so far) into
 * `output` (written to a temporary name, then renamed). Throws ExrFormatError when a part is not the
 * EXR a part render writes or the parts do not match.
 */
export async function mergeParts(
  parts: readonly PartFile[],
  frameSamples: number,
  output: string,
): Promise<MergeResult> {
  if (parts.length === 0) throw new ExrFormatError('no parts to merge');
  const files = parts.map((part) => part.file);
  const handles: FileHandle[] = [];
  const temp = `${output}.tmp-${process.pid}`;
  let out: FileHandle | undefined;
  try {
    for (const file of files) handles.push(await open(file, 'r'));
    const layouts: ExrLayout[] = [];
    for (const [index, handle] of handles.entries()) layouts.push(await readExrLayout(handle, files[index]!));
    const first = layouts[0]!;
    layouts.forEach((layout, index) => assertSameLayout(first, layout, files[index]!));
    const recorded = layouts.map((layout, index) => recordedSamples(layout, files[index]!));
    recorded.forEach((value, index) => assertShare(value, parts[index]!, frameSamples));
    const bands = layouts.map((layout, index) => bandOf(layout, files[index]!));
    const banded = bands.filter((band) => band !== null).length;
    if (banded > 0 && banded < bands.length) {
      throw new ExrFormatError(
        'some parts are bands of rows and some are shares of the samples: they cannot be merged',
      );
    }
    // Bands: each scanline is copied from the part whose band holds it (none yet: zeros, a merge so far).
    const owners = banded > 0 ? bandOwners(bands as Band[], first.parts[0]!.height, files) : null;
    const samples = owners ? recorded : parts.map((part) => part.samples);
    const total = samples.reduce((sum, value) => sum + value, 0);
    const weights = samples.map((value) => value / total);

    out = await open(temp, 'w');
    // Headers and offset tables of the first part: the merged chunks go where its chunks are.
    const head = Buffer.alloc(first.headerBytes);
    await handles[0]!.read(head, 0, head.length, 0);
    await out.write(head, 0, head.length, 0);

    const prefix = chunkPrefixBytes(first);
    let channels = 0;
    for (const [partIndex, part] of first.parts.entries()) {
      channels += part.channels.length;
      const bytes = lineBytes(part);
      const floats = bytes / 4;
      // Per channel: averaged, or taken from the first part.
      const keep = part.channels.map((c) => FIRST_PART_PASSES.has(passOfChannel(c.name)));
      const chunk = Buffer.alloc(prefix + bytes);
      const pixels = new Float32Array(chunk.buffer, chunk.byteOffset + prefix, floats);
      const other = Buffer.alloc(bytes);
      const otherPixels = new Float32Array(other.buffer, other.byteOffset, floats);
      const sum = new Float64Array(floats);
      for (let line = 0; line < part.height; line += 1) {
        const offset = part.offsets[line]!;
        await handles[0]!.read(chunk, 0, chunk.length, offset);
        const declared = chunk.readInt32LE(prefix - 4);
        if (declared !== bytes)
          throw new ExrFormatError(`${files[0]}: line ${line} holds ${declared} bytes, not ${bytes}`);
        const owner = owners ? owners[line]! : 0;
        if (owners && owner < 0) pixels.fill(0);
        if (owners && owner > 0) {
          const where = layouts[owner]!.parts[partIndex]!.offsets[line]! + prefix;
          const { bytesRead } = await handles[owner]!.read(chunk, prefix, bytes, where);
          if (bytesRead !== bytes) throw new ExrFormatError(`${files[owner]} ends inside line ${line}`);
        }
        if (owners) {
          await out.write(chunk, 0, chunk.length, offset);
          continue;
        }
        for (let i = 0; i < floats; i += 1) sum[i] = pixels[i]! * weights[0]!;
        for (let k = 1; k < handles.length; k += 1) {
          const where = layouts[k]!.parts[partIndex]!.offsets[line]! + prefix;
          const { bytesRead } = await handles[k]!.read(other, 0, bytes, where);
          if (bytesRead !== bytes) throw new ExrFormatError(`${files[k]} ends inside line ${line}`);
          const weight = weights[k]!;
          for (let i = 0; i < floats; i += 1) sum[i]! += otherPixels[i]! * weight;
        }
        for (let c = 0; c < keep.length; c += 1) {
          if (keep[c]) continue;
          for (let i = c * part.width, end = i + part.width; i < end; i += 1) pixels[i] = sum[i]!;
        }
        await out.write(chunk, 0, chunk.length, offset);
      }
    }
    await out.close();
    out = undefined;
    await rename(temp, output);
    return {
      samples,
      ...(owners ? { rows: (bands as Band[]).map((band) => band.end - band.first) } : {}),
      width: first.parts[0]!.width,
      height: first.parts[0]!.height,
      channels,
    };
  } finally {
    await out?.close();
    await rm(temp, { force: true });
    await Promise.all(handles.map((handle) => handle.close()));
  }
}
