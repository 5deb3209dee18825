// Whether a job may split its frames across machines (issue #17), decided before anything is
// uploaded: the backend, the scene (daemon/blender/split_rules.py, via the probe) and the size of
// the array job it makes. Every refusal has its own error code and says what to change.
import { SkyfarmError } from '../errors.js';
import { MAX_ARRAY_CHILDREN } from '../batch/layout.js';
import type { ProbeScene } from '../render/blender.js';
import type { ErrorCode } from '../../../protocol/generated/protocol.js';
import type { PartFile } from './merge.js';

const SCENE_CODES: readonly string[] = ['SPLIT_ENGINE', 'SPLIT_COMPOSITOR', 'SPLIT_OUTPUT', 'SPLIT_TOO_MANY'];

/** --split on the local backend: refused before the scene is even read. */
export function assertSplitBackend(split: number | undefined, backend: string): void {
  if (split !== undefined && split > 1 && backend !== 'aws') {
    throw new SkyfarmError(
      'SPLIT_LOCAL',
      `--split ${split} needs the AWS backend (--backend aws): on this one machine the ${split} parts ` +
        'would render one after another, gaining nothing over rendering the frame whole',
    );
  }
}

/** Mirrors daemon/blender/split_rules.py part_samples: the remainder goes to the first parts. */
export function partSamples(total: number, parts: number, part: number): number {
  return Math.floor(total / parts) + (part < total % parts ? 1 : 0);
}

/** Part `part`'s file with its share of the frame's samples, as the merge (merge.ts) takes it. */
export function partToMerge(split: { parts: number; samples: number }, file: string, part: number): PartFile {
  return { file, samples: partSamples(split.samples, split.parts, part) };
}

/** The array job's children: every chunk of frames once per part. */
export function splitChildren(frameCount: number, chunkSize: number, parts: number): number {
  return Math.ceil(frameCount / chunkSize) * parts;
}

/** Refuses a scene or job size that cannot split; returns the samples a frame renders. */
export function assertSplittable(
  scene: ProbeScene,
  parts: number,
  frameCount: number,
  chunkSize: number,
): number {
  const info = scene.split;
  if (!info) {
    throw new SkyfarmError(
      'BLENDER_FAILED',
      `reading scene "${scene.name}" did not say whether it can be split`,
    );
  }
  const problem = info.problems[0];
  if (problem) {
    const code = (SCENE_CODES.includes(problem.code) ? problem.code : 'SPLIT_COMPOSITOR') as ErrorCode;
    const more =
      info.problems.length > 1
        ? ` (and: ${info.problems
            .slice(1)
            .map((p) => p.message)
            .join('; ')})`
        : '';
    throw new SkyfarmError(
      code,
      `scene "${scene.name}" cannot be split across machines: ${problem.message}${more}. Render it without --split`,
    );
  }
  if (info.bands && info.rows !== undefined && parts > info.rows) {
    throw new SkyfarmError(
      'SPLIT_TOO_MANY',
      `--split ${parts} is more parts than scene "${scene.name}" has rows (${info.rows}): with this Blender's ` +
        'sampling pattern every part renders a band of the frame’s rows',
    );
  }
  if (!info.bands && parts > info.samples) {
    throw new SkyfarmError(
      'SPLIT_TOO_MANY',
      `--split ${parts} is more parts than scene "${scene.name}" has samples (${info.samples}): every part needs at least one`,
    );
  }
  const children = splitChildren(frameCount, chunkSize, parts);
  if (children > MAX_ARRAY_CHILDREN) {
    throw new SkyfarmError(
      'SPLIT_TOO_MANY',
      `${frameCount} frames in chunks of ${chunkSize} × ${parts} parts = ${children} array children; AWS Batch ` +
        `allows ${MAX_ARRAY_CHILDREN}: split into fewer parts or render more frames per chunk (--chunk-size)`,
    );
  }
  return info.samples;
}
