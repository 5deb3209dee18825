// Cancel: an upload aborted while multipart parts are in flight stops them, aborts the multipart
// upload before it returns (no orphan: ListMultipartUploads shows none), and reports CANCELED; a client
// that goes away mid-upload (Ctrl-C on `skyfarm upload`) cancels the daemon's upload the same way; the
// local store leaves no partial blob. Progress events carry files, bytes, rate and ETA.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventMap } from '../protocol/generated/protocol.js';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';
import { localAwsEnv, startS3Proxy, startS3rver } from './fakes/s3-proxy/proxy.js';
import { createS3 } from '../daemon/src/store/s3.js';
import { S3ObjectStore } from '../daemon/src/store/s3-store.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';
import { uploadProject } from '../daemon/src/project/upload.js';

const BUCKET = 'skyfarm-cancel';
const MiB = 1024 * 1024;

async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function fixture(dir: string) {
  const root = join(dir, 'proj');
  await mkdir(join(root, 'cache'), { recursive: true });
  const blend = join(root, 'shot.blend');
  await writeFile(blend, Buffer.concat([Buffer.from('BLENDER-v300'), randomBytes(1000)]));
  const big = join(root, 'cache', 'smoke.vdb');
  await writeFile(big, randomBytes(48 * MiB));
  const small = join(root, 'cache', 'small.bphys');
  await writeFile(small, randomBytes(5000));
  return { root, blend, big, dependencies: [big, small].map((path) => ({ path, relative: true })) };
}

t.test(
  'abort while parts are in flight: CANCELED, and no multipart upload left',
  { timeout: 60_000 },
  async (t) => {
    const dir = t.testdir({});
    const project = await fixture(dir);
    const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
    t.teardown(() => s3rver.close());
    const proxy = await startS3Proxy(s3rver.endpoint);
    t.teardown(() => proxy.close());
    proxy.setDelay((op) => (op === 'UploadPart' ? 400 : 0)); // a slow link: parts take a while
    const s3 = createS3({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: proxy.endpoint,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    const controller = new AbortController();
    const progress: Array<EventMap['upload.progress']> = [];
    const upload = uploadProject({
      jobId: 'j_test',
      blendFile: project.blend,
      sourceBlendFile: project.blend,
      projectRoot: project.root,
      dependencies: project.dependencies,
      strict: false,
      store: new S3ObjectStore(s3),
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: (p) => progress.push(p),
    });
    const outcome = upload.then(
      () => 'finished',
      (error: Error & { code?: string }) => error,
    );
    await until('two parts on the wire', () => (proxy.stats.byOp.UploadPart ?? 0) >= 2);
    controller.abort();
    const error = await outcome;
    t.match(error, { code: 'CANCELED' }, 'the upload reports CANCELED');
    const partsAtCancel = proxy.stats.byOp.UploadPart ?? 0;
    t.same(
      proxy.uploads().map((u) => u.state),
      ['aborted'],
      'by the time it returned, its multipart upload was aborted',
    );
    t.same(await s3.listMultipartUploads('cas/'), [], 'ListMultipartUploads shows no orphan');
    await sleep(1000);
    t.equal(proxy.stats.byOp.UploadPart ?? 0, partsAtCancel, 'no part is sent after the cancel');
    t.ok(partsAtCancel < 6, `the upload stopped early (${partsAtCancel} of 6 parts started)`);

    const first = progress[0];
    t.match(first, { jobId: 'j_test', filesDone: 0, filesTotal: 3, bytesDone: 0 });
    t.ok(
      progress.some((p) => p.bytesDone > 0 && p.bytesPerSecond > 0 && p.etaSeconds !== null),
      'progress reports bytes, a rate and an ETA while sending',
    );
  },
);

t.test('a client that disconnects mid-upload cancels the daemon upload', { timeout: 60_000 }, async (t) => {
  const dir = t.testdir({});
  const project = await fixture(dir);
  const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const proxy = await startS3Proxy(s3rver.endpoint);
  t.teardown(() => proxy.close());
  proxy.setDelay((op) => (op === 'UploadPart' ? 400 : 0));
  const daemon = await startTestDaemon(t, { stateDir: join(dir, 'home'), env: localAwsEnv(proxy.endpoint) });
  const client = await connectTestClient(t, daemon);
  const request = client
    .request('project.upload', {
      blendFile: project.blend,
      bucket: BUCKET,
      dependencies: project.dependencies,
    })
    .then(
      () => 'finished',
      (error: Error & { code?: string }) => error,
    );
  await until('a part on the wire', () => (proxy.stats.byOp.UploadPart ?? 0) >= 1);
  client.close(); // what Ctrl-C on `skyfarm upload` does
  t.match(await request, { code: 'DAEMON_UNREACHABLE' }, 'the client sees its connection go');
  await until('the daemon to abort the multipart upload', () =>
    proxy.uploads().every((u) => u.state !== 'open'),
  );
  t.same(
    proxy.uploads().map((u) => u.state),
    ['aborted'],
    'the multipart upload was aborted, not left behind',
  );
  const parts = proxy.stats.byOp.UploadPart ?? 0;
  await sleep(1000);
  t.equal(proxy.stats.byOp.UploadPart ?? 0, parts, 'and nothing more is sent');
  t.notOk(
    proxy.stats.log.some((r) => r.op === 'PutObject' && r.key.startsWith('manifests/')),
    'no manifest was written for the canceled upload',
  );
});

t.test('the local store leaves no partial blob behind', { timeout: 60_000 }, async (t) => {
  const dir = t.testdir({});
  const project = await fixture(dir);
  const storeDir = join(dir, 'store');
  const controller = new AbortController();
  const error = await uploadProject({
    jobId: null,
    blendFile: project.blend,
    sourceBlendFile: project.blend,
    projectRoot: project.root,
    dependencies: project.dependencies,
    strict: false,
    store: new LocalObjectStore(storeDir),
    signal: controller.signal,
    progressIntervalMs: 0,
    onProgress: (p) => {
      if (p.bytesDone > 0) controller.abort();
    },
  }).then(
    () => 'finished',
    (e: Error & { code?: string }) => e,
  );
  t.match(error, { code: 'CANCELED' });
  const leftovers: string[] = [];
  for (const shard of await readdir(join(storeDir, 'cas')).catch(() => [])) {
    for (const name of await readdir(join(storeDir, 'cas', shard)))
      if (name.endsWith('.part')) leftovers.push(name);
  }
  t.same(leftovers, [], 'no .part file in the store');
});
