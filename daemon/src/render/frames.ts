// Frame specifications as users type them (`1-250`, `1-10,20,30-40`, `1-100x5`) and the chunking of
// frame lists into render chunks.
import { SkyfarmError } from '../errors.js';

/** The most frames one job may select. */
export const MAX_FRAMES = 1_000_000;
/** Blender's frame limits (MAXFRAME / MINAFRAME in DNA_scene_types.h). */
export const MAX_FRAME_NUMBER = 1_048_574;
export const MIN_FRAME_NUMBER = -1_048_574;

// `<start>[-<end>[x<step>]]`; numbers may carry a leading minus, so `-5--1` is -5 to -1.
const PART = /^(-?\d+)(?:\s*-\s*(-?\d+)(?:\s*x\s*(-?\d+))?)?$/i;

function frameNumber(text: string, part: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value > MAX_FRAME_NUMBER || value < MIN_FRAME_NUMBER) {
    throw new SkyfarmError(
      'BAD_FRAME_SPEC',
      `frame ${text} in "${part}" is outside Blender's range ${MIN_FRAME_NUMBER}..${MAX_FRAME_NUMBER}`,
    );
  }
  return value;
}

/** Parses a Blender-style frame spec into sorted unique frame numbers. */
export function parseFrameSpec(spec: string): number[] {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new SkyfarmError('BAD_FRAME_SPEC', 'the frame spec is empty; use e.g. "1-250" or "1-10,20"');
  }
  const frames = new Set<number>();
  // Overlapping parts are legal, but bound the work they can cause.
  let expanded = 0;
  for (const rawPart of spec.split(',')) {
    const part = rawPart.trim();
    if (part === '') {
      throw new SkyfarmError('BAD_FRAME_SPEC', `empty part in frame spec "${spec}" (stray comma?)`);
    }
    const match = PART.exec(part);
    if (!match) {
      throw new SkyfarmError(
        'BAD_FRAME_SPEC',
        `"${part}" is not a frame, a range like 1-10, or a stepped range like 1-100x5`,
      );
    }
    const start = frameNumber(match[1]!, part);
    const end = match[2] === undefined ? start : frameNumber(match[2], part);
    const step = match[3] === undefined ? 1 : Number(match[3]);
    if (!Number.isSafeInteger(step) || step <= 0) {
      throw new SkyfarmError(
        'BAD_FRAME_SPEC',
        `step ${match[3]} in "${part}" must be a positive whole number`,
      );
    }
    if (end < start) {
      throw new SkyfarmError('BAD_FRAME_SPEC', `range "${part}" runs backwards; write ${end}-${start}`);
    }
    const count = Math.floor((end - start) / step) + 1;
    expanded += count;
    if (count > MAX_FRAMES || expanded > 10 * MAX_FRAMES) {
      throw new SkyfarmError('BAD_FRAME_SPEC', `"${part}" selects too many frames (limit ${MAX_FRAMES})`);
    }
    for (let frame = start; frame <= end; frame += step) frames.add(frame);
    if (frames.size > MAX_FRAMES) {
      throw new SkyfarmError('BAD_FRAME_SPEC', `"${spec}" selects more than ${MAX_FRAMES} frames`);
    }
  }
  if (frames.size === 0) throw new SkyfarmError('BAD_FRAME_SPEC', `"${spec}" selects no frame`);
  return [...frames].sort((a, b) => a - b);
}

/** Splits frames, in their order, into consecutive groups of `chunkSize` (the last may be shorter). */
export function chunkFrames(frames: number[], chunkSize: number): number[][] {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `chunk size must be a whole number of at least 1, not ${chunkSize}`,
    );
  }
  const chunks: number[][] = [];
  for (let index = 0; index < frames.length; index += chunkSize) {
    chunks.push(frames.slice(index, index + chunkSize));
  }
  return chunks;
}

/**
 * The compact form of a frame list for messages: `1-3,7,9-10`. With `maxParts`, the rest is
 * summarised (`1-3,7,… (+40 frames)`) so a message about thousands of scattered frames stays short.
 */
export function formatFrameList(frames: number[], options: { maxParts?: number } = {}): string {
  const sorted = [...new Set(frames)].sort((a, b) => a - b);
  const parts: string[] = [];
  let shownFrames = 0;
  const maxParts = Math.max(1, options.maxParts ?? Infinity);
  for (let index = 0; index < sorted.length;) {
    const first = sorted[index]!;
    let last = first;
    while (index + 1 < sorted.length && sorted[index + 1] === last + 1) {
      index += 1;
      last = sorted[index]!;
    }
    index += 1;
    if (parts.length >= maxParts) {
      return `${parts.join(',')},… (+${sorted.length - shownFrames} frames)`;
    }
    parts.push(first === last ? String(first) : `${first}-${last}`);
    shownFrames += last - first + 1;
  }
  return parts.join(',');
}
