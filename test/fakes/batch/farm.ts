// A whole farm on this machine for the AWS-backend tests: s3rver as S3, the fake Batch endpoint
// configured from infra/skyfarm.yaml (running the real worker with a folder as EFS and real Blender),
// the fake SES and CloudWatch Logs, and a daemon pointed at all of them.
import { spawn } from 'node:child_process';
import path from 'node:path';
import pino from 'pino';
import type { Test } from 'tap';
import { startDaemon, type RunningDaemon } from '../../../daemon/src/daemon.js';
import { DaemonClient } from '../../../daemon/src/client/daemon-client.js';
import type { Job } from '../../../protocol/generated/protocol.js';
import { S3Bucket, createS3Client, settingsFromEnv } from '../../../daemon/src/batch/bucket.js';
import { blenderCommand, blenderVersion } from '../../helpers/scenes.js';
import { awsEnv, cleanEnv, REPO_ROOT, startS3, WORKER_ENTRY, type LocalS3 } from './aws-env.js';
import { startFakeBatch, type FakeBatch } from './server.js';
import { farmFromTemplate } from './template.js';
import { startFakeSes, type FakeSes } from '../ses/server.js';
import { startFakeLogs, type FakeLogs } from '../logs/server.js';
import { startFakeEcr, type FakeEcr } from '../ecr/server.js';
import type { CostWorld } from '../../helpers/cost-world.js';
import type { AwsWiringOptions } from '../../../daemon/src/batch/wiring.js';

export interface Farm {
  dir: string;
  efs: string;
  s3: LocalS3;
  bucket: S3Bucket;
  batch: FakeBatch;
  ses: FakeSes;
  logs: FakeLogs;
  /** The worker images' repository (`skyfarm/worker`: the default version's image and the local series'). */
  ecr: FakeEcr;
  /** The daemon's environment (AWS endpoints, the farm bucket). */
  daemonEnv: NodeJS.ProcessEnv;
  startDaemon(stateDir?: string): Promise<RunningDaemon>;
  stateDir: string;
}

export const NOTIFY_FROM = 'farm@example.com';

export async function startFarm(
  t: Test,
  options: {
    maxRunning?: number;
    /** Added to every container's environment (e.g. SKYFARM_BLENDER: a wrapper that holds a frame). */
    workerEnv?: NodeJS.ProcessEnv;
    /**
     * The worker images' tags (default: the default 4.2.3 and the series of the Blender under test,
     * which a job without --blender-version renders in, as a farm set up for the artist's Blender).
     */
    images?: string[];
    /** Prices and instances (test/helpers/cost-world.ts): containers are placed on its fleet, the daemon reads them. */
    cost?: { world: CostWorld; intervalMs?: number };
  } = {},
): Promise<Farm> {
  const dir = t.testdir({});
  const s3 = await startS3(path.join(dir, 's3'));
  t.teardown(() => s3.close());
  const ses = await startFakeSes();
  t.teardown(() => ses.close());
  const logs = await startFakeLogs();
  t.teardown(() => logs.close());
  const series = blenderVersion?.split('.').slice(0, 2).join('.');
  const images = options.images ?? ['4.2.3', ...(series ? [series] : [])];
  const ecr = await startFakeEcr({ repositories: { 'skyfarm/worker': images } });
  t.teardown(() => ecr.close());
  const efs = path.join(dir, 'efs');
  const env = { ...cleanEnv(), ...awsEnv({ s3: s3.endpoint, ses: ses.endpoint, logs: logs.endpoint }) };
  const template = farmFromTemplate({ bucket: s3.bucket, gpu: true });
  const batch = await startFakeBatch({
    queues: template.queues,
    computeEnvironments: template.computeEnvironments,
    jobDefinitions: template.jobDefinitions,
    rules: template.rules,
    hostEnv: { ...env, SKYFARM_EFS_ROOT: efs, SKYFARM_BLENDER: blenderCommand, ...options.workerEnv },
    executables: { 'skyfarm-worker': [process.execPath, '--import', 'tsx', WORKER_ENTRY] },
    cwd: REPO_ROOT,
    maxRunning: options.maxRunning ?? 2,
    tickMs: 40,
    logs,
    ...(options.cost ? { placeContainer: options.cost.world.placeContainer } : {}),
    logGroup: '/skyfarm/skyfarm',
    // A container starts only from an image the fake ECR holds (`<registry>/<repository>:<tag>`).
    imageExists: (image) => {
      const path = image.slice(image.indexOf('/') + 1);
      const colon = path.lastIndexOf(':');
      return ecr.images(path.slice(0, colon)).some((i) => i.tags.includes(path.slice(colon + 1)));
    },
  });
  t.teardown(() => batch.close());
  const client = createS3Client(settingsFromEnv(env, 'S3'));
  t.teardown(() => client.destroy());
  const daemonEnv: NodeJS.ProcessEnv = {
    ...env,
    ...awsEnv({
      s3: s3.endpoint,
      batch: batch.endpoint,
      ses: ses.endpoint,
      logs: logs.endpoint,
      ecr: ecr.endpoint,
      ...(options.cost ? options.cost.world.endpoints : {}),
    }),
    SKYFARM_AWS_BUCKET: s3.bucket,
    SKYFARM_AWS_NOTIFY_FROM: NOTIFY_FROM,
    SKYFARM_BLENDER: blenderCommand,
  };
  const stateDir = path.join(dir, 'home');
  // The daemon reads prices through its own SDK clients, pointed at the cost world's fakes above.
  const cost: AwsWiringOptions['cost'] = options.cost
    ? { intervalMs: options.cost.intervalMs ?? 300 }
    : undefined;
  return {
    dir,
    efs,
    s3,
    bucket: new S3Bucket(client, s3.bucket),
    batch,
    ses,
    logs,
    ecr,
    daemonEnv,
    stateDir,
    startDaemon: (home = stateDir) =>
      startAwsTestDaemon(t, {
        stateDir: home,
        env: daemonEnv,
        runnableWarnMs: 1_500,
        ...(cost ? { cost } : {}),
      }),
  };
}

