// Fault injection: the upload of a real Blender project plus large cache files (multipart) through a
// proxy that breaks about 15 % of S3 requests (5xx, connection resets before and during the body,
// lost answers, truncated downloads, slow answers) still completes; every blob in the bucket then holds
// exactly its bytes, no multipart upload is left open, and the job's tree materialises through the
// same faulty link with every file verified.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { makeProject } from './helpers/projects.js';
import { localAwsEnv, startS3Proxy, startS3rver } from './fakes/s3-proxy/proxy.js';
import { probeBlend } from '../daemon/src/render/blender.js';
import { createS3 } from '../daemon/src/store/s3.js';
import { S3ObjectStore } from '../daemon/src/store/s3-store.js';
import { materializeProject } from '../daemon/src/project/materialize.js';
import type { Manifest } from '../daemon/src/project/manifest.js';
import { storedBytes } from './helpers/stored-blob.js';

const BUCKET = 'skyfarm-faults';
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test(
  'the upload survives a link that fails 25 % of requests',
  { skip: blenderSkip, timeout: 90_000 },
  async (t) => {
    const dir = t.testdir({});
    const project = await makeProject(join(dir, 'work'));
    // A baked cache beside the scene: two files large enough for multipart (3 parts of 8 MiB), and
    // 60 small ones, so there are enough requests for the faults to land on every kind of call.
    const cacheDir = join(project.root, 'cache');
    await mkdir(cacheDir, { recursive: true });
    const extra: string[] = [];
    for (const [name, size] of [
      ['big_a.vdb', 20 * MiB],
      ['big_b.vdb', 17 * MiB + 123],
    ] as const) {
      await writeFile(join(cacheDir, name), randomBytes(size));
      extra.push(join(cacheDir, name));
    }
    for (let i = 0; i < 60; i++) {
      await writeFile(
        join(cacheDir, `frame_${String(i).padStart(4, '0')}.bphys`),
        randomBytes(1000 + i * 97),
      );
      extra.push(join(cacheDir, `frame_${String(i).padStart(4, '0')}.bphys`));
    }
    const started = Date.now();
    const probe = await probeBlend(blenderCommand, project.blend);
    t.comment(`probe ${Date.now() - started} ms`);
    const dependencies = [
      ...probe.dependencies,
      ...extra.map((path) => ({ path, kind: 'cache', relative: true, missing: false })),
    ];

    const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
    t.teardown(() => s3rver.close());
    const proxy = await startS3Proxy(s3rver.endpoint, {
      faults: { rate: 0.15, seed: 2, slowMs: [100, 600] },
    });
    t.teardown(() => proxy.close());
    const daemon = await startTestDaemon(t, {
      stateDir: join(dir, 'home'),
      env: { ...localAwsEnv(proxy.endpoint), SKYFARM_BLENDER: blenderCommand },
    });
    const client = await connectTestClient(t, daemon);

    const result = await client.request('project.upload', {
      blendFile: project.blend,
      bucket: BUCKET,
      dependencies,
    });
    t.comment(`upload ${Date.now() - started} ms`);
    const uploadFaults = { ...proxy.stats.faults };
    t.ok(
      Object.values(uploadFaults).some((n) => (n ?? 0) > 0),
      `the upload met faults: ${JSON.stringify(uploadFaults)} in ${proxy.stats.requests} requests`,
    );
    t.ok((proxy.stats.byOp.UploadPart ?? 0) >= 6, 'the large files went multipart');
    t.ok(proxy.stats.requests < 400, `bounded: ${proxy.stats.requests} requests`);
    t.equal(result.files, 14 + extra.length);
    t.same(result.missing, [project.missing]);

    // Check the bucket itself, not through the proxy.
    const direct = createS3({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: s3rver.endpoint,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    const manifest = (await new S3ObjectStore(direct).getJson<Manifest>(result.manifest.key))!;
    t.equal(Object.keys(manifest.files).length, result.files);
    let verified = 0;
    for (const entry of new Map(Object.values(manifest.files).map((e) => [e.sha256, e])).values()) {
      const bytes = (await storedBytes(direct, entry)) ?? Buffer.alloc(0);
      if (sha256(bytes) === entry.sha256 && bytes.length === entry.size) verified += 1;
      else t.fail(`cas/${entry.sha256} holds ${bytes.length} bytes hashing to ${sha256(bytes)}`);
    }
    t.equal(verified, result.blobsUploaded, `every one of the ${verified} blobs holds exactly its bytes`);
    t.same(
      proxy.uploads().filter((u) => u.state === 'open'),
      [],
      'no multipart upload left open (ListMultipartUploads would show none)',
    );

    // Download through the same faulty link: truncated bodies and resets are retried, bytes verified.
    const projectDir = join(dir, 'job', 'project');
    await materializeProject(
      new S3ObjectStore(
        createS3({
          bucket: BUCKET,
          region: 'us-east-1',
          endpoint: proxy.endpoint,
          credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        }),
      ),
      manifest,
      projectDir,
    );
    for (const [path, entry] of Object.entries(manifest.files)) {
      const bytes = await readFile(join(projectDir, path));
      if (sha256(bytes) !== entry.sha256) t.fail(`materialised ${path} is wrong`);
    }
    t.pass(`all ${Object.keys(manifest.files).length} files materialised intact`);
    t.ok(
      (proxy.stats.faults.truncate ?? 0) + (proxy.stats.faults.reset ?? 0) > 0,
      'downloads met faults too',
    );
    const faults = proxy.stats.faults;
    const injected = Object.values(faults).reduce((a, b) => a + (b ?? 0), 0);
    t.ok(
      injected >= 5,
      `faults were injected: ${JSON.stringify(faults)} in ${proxy.stats.requests} requests`,
    );
    t.ok(Object.keys(faults).length >= 3, 'of several kinds');
  },
);
