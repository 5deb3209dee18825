// `project.upload` of a real Blender-made multi-folder project to S3 (s3rver behind the counting proxy,
// no faults here): every dependency found and the missing one reported; the first upload sends every
// blob (the small ones together in one pack), an unchanged re-upload sends none, a changed texture
// sends only itself, blobs whose pack vanished from the bucket are sent again; the materialised tree renders in Blender with every path resolved
// (the file outside the project through its remap) after the originals were moved away.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventMap, ProjectUploadResult } from '../protocol/generated/protocol.js';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';
import { blenderSkip, blenderCommand, readPng } from './helpers/scenes.js';
import { makeProject, writePng } from './helpers/projects.js';
import { localAwsEnv, startS3Proxy, startS3rver } from './fakes/s3-proxy/proxy.js';
import { createS3 } from '../daemon/src/store/s3.js';
import { S3ObjectStore } from '../daemon/src/store/s3-store.js';
import { materializeProject, remapsInto } from '../daemon/src/project/materialize.js';
import type { Manifest } from '../daemon/src/project/manifest.js';
import { renderChunk } from '../daemon/src/render/blender.js';
import { storedBytes } from './helpers/stored-blob.js';

const BUCKET = 'skyfarm-upload-test';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test('upload a real project to S3, incrementally', { skip: blenderSkip, timeout: 90_000 }, async (t) => {
  const dir = t.testdir({});
  const project = await makeProject(join(dir, 'work'));
  const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const proxy = await startS3Proxy(s3rver.endpoint);
  t.teardown(() => proxy.close());
  const direct = createS3({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint: s3rver.endpoint,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const daemon = await startTestDaemon(t, {
    stateDir: join(dir, 'home'),
    env: { ...localAwsEnv(proxy.endpoint), SKYFARM_BLENDER: blenderCommand },
  });
  const client = await connectTestClient(t, daemon);
  const progress: Array<EventMap['upload.progress']> = [];
  client.onEvent((event, data) => {
    if (event === 'upload.progress') progress.push(data as EventMap['upload.progress']);
  });
  const upload = () =>
    client.request('project.upload', { blendFile: project.blend, backend: 'aws', bucket: BUCKET });
  const blobPuts = () =>
    proxy.stats.log.filter(
      (r) => r.op === 'PutObject' && (r.key.startsWith('cas/') || r.key.startsWith('packs/')),
    ).length;
  /** A blob's bytes as stored: its own object, or its range of its pack. */

  // 1. First upload: everything.
  const first = await upload();
  const f = project.files;
  const expected = {
    'scenes/shot 01 é.blend': project.blend,
    'textures/Wood Grain.png': f.woodGrain,
    'textures/wood grain.png': f.woodGrainLower,
    'textures/größe ü.png': f.unicode,
    'textures/udim/skin.1001.png': f.udim[0]!,
    'textures/udim/skin.1002.png': f.udim[1]!,
    'textures/udim/skin.1011.png': f.udim[2]!,
    'textures/seq/frame_0001.png': f.sequence[0]!,
    'textures/seq/frame_0002.png': f.sequence[1]!,
    'textures/seq/frame_0003.png': f.sequence[2]!,
    'pbr_node/lib.blend': f.library,
    'pbr_node/tex/wood.png': f.libraryTexture,
    'sounds/beep.wav': f.sound,
    [`_external${f.outside}`]: f.outside,
  };
  t.equal(first.files, Object.keys(expected).length, 'every dependency, and only those');
  t.same(first.missing, [project.missing], 'the missing texture is reported');
  t.match(first.manifest, {
    key: `manifests/${first.manifest.sha256}.json`,
    blend: 'scenes/shot 01 é.blend',
    root: project.root,
    remaps: { [project.root]: '.', [project.outside]: `_external${project.outside}` },
  });
  const manifest = (await new S3ObjectStore(direct).getJson<Manifest>(first.manifest.key))!;
  t.ok(manifest, 'the manifest is in the bucket');
  t.same(Object.keys(manifest.files).sort(), Object.keys(expected).sort(), 'tree paths as expected');
  let total = 0;
  for (const [path, source] of Object.entries(expected)) {
    const bytes = await readFile(source);
    total += bytes.length;
    t.equal(manifest.files[path]?.sha256, sha256(bytes), `${path}: hash of the user's file`);
  }
  const blobs = new Set(Object.values(manifest.files).map((e) => e.sha256));
  t.equal(first.bytesTotal, total);
  t.equal(first.blobsUploaded, blobs.size, 'first upload sends every blob');
  t.equal(first.bytesUploaded, total, 'and every byte (the textures are all different)');
  const entries = Object.values(manifest.files);
  const packs = new Set(entries.flatMap((e) => (e.pack ? [e.pack] : [])));
  const large = new Set(entries.filter((e) => e.size > 1024 * 1024).map((e) => e.sha256));
  t.same(
    entries.filter((e) => (e.pack === undefined) !== e.size > 1024 * 1024).map((e) => e.sha256),
    [],
    'blobs up to 1 MiB are in packs, larger ones are objects of their own',
  );
  t.equal(packs.size, 1, 'the small files fit one pack');
  t.equal(blobPuts(), packs.size + large.size, 'one PUT per pack and per large blob');
  for (const entry of entries) {
    t.equal(
      sha256((await storedBytes(direct, entry))!),
      entry.sha256,
      `${entry.pack ? `packs/${entry.pack.slice(0, 12)}… at ${entry.offset}` : `cas/${entry.sha256.slice(0, 12)}…`} holds exactly the blob's bytes`,
    );
  }
  const last = progress.at(-1);
  t.match(last, {
    jobId: null,
    filesDone: first.files,
    filesTotal: first.files,
    bytesDone: total,
    bytesTotal: total,
  });
  t.ok(
    progress.every((p, i) => i === 0 || p.bytesDone >= progress[i - 1]!.bytesDone),
    'upload.progress bytes only grow',
  );

  // 2. Unchanged: no blob bytes, nothing re-hashed; the known-blob record answers (seen minutes ago).
  proxy.resetStats();
  const second = await upload();
  t.match(second, { bytesUploaded: 0, blobsUploaded: 0, filesHashed: 0, files: first.files });
  t.equal(second.manifest.sha256, first.manifest.sha256, 'the same manifest');
  t.equal(blobPuts(), 0, 'no blob PUT');
  t.same(
    proxy.stats.log.map((r) => r.op),
    [],
    'unchanged re-upload: no request (blobs seen and the same manifest written minutes ago are not sent again)',
  );

  // 3. One texture changed: only that blob.
  await writePng(f.woodGrain, 99);
  const changed = await readFile(f.woodGrain);
  proxy.resetStats();
  const third = await upload();
  t.match(third, { blobsUploaded: 1, bytesUploaded: changed.length });
  // The daemon's watcher may have re-hashed the texture in the background already (that is its job).
  t.ok(third.filesHashed <= 1, `at most the changed file is hashed (${third.filesHashed})`);
  const sent = proxy.stats.log.filter(
    (r) => r.op === 'PutObject' && (r.key.startsWith('cas/') || r.key.startsWith('packs/')),
  );
  t.same(
    sent.map((r) => r.key),
    [`packs/${sha256(changed)}`],
    'the only thing sent is a pack of the changed texture alone',
  );

  // 4. Blobs that vanished from the bucket (their pack deleted by hand) are found missing and sent
  // again, once the record is older than the trust window (here: a daemon on the same state that
  // trusts nothing).
  const [firstPack] = [...packs];
  const inFirstPack = entries.filter(
    (e) => e.pack === firstPack && e.sha256 !== manifest.files['textures/Wood Grain.png']!.sha256,
  );
  await direct.delete(`packs/${firstPack}`);
  await daemon.stop();
  const strictDaemon = await startTestDaemon(t, {
    stateDir: join(dir, 'home'),
    env: { ...localAwsEnv(proxy.endpoint), SKYFARM_BLENDER: blenderCommand, SKYFARM_BLOB_TRUST_SECONDS: '0' },
  });
  const strictClient = await connectTestClient(t, strictDaemon);
  proxy.resetStats();
  const fourth = await strictClient.request('project.upload', {
    blendFile: project.blend,
    backend: 'aws',
    bucket: BUCKET,
  });
  const vanishedBytes = new Map(inFirstPack.map((e) => [e.sha256, e.size]));
  t.match(fourth, {
    blobsUploaded: vanishedBytes.size,
    bytesUploaded: [...vanishedBytes.values()].reduce((a, b) => a + b, 0),
    packsUploaded: 1,
    filesHashed: 0,
  });
  t.ok(
    (proxy.stats.byOp.ListObjects ?? 0) <= 2,
    `presence confirmed with a listing of packs/ (and of cas/ for large blobs): ${proxy.stats.byOp.ListObjects}`,
  );
  const unicodeEntry =
    fourth.manifest &&
    (await new S3ObjectStore(direct).getJson<Manifest>(fourth.manifest.key))!.files['textures/größe ü.png']!;
  t.not(unicodeEntry.pack, firstPack, 'a vanished blob is in a new pack');
  t.equal(
    sha256((await storedBytes(direct, unicodeEntry))!),
    sha256(await readFile(f.unicode)),
    'the vanished blob is back',
  );

  // 5. The job's tree, materialised from the bucket, renders with every path resolved.
  const finalManifest = (await new S3ObjectStore(direct).getJson<Manifest>(fourth.manifest.key))!;
  const projectDir = join(dir, 'job', 'project');
  const blend = await materializeProject(new S3ObjectStore(direct), finalManifest, projectDir);
  for (const [path, entry] of Object.entries(finalManifest.files)) {
    t.equal(sha256(await readFile(join(projectDir, path))), entry.sha256, `materialised ${path}`);
  }
  await rename(project.base, `${project.base}-moved`); // nothing may still resolve to the originals
  const lines: string[] = [];
  const render = await renderChunk({
    blender: blenderCommand,
    blendFile: blend,
    scene: 'Scene',
    frames: [1],
    outputDir: join(dir, 'job', 'output'),
    filePattern: 'frame_####',
    remaps: remapsInto(finalManifest, projectDir),
    onEvent: () => undefined,
    onLine: (line) => lines.push(line),
  });
  t.same(render.done, [1], `frame rendered (${render.failed.map((x) => x.message).join('; ')})`);
  await readPng(join(dir, 'job', 'output', 'frame_0001.png'));
  t.same(
    lines.filter((l) => l.startsWith('SKYFARM_MISSING')),
    [`SKYFARM_MISSING ${join(projectDir, 'textures', 'missing.png')}`],
    'only the texture that was missing all along is missing in the job folder',
  );
  t.ok(
    lines.includes(`SKYFARM_REMAP ${f.outside} -> ${join(projectDir, '_external', f.outside)}`),
    'the texture outside the project was remapped into _external/',
  );
});

t.test('--strict refuses before anything is uploaded', { skip: blenderSkip, timeout: 90_000 }, async (t) => {
  const dir = t.testdir({});
  const project = await makeProject(join(dir, 'work'));
  const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const proxy = await startS3Proxy(s3rver.endpoint);
  t.teardown(() => proxy.close());
  const daemon = await startTestDaemon(t, {
    stateDir: join(dir, 'home'),
    env: { ...localAwsEnv(proxy.endpoint), SKYFARM_BLENDER: blenderCommand },
  });
  const client = await connectTestClient(t, daemon);
  const error = await client
    .request('project.upload', { blendFile: project.blend, bucket: BUCKET, strict: true })
    .then(
      (result: ProjectUploadResult) => result,
      (e: unknown) => e as Error & { code?: string },
    );
  t.match(error, { code: 'MISSING_DEPENDENCIES', message: /missing\.png/ });
  t.equal(proxy.stats.requests, 0, 'not one request reached S3');
});
