// `skyfarm images [build]`: thin clients of the daemon's images.list / images.build. Build phases are
// printed to stderr while they happen; stdout carries only the result (JSON with --json).
import type { ImageBuild, ImagesBuildParams, WorkerImage } from '../../../protocol/generated/protocol.js';
import type { CliContext } from '../cli/commands.js';
import { connectOrStart } from '../cli/daemon-control.js';
import { EXIT } from '../cli/exit-codes.js';
import { SkyfarmError } from '../errors.js';
import { checkBlenderVersion } from './service.js';

export interface ImagesCliOptions {
  stackName?: string;
  json: boolean;
}

function size(bytes: number | null): string {
  if (bytes === null) return '?';
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

export function formatImages(repository: string, images: WorkerImage[]): string {
  if (images.length === 0) {
    return `no worker images in ${repository} yet: build one with \`skyfarm images build --blender-version X\``;
  }
  const width = Math.max(7, ...images.map((i) => i.version.length));
  const lines = [
    `worker images in ${repository}:`,
    `  ${'BLENDER'.padEnd(width)}  ${'PUSHED'.padEnd(24)}  SIZE`,
  ];
  for (const image of images) {
    lines.push(
      `  ${image.version.padEnd(width)}  ${(image.pushedAt ?? '?').padEnd(24)}  ${size(image.sizeBytes)}`,
    );
  }
  return lines.join('\n');
}

export function formatBuildEvent(build: ImageBuild): string {
  const time = new Date().toISOString().slice(11, 19);
  const phase = `${build.phase}${build.phaseStatus ? ` ${build.phaseStatus}` : ''}`;
  const failed =
    build.failedPhase && build.failedPhase !== build.phase ? ` (failed in ${build.failedPhase})` : '';
  return `${time}  ${build.status.padEnd(12)} ${phase}${failed}${build.timedOut ? '  (stopped waiting)' : ''}`;
}

function logsHint(build: ImageBuild): string {
  const where = [build.logGroup, build.logStream].filter(Boolean).join(' / ');
  return where || build.logLink
    ? `\n  build log: ${where}${build.logLink ? `\n  ${build.logLink}` : ''}`
    : '';
}

export async function imagesCommand(ctx: CliContext, o: ImagesCliOptions): Promise<number> {
  const { client } = await connectOrStart(ctx.stateDir, ctx.env);
  try {
    const result = await client.request('images.list', o.stackName ? { stackName: o.stackName } : {});
    if (o.json) ctx.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else ctx.stdout.write(formatImages(result.repository, result.images) + '\n');
    return EXIT.ok;
  } finally {
    client.close();
  }
}

/** Exit 0 when the image was pushed, 2 when the build failed or was still running at the time limit. */
export async function imagesBuildCommand(
  ctx: CliContext,
  o: ImagesCliOptions & { blenderVersion: string; timeoutMinutes?: number },
): Promise<number> {
  // Checked here first: a bad version never reaches the daemon, let alone AWS.
  const params: ImagesBuildParams = { blenderVersion: checkBlenderVersion(o.blenderVersion) };
  if (o.stackName) params.stackName = o.stackName;
  if (o.timeoutMinutes !== undefined) {
    if (o.timeoutMinutes > 480) throw new SkyfarmError('BAD_ARGUMENT', '--timeout is at most 480 minutes');
    params.timeoutSeconds = o.timeoutMinutes * 60;
  }
  const { client } = await connectOrStart(ctx.stateDir, ctx.env);
  let buildId: string | undefined;
  const stop = client.onEvent((event, data) => {
    if (event !== 'image.build') return;
    const build = data as ImageBuild;
    if (build.blenderVersion !== params.blenderVersion) return;
    if (buildId === undefined) {
      buildId = build.buildId;
      ctx.stderr.write(`building ${build.repository}:${build.blenderVersion} (CodeBuild ${build.buildId})\n`);
    }
    if (build.buildId === buildId) ctx.stderr.write(formatBuildEvent(build) + '\n');
  });
  try {
    const { build } = await client.request('images.build', params);
    const ok = build.status === 'SUCCEEDED' && !build.timedOut;
    if (o.json) ctx.stdout.write(JSON.stringify({ build }, null, 2) + '\n');
    else if (ok) ctx.stdout.write(`pushed ${build.repository}:${build.blenderVersion}\n`);
    if (!ok && !o.json) {
      const why = build.timedOut
        ? build.message
        : `the build ${build.status}${build.failedPhase ? ` in phase ${build.failedPhase}` : ''}` +
          `${build.message ? `: ${build.message}` : ''}`;
      ctx.stderr.write(
        `skyfarm: image build for Blender ${build.blenderVersion} failed: ${why}${logsHint(build)}\n`,
      );
    }
    return ok ? EXIT.ok : EXIT.failed;
  } finally {
    stop();
    client.close();
  }
}
