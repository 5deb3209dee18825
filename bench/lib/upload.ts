// Cold uploads of the bench project to the local S3 through the real daemon (`project.upload` over
// its WebSocket, backend aws, a fresh state dir so the hash cache is empty, a fresh bucket), and the
// same tree through `aws s3 sync`. The first cold upload's daemon is kept: the re-submit metrics
// upload the unchanged project again with its warm cache.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ProjectUploadResult } from '../../protocol/generated/protocol.js';
import { startBenchDaemon, type BenchDaemon } from './daemon.js';
import { benchProject } from './fixtures.js';
import { check, onPath, run, withTimeout } from './proc.js';
import type { Project } from './project.js';
import { isolatedEnv, startLocalS3, type LocalS3 } from './s3.js';
import type { BenchContext } from './types.js';

export interface SkyfarmUpload {
  seconds: number;
  result: ProjectUploadResult;
  bucket: string;
  daemon: BenchDaemon;
  s3: LocalS3;
  project: Project;
}

let buckets = 0;

export async function skyfarmColdUpload(ctx: BenchContext, keep: boolean): Promise<SkyfarmUpload> {
  const project = await benchProject(ctx);
  const s3 = await startLocalS3(ctx);
  const bucket = `skyfarm-bench-${++buckets}`;
  await s3.createBucket(bucket);
  const daemon = await startBenchDaemon(ctx, isolatedEnv(s3.env), 'upload');
  try {
    const started = performance.now();
    const result = await withTimeout(
      daemon.client.request('project.upload', {
        blendFile: project.blendFile,
        backend: 'aws',
        bucket,
        dependencies: project.dependencies,
        strict: true,
      }),
      60 * 60_000,
      'cold project.upload',
    );
    const seconds = (performance.now() - started) / 1000;
    if (result.bytesUploaded !== project.bytes) {
      throw new Error(`the cold upload sent ${result.bytesUploaded} of ${project.bytes} bytes`);
    }
    return { seconds, result, bucket, daemon, s3, project };
  } finally {
    if (!keep) await daemon.stop();
  }
}

/** The first cold upload, whose daemon (and warm hash cache) the re-submit metrics reuse. */
export function firstColdUpload(ctx: BenchContext): Promise<SkyfarmUpload> {
  return ctx.shared('first-cold-upload', () => {
    ctx.log('cold upload of the project through the daemon (project.upload, backend aws, s3rver)');
    return skyfarmColdUpload(ctx, true);
  });
}

/** Debian's awscli v2 (`/usr/bin/aws`) unless SKYFARM_BENCH_AWS names another; else `aws` on PATH. */
export function findAwsCli(): string | undefined {
  const chosen = process.env['SKYFARM_BENCH_AWS'];
  if (chosen) return chosen;
  if (existsSync('/usr/bin/aws')) return '/usr/bin/aws';
  return onPath('aws');
}

export async function awsCliVersion(aws: string): Promise<string> {
  const result = await run(aws, ['--version'], { timeoutMs: 60_000, env: isolatedEnv({}) });
  return `${result.stdout}${result.stderr}`.trim().split(/\s+/)[0] ?? 'unknown';
}

/** `aws s3 sync <project> s3://<fresh bucket>/` against the local S3; returns its wall time. */
export async function awsCliColdSync(ctx: BenchContext, aws: string): Promise<number> {
  const project = await benchProject(ctx);
  const s3 = await startLocalS3(ctx);
  const bucket = `awscli-bench-${++buckets}`;
  await s3.createBucket(bucket);
  const result = check(
    'aws s3 sync',
    await run(
      aws,
      [
        's3',
        'sync',
        project.root,
        `s3://${bucket}/project`,
        '--endpoint-url',
        s3.endpoint,
        '--only-show-errors',
        '--no-progress',
      ],
      { env: isolatedEnv(s3.env), timeoutMs: 60 * 60_000, cwd: path.dirname(project.root) },
    ),
  );
  const stored = await s3.usage(bucket, 'project/');
  const expected = project.files.length + 1;
  if (stored.objects !== expected || stored.bytes !== project.bytes) {
    throw new Error(
      `aws s3 sync stored ${stored.objects} objects / ${stored.bytes} bytes, expected ${expected} / ${project.bytes}`,
    );
  }
  return result.seconds;
}
