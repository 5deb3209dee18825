// A local S3 (s3rver in a child process on 127.0.0.1) for the upload metrics, the environment that
// points the SDK and awscli at it, and bucket housekeeping. Never any other endpoint.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { BenchContext } from './types.js';
import { stopChild } from './proc.js';

export interface LocalS3 {
  endpoint: string;
  /** AWS_* variables for the SDK (the daemon) and for awscli: keys, region, endpoint, no config files. */
  env: NodeJS.ProcessEnv;
  createBucket(name: string): Promise<void>;
  /** Objects and bytes under a prefix. */
  usage(bucket: string, prefix: string): Promise<{ objects: number; bytes: number }>;
}

export function startLocalS3(ctx: BenchContext): Promise<LocalS3> {
  return ctx.shared('s3rver', async () => {
    const dir = path.join(ctx.tmp, 's3rver');
    mkdirSync(dir, { recursive: true });
    const awsDir = path.join(ctx.tmp, 'aws-config');
    mkdirSync(awsDir, { recursive: true });
    writeFileSync(path.join(awsDir, 'config'), '');
    writeFileSync(path.join(awsDir, 'credentials'), '');
    const child = spawn(
      process.execPath,
      [
        '--openssl-legacy-provider',
        '--import',
        'tsx',
        path.join(ctx.repoRoot, 'bench', 'servers', 's3rver.ts'),
        dir,
      ],
      { cwd: ctx.repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    ctx.cleanup(() => stopChild(child));
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${err}`)), 30_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /S3RVER_READY (\d+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited ${code}: ${err}`));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const env: NodeJS.ProcessEnv = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_CONFIG_FILE: path.join(awsDir, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(awsDir, 'credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PAGER: '',
    };
    const client = new S3Client({
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    ctx.cleanup(() => client.destroy());
    return {
      endpoint,
      env,
      createBucket: async (name: string) => {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      },
      usage: async (bucket: string, prefix: string) => {
        let objects = 0;
        let bytes = 0;
        let token: string | undefined;
        do {
          const page = await client.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
          );
          for (const item of page.Contents ?? []) {
            objects += 1;
            bytes += item.Size ?? 0;
          }
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
        return { objects, bytes };
      },
    };
  });
}

/**
 * The process environment without the machine's AWS_* variables, plus `extra`. Every AWS service
 * that `extra` does not point somewhere goes to a closed loopback port (AWS_ENDPOINT_URL), so nothing
 * the bench starts can reach real AWS.
 */
export function isolatedEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('AWS_')) env[key] = value;
  return {
    ...env,
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  };
}
