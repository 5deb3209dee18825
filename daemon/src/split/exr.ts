// Reads the layout of the OpenEXR files a split frame's parts are (daemon/blender/split_rules.py:
// Blender's multilayer EXR, float32, uncompressed): their headers, channels and where each scanline's
// pixels are. Blender 3.4–4.x write one part holding every pass; 5.x one part per pass (multi-part).
// Only this form is read: anything else is refused with the reason, never misread.
import type { FileHandle } from 'node:fs/promises';

const MAGIC = 20000630;
const FLAG_TILED = 0x200;
const FLAG_DEEP = 0x800;
const FLAG_MULTIPART = 0x1000;
const PIXEL_FLOAT = 2;

export interface ExrChannel {
  name: string;
  pixelType: number;
}

export interface ExrPart {
  /** The part's `name` attribute (5.x: `ViewLayer.Combined`); '' in a single-part file. */
  name: string;
  channels: ExrChannel[];
  /** dataWindow: xMin, yMin, xMax, yMax. */
  window: [number, number, number, number];
  width: number;
  height: number;
  /** String attributes (metadata such as `cycles.ViewLayer.samples`). */
  strings: Map<string, string>;
  /** Byte offset of each scanline's chunk in the file, by line (y − yMin). */
  offsets: number[];
}

export interface ExrLayout {
  multipart: boolean;
  parts: ExrPart[];
  /** Bytes before the first chunk (headers and offset tables). */
  headerBytes: number;
}

export class ExrFormatError extends Error {}

class Cursor {
  constructor(
    readonly buffer: Buffer,
    public at = 0,
  ) {}
  need(bytes: number): void {
    if (this.at + bytes > this.buffer.length) throw new RangeError('short');
  }
  string(): string {
    const end = this.buffer.indexOf(0, this.at);
    if (end < 0) throw new RangeError('short');
    const text = this.buffer.toString('latin1', this.at, end);
    this.at = end + 1;
    return text;
  }
  int32(): number {
    this.need(4);
    const value = this.buffer.readInt32LE(this.at);
    this.at += 4;
    return value;
  }
  uint64(): number {
    this.need(8);
    const value = this.buffer.readBigUInt64LE(this.at);
    this.at += 8;
    return Number(value);
  }
}

function parseChannels(value: Buffer): ExrChannel[] {
  const channels: ExrChannel[] = [];
  const cursor = new Cursor(value);
  while (cursor.buffer[cursor.at] !== 0) {
    const name = cursor.string();
    const pixelType = cursor.int32();
    cursor.at += 4; // pLinear + reserved
    const xSampling = cursor.int32();
    const ySampling = cursor.int32();
    if (xSampling !== 1 || ySampling !== 1)
      throw new ExrFormatError(`channel ${name} is subsampled (${xSampling}×${ySampling})`);
    channels.push({ name, pixelType });
  }
  return channels;
}

function parseHeader(cursor: Cursor, file: string): Omit<ExrPart, 'offsets'> & { chunkCount?: number } {
  let channels: ExrChannel[] | undefined;
  let window: [number, number, number, number] | undefined;
  let compression: number | undefined;
  let type: string | undefined;
  let chunkCount: number | undefined;
  const strings = new Map<string, string>();
  while (true) {
    cursor.need(1);
    if (cursor.buffer[cursor.at] === 0) {
      cursor.at += 1;
      break;
    }
    const name = cursor.string();
    const kind = cursor.string();
    const size = cursor.int32();
    cursor.need(size);
    const value = cursor.buffer.subarray(cursor.at, cursor.at + size);
    cursor.at += size;
    if (name === 'channels') channels = parseChannels(value);
    else if (name === 'dataWindow')
      window = [value.readInt32LE(0), value.readInt32LE(4), value.readInt32LE(8), value.readInt32LE(12)];
    else if (name === 'compression') compression = value[0];
    else if (name === 'type') type = value.toString('latin1');
    else if (name === 'chunkCount') chunkCount = value.readInt32LE(0);
    else if (kind === 'string') strings.set(name, value.toString('utf8'));
  }
  if (!channels || !window) throw new ExrFormatError(`${file}: the EXR header has no channels or dataWindow`);
  if (compression !== 0)
    throw new ExrFormatError(`${file}: compressed EXR (compression ${compression}); parts are uncompressed`);
  if (type !== undefined && type !== 'scanlineimage')
    throw new ExrFormatError(`${file}: EXR part type ${type}`);
  const bad = channels.find((c) => c.pixelType !== PIXEL_FLOAT);
  if (bad) throw new ExrFormatError(`${file}: channel ${bad.name} is not 32-bit float`);
  const width = window[2] - window[0] + 1;
  const height = window[3] - window[1] + 1;
  if (width <= 0 || height <= 0) throw new ExrFormatError(`${file}: empty dataWindow`);
  return {
    name: strings.get('name') ?? '',
    channels,
    window,
    width,
    height,
    strings,
    ...(chunkCount !== undefined ? { chunkCount } : {}),
  };
}

function parseLayout(buffer: Buffer, file: string): ExrLayout {
  const cursor = new Cursor(buffer);
  if (cursor.int32() !== MAGIC) throw new ExrFormatError(`${file} is not an OpenEXR file`);
  const version = cursor.int32();
  if ((version & 0xff) !== 2) throw new ExrFormatError(`${file}: EXR version ${version & 0xff}`);
  if (version & (FLAG_TILED | FLAG_DEEP)) throw new ExrFormatError(`${file}: tiled or deep EXR`);
  const multipart = (version & FLAG_MULTIPART) !== 0;
  const headers = [parseHeader(cursor, file)];
  if (multipart) {
    while (buffer[cursor.at] !== 0) {
      cursor.need(1);
      headers.push(parseHeader(cursor, file));
    }
    cursor.at += 1;
  }
  const parts = headers.map((header) => {
    // Uncompressed scanline files hold one line per chunk.
    const count = header.chunkCount ?? header.height;
    if (count !== header.height)
      throw new ExrFormatError(`${file}: ${count} chunks for ${header.height} lines`);
    const offsets = Array.from({ length: count }, () => cursor.uint64());
    return { ...header, offsets };
  });
  return { multipart, parts, headerBytes: cursor.at };
}

/** Reads the layout of an EXR file (headers and offset tables; no pixels). */
export async function readExrLayout(handle: FileHandle, file: string): Promise<ExrLayout> {
  const { size } = await handle.stat();
  let length = Math.min(size, 256 * 1024);
  while (true) {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, 0);
    try {
      return parseLayout(buffer, file);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      if (length >= size) throw new ExrFormatError(`${file} ends inside its header`);
      length = Math.min(size, length * 4);
    }
  }
}

/** Bytes before a chunk's pixels: [part number,] y, data size. */
export function chunkPrefixBytes(layout: ExrLayout): number {
  return layout.multipart ? 12 : 8;
}

/** Bytes of one scanline's pixels in `part` (every channel float32). */
export function lineBytes(part: ExrPart): number {
  return part.channels.length * part.width * 4;
}

/** The render pass a channel belongs to: `ViewLayer.Combined.R` → `Combined`. */
export function passOfChannel(channel: string): string {
  const pieces = channel.split('.');
  return pieces.length >= 2 ? pieces[pieces.length - 2]! : channel;
}
