// Local stand-ins for the AWS services the Batch pipeline uses, and how to run the worker for real:
// s3rver as S3, the SES/Logs fakes, and `node --import tsx infra/worker/main.ts` as the container.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { makeS3rverPutsAtomic } from '../s3rver/atomic-puts.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WORKER_ENTRY = path.join(REPO_ROOT, 'infra', 'worker', 'main.ts');

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;

export interface LocalS3 {
  endpoint: string;
  bucket: string;
  close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 (port 0) with one bucket, storing under `dir`. */
export async function startS3(dir: string, bucket = 'skyfarm-test'): Promise<LocalS3> {
  makeS3rverPutsAtomic();
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket }],
    allowMismatchedSignatures: true,
  });
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    close: () => server.close(),
  };
}

export interface Endpoints {
  s3: string;
  batch?: string;
  ses?: string;
  logs?: string;
  ecr?: string;
  codebuild?: string;
  pricing?: string;
  ec2?: string;
  ecs?: string;
}

/** The environment every component (daemon, worker, SDK clients in tests) gets: dummy keys, local endpoints. */
export function awsEnv(endpoints: Endpoints): NodeJS.ProcessEnv {
  return {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    // Any AWS service without a fake of its own here (Pricing, EC2, ECS when a test runs none) goes
    // to a closed loopback port: a test never reaches real AWS.
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_ENDPOINT_URL_S3: endpoints.s3,
    ...(endpoints.batch ? { AWS_ENDPOINT_URL_BATCH: endpoints.batch } : {}),
    ...(endpoints.ses ? { AWS_ENDPOINT_URL_SESV2: endpoints.ses } : {}),
    ...(endpoints.logs ? { AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: endpoints.logs } : {}),
    ...(endpoints.ecr ? { AWS_ENDPOINT_URL_ECR: endpoints.ecr } : {}),
    ...(endpoints.codebuild ? { AWS_ENDPOINT_URL_CODEBUILD: endpoints.codebuild } : {}),
    ...(endpoints.pricing ? { AWS_ENDPOINT_URL_PRICING: endpoints.pricing } : {}),
    ...(endpoints.ec2 ? { AWS_ENDPOINT_URL_EC2: endpoints.ec2 } : {}),
    ...(endpoints.ecs ? { AWS_ENDPOINT_URL_ECS: endpoints.ecs } : {}),
  };
}

/** Environment of the test process without any AWS_* settings of the machine it runs on. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_')));
}

export interface WorkerRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  lines: string[];
}

export interface WorkerProcess {
  pid: number;
  done: Promise<WorkerRun>;
  kill(signal?: NodeJS.Signals): void;
  onLine(listener: (line: string) => void): void;
}

/** Starts the real worker program as a child process (what a Batch container runs). */
export function spawnWorker(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 110_000): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER_ENTRY, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const listeners: Array<(line: string) => void> = [];
  let pending = '';
  const onData = (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const listener of listeners) listener(line);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<WorkerRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pending) lines.push(pending);
      resolve({ code, signal, output: lines.join('\n'), lines });
    });
  });
  return {
    pid: child.pid ?? -1,
    done,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    onLine: (listener) => void listeners.push(listener),
  };
}

export function runWorkerProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs?: number,
): Promise<WorkerRun> {
  return spawnWorker(args, env, timeoutMs).done;
}
