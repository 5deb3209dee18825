// Fixtures several metrics share, made once per run.
import path from 'node:path';
import { makeProject, type Project } from './project.js';
import type { BenchContext } from './types.js';

/** The upload/hash/resubmit project: `projectFiles` files, `projectBytes` bytes. */
export function benchProject(ctx: BenchContext): Promise<Project> {
  return ctx.shared('project', async () => {
    const { projectFiles, projectBytes } = ctx.sizes;
    ctx.log(`generating a ${projectFiles}-file, ${(projectBytes / 1024 ** 2).toFixed(0)} MiB project`);
    return makeProject(ctx.repoRoot, path.join(ctx.tmp, 'project'), {
      files: projectFiles,
      bytes: projectBytes,
    });
  });
}

export const MiB = 1024 * 1024;

export function mibPerSecond(bytes: number, seconds: number): number {
  return bytes / MiB / seconds;
}