/**
 * A daemon (port 0) with the AWS backend's poll timing for tests (250/750 ms; a job waiting for
 * capacity is reported after `runnableWarnMs`), stopped at teardown.
 */
export async function startAwsTestDaemon(
  t: Test,
  options: {
    stateDir: string;
    env: NodeJS.ProcessEnv;
    runnableWarnMs: number;
    cost?: AwsWiringOptions['cost'];
  },
): Promise<RunningDaemon> {
  const daemon = await startDaemon({
    stateDir: options.stateDir,
    port: 0,
    env: options.env,
    logger: pino({ level: 'silent' }),
    aws: {
      backend: {
        pollFastMs: 250,
        pollSlowMs: 750,
        runnableWarnMs: options.runnableWarnMs,
        failurePublishTimeoutMs: 60_000,
      },
      ...(options.cost ? { cost: options.cost } : {}),
    },
  });
  t.teardown(() => daemon.stop());
  return daemon;
}

/** Records every job.update of one daemon. */
export async function recordUpdates(
  t: Test,
  daemon: RunningDaemon,
): Promise<{ client: DaemonClient; updates: Job[] }> {
  const client = await DaemonClient.connect({
    stateDir: daemon.paths.root,
    clientName: 'test',
    clientVersion: '1',
  });
  t.teardown(() => client.close());
  const updates: Job[] = [];
  client.onEvent((event, data) => {
    if (event === 'job.update') updates.push(data as Job);
  });
  return { client, updates };
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `skyfarm render <scene> --backend aws <args> --output <output> --wait --json` against the farm's
 * daemon: the job as JSON on stdout once it ended (exit code 0 done, 2 failed).
 */
export function renderAndWait(
  farm: Farm,
  scene: string,
  output: string,
  args: string[] = [],
): Promise<CliRun> {
  return runSkyfarm(
    ['render', scene, '--backend', 'aws', ...args, '--output', output, '--wait', '--json'],
    farm.stateDir,
    farm.dir,
  );
}

/** The real `skyfarm` CLI from source (tsx), against the daemon of `stateDir`. */
export function runSkyfarm(
  args: string[],
  stateDir: string,
  cwd: string,
  timeoutMs = 110_000,
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'daemon/src/cli/main.ts'), ...args],
      {
        cwd,
        env: { ...cleanEnv(), SKYFARM_HOME: stateDir, SKYFARM_PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
