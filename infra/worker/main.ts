#!/usr/bin/env node
// skyfarm-worker copy|render|publish — the program in the Batch containers (see infra/Dockerfile).
// Configuration: SKYFARM_JOB_ID, SKYFARM_BUCKET, SKYFARM_EFS_ROOT (default /mnt/efs), for render
// AWS_BATCH_JOB_ARRAY_INDEX; everything else from jobs/<jobId>/job.json. The exit code is the
// stage's truth: 0 done, 1 failed (a failed frame fails its chunk), 2 misconfigured.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SESv2Client } from '@aws-sdk/client-sesv2';
import { S3Bucket, createS3Client, settingsFromEnv } from '../../daemon/src/batch/bucket.js';
import { readConfig } from './config.js';
import type { WorkerContext } from './context.js';
import { copyStage } from './copy.js';
import { renderStage } from './render.js';
import { publishStage } from './publish.js';
import { sendMail } from './mail.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_CONFIG = 2;

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export async function runWorker(argv: string[], options: RunOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  let config;
  try {
    config = readConfig(argv, env);
  } catch (error) {
    log(`skyfarm-worker: ${(error as Error).message}`);
    return EXIT_CONFIG;
  }
  const s3 = createS3Client(settingsFromEnv(env, 'S3'));
  const ses = new SESv2Client(settingsFromEnv(env, 'SESV2'));
  const ctx: WorkerContext = {
    config,
    bucket: new S3Bucket(s3, config.bucket),
    env,
    signal: options.signal ?? new AbortController().signal,
    log,
    sendMail: (from, to, mail) => sendMail(ses, from, to, mail),
  };
  const started = Date.now();
  log(
    `skyfarm-worker ${config.stage}: job ${config.jobId}, bucket ${config.bucket}, EFS ${config.efsRoot}` +
      (config.arrayIndex !== null ? `, chunk ${config.arrayIndex}` : '') +
      `, attempt ${config.attempt}`,
  );
  try {
    let ok = true;
    if (config.stage === 'copy') await copyStage(ctx);
    else if (config.stage === 'render') ok = (await renderStage(ctx)).failed.length === 0;
    else await publishStage(ctx);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    log(`skyfarm-worker ${config.stage}: ${ok ? 'done' : 'FAILED'} in ${seconds} s`);
    return ok ? EXIT_OK : EXIT_FAILED;
  } catch (error) {
    log(`skyfarm-worker ${config.stage}: FAILED: ${(error as Error).stack ?? String(error)}`);
    return EXIT_FAILED;
  } finally {
    s3.destroy();
    ses.destroy();
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // Batch stops a container with SIGTERM (TerminateJob, spot reclaim): stop Blender, then exit.
  const controller = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      process.stdout.write(`skyfarm-worker: ${signal}, stopping\n`);
      controller.abort(new Error(signal));
    });
  }
  const code = await runWorker(process.argv.slice(2), { signal: controller.signal });
  process.exitCode = code;
}
