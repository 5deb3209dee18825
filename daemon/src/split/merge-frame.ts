// Merges one split frame (issue #17): the parts' sample-weighted mean (merge.ts), then Blender
// applies the scene's denoiser, colour management, output format and file name once
// (daemon/blender/merge_frame.py). Used by the publish stage (infra/worker/split-publish.ts).
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { blenderScript, runBlender } from '../render/blender.js';
import { mergeParts, type MergeResult, type PartFile } from './merge.js';

export interface MergeFrameOptions {
  blender: string;
  blendFile: string;
  scene: string;
  frame: number;
  /** The parts' EXRs (daemon/blender/render_chunk.py `split`) with their shares of the samples. */
  parts: PartFile[];
  /** The frame's samples (all parts'). */
  samples: number;
  /** Where the averaged EXR goes (removed afterwards). */
  merged: string;
  /** The frame's final file (the scene's name for it). */
  output: string;
  /** A small PNG of the result. */
  preview?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
}

export interface MergeFrameResult extends MergeResult {
  /** How the frame was denoised (`OIDN image+albedo+normal prefilter ACCURATE`), or null. */
  denoised: string | null;
  /** Milliseconds of the averaging and of Blender's finishing. */
  averageMs: number;
  finishMs: number;
}

export class MergeFrameError extends Error {}

export async function mergeFrame(opts: MergeFrameOptions): Promise<MergeFrameResult> {
  await mkdir(path.dirname(opts.merged), { recursive: true });
  const started = performance.now();
  try {
    const merged = await mergeParts(opts.parts, opts.samples, opts.merged);
    const averaged = performance.now();
    let denoised: string | null = null;
    let failure: string | null = null;
    let done = false;
    const args = {
      scene: opts.scene,
      frame: opts.frame,
      merged: opts.merged,
      output: opts.output,
      ...(opts.preview ? { preview: opts.preview } : {}),
    };
    const run = await runBlender(
      opts.blender,
      [
        '-b',
        '--python-exit-code',
        '1',
        opts.blendFile,
        '--python',
        blenderScript('merge_frame.py'),
        '--',
        JSON.stringify(args),
      ],
      {
        env: opts.env,
        signal: opts.signal,
        onLine: (line) => {
          opts.onLine?.(line);
          const match = /^SKYFARM_(MERGE_DENOISE|MERGED|MERGE_FAILED) (.*)$/.exec(line);
          if (match?.[1] === 'MERGE_DENOISE') denoised = match[2]!;
          else if (match?.[1] === 'MERGED') done = true;
          else if (match?.[1] === 'MERGE_FAILED') failure = match[2]!.replace(/^\S+ /, '');
        },
      },
    );
    if (!done || run.exitCode !== 0) {
      const why = failure ?? (run.aborted ? 'canceled' : `Blender exited with ${run.exitCode ?? run.signal}`);
      throw new MergeFrameError(`frame ${opts.frame}: the merge failed: ${why}`);
    }
    return {
      ...merged,
      denoised,
      averageMs: averaged - started,
      finishMs: performance.now() - averaged,
    };
  } finally {
    await rm(opts.merged, { force: true });
  }
}
