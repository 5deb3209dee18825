// Test wiring: the fake CloudFormation endpoint, an AWS environment pointing the real SDK clients at
// it (dummy credentials, a region, no instance metadata), and a recorder for streamed stack events.
import { DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StackEvent, EventName, EventMap } from '../../../protocol/generated/protocol.js';
import type { Notify } from '../../../daemon/src/notify.js';
import { startFakeCloudFormation, type FakeCloudFormation, type FakeOptions } from './server.js';
import { makeS3rverPutsAtomic } from '../s3rver/atomic-puts.js';

export const REGION = 'eu-west-1';
export const ACCESS_KEY_ID = 'AKIDSKYFARMTEST';
export const SECRET = 'skyfarm-test-secret-never-printed';

/** Milliseconds limits that keep tests fast but still exercise polling. */
export const FAST_LIMITS = {
  pollIntervalMs: 10,
  busyWaitMs: 3_000,
  operationTimeoutMs: 20_000,
  changeSetTimeoutMs: 5_000,
};

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Replaces every AWS_* variable of this test process (the SDK's credential chain reads process.env)
 * and restores them at teardown. Shared config files point into an empty temporary folder.
 */
export function awsEnv(t: Teardown, vars: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const saved = Object.fromEntries(
    Object.keys(process.env)
      .filter((k) => k.startsWith('AWS_'))
      .map((k) => [k, process.env[k]]),
  );
  const home = mkdtempSync(join(tmpdir(), 'skyfarm-aws-'));
  for (const k of Object.keys(saved)) delete process.env[k];
  const base: Record<string, string> = {
    AWS_CONFIG_FILE: join(home, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    // Safety net: a service not pointed at a local fake fails on a closed loopback port instead of
    // resolving a real AWS host name.
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  };
  for (const [k, v] of Object.entries({ ...base, ...vars })) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, saved);
    rmSync(home, { recursive: true, force: true });
  });
  return process.env;
}

export async function startFake(t: Teardown, options: FakeOptions = {}): Promise<FakeCloudFormation> {
  const fake = await startFakeCloudFormation({ stepMs: 3, ...options });
  t.teardown(() => fake.close());
  return fake;
}

/** Environment for the real SDK clients talking to `fake`. */
export function fakeAwsEnv(
  t: Teardown,
  fake: FakeCloudFormation,
  extra: Record<string, string | undefined> = {},
) {
  return awsEnv(t, {
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET,
    AWS_ENDPOINT_URL_CLOUDFORMATION: fake.url,
    ...extra,
  });
}

export interface Recorder {
  notify: Notify;
  events: StackEvent[];
  all: Array<{ event: EventName; data: unknown }>;
}

export function recorder(): Recorder {
  const events: StackEvent[] = [];
  const all: Array<{ event: EventName; data: unknown }> = [];
  const notify = <E extends EventName>(event: E, data: EventMap[E]) => {
    all.push({ event, data });
    if (event === 'stack.event') events.push(data as StackEvent);
  };
  return { notify: notify as Notify, events, all };
}

/** "Logical STATUS" lines, handy for asserting order. */
export function lines(events: StackEvent[]): string[] {
  return events.map((e) => `${e.resource} ${e.status}`);
}

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

/** s3rver (an independent S3 emulator) on 127.0.0.1, port 0; it wants access key S3RVER / secret S3RVER. */
export async function startS3rver(t: Teardown): Promise<{ url: string }> {
  makeS3rverPutsAtomic();
  const S3rver = createRequire(import.meta.url)('s3rver') as new (
    options: Record<string, unknown>,
  ) => S3rverInstance;
  const directory = mkdtempSync(join(tmpdir(), 'skyfarm-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  const { port } = await server.run();
  t.teardown(async () => {
    await server.close();
    rmSync(directory, { recursive: true, force: true });
  });
  return { url: `http://127.0.0.1:${port}` };
}

/**
 * s3rver, an S3 client on it (destroyed at teardown), and the fake CloudFormation deleting a stack's
 * bucket in s3rver when the stack deletes its Bucket resource: S3 refuses that for a non-empty bucket,
 * just as CloudFormation's delete would fail.
 */
export async function startFakeWithS3(
  t: Teardown,
): Promise<{ s3rver: { url: string }; s3: S3Client; fake: FakeCloudFormation }> {
  const s3rver = await startS3rver(t);
  const s3 = new S3Client({
    region: REGION,
    endpoint: s3rver.url,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  t.teardown(() => s3.destroy());
  const fake = await startFake(t, {
    onDeleteResource: async (r) => {
      if (r.type === 'AWS::S3::Bucket') await s3.send(new DeleteBucketCommand({ Bucket: r.physicalId }));
    },
  });
  return { s3rver, s3, fake };
}
