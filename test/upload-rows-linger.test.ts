// An artist's re-submit minutes after the last one finds the last upload's hash-cache and known-blob
// rows still in memory (they linger for the trust window): no row is read from SQLite again, and yet
// nothing answered from memory is stale — a file saved since is hashed again, a blob the record was
// told is gone is checked with the store, rows pruned from the record are not used, and once the
// window passes the rows are read from SQLite again.
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase } from '../daemon/src/db/database.js';
import { HashCache } from '../daemon/src/project/hash-cache.js';
import { KnownBlobs } from '../daemon/src/project/known-blobs.js';
import { uploadProject } from '../daemon/src/project/upload.js';
import { ManifestDigests } from '../daemon/src/project/manifest-digests.js';
import { serializeManifest } from '../daemon/src/project/manifest.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';
import { countingDb } from './helpers/counting-db.js';

const FILES = 1500;
const RACY_MS = 150; // past the hash cache's racy window

async function project(dir: string) {
  const root = join(dir, 'project');
  await mkdir(join(root, 'cache'), { recursive: true });
  const blend = join(root, 'shot.blend');
  await writeFile(blend, Buffer.concat([Buffer.from('BLENDER-v300'), randomBytes(500)]));
  const paths: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const path = join(root, 'cache', `frame_${String(i).padStart(5, '0')}.bphys`);
    await writeFile(path, `frame ${i}`);
    paths.push(path);
  }
  return { root, blend, paths };
}

function setup(t: Test, dir: string, lingerMs: number, clock = { now: Date.now() }) {
  const real = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => real.close());
  const { db, reads } = countingDb(real);
  const cache = new HashCache(db, { lingerMs });
  const known = new KnownBlobs(db, { lingerMs, now: () => clock.now, maxAgeMs: 3_600_000 });
  const digests = new ManifestDigests({ lingerMs });
  const storeDir = join(dir, 'store');
  const store = new LocalObjectStore(storeDir);
  const total = () => [...reads.values()].reduce((a, b) => a + b, 0);
  return { cache, known, digests, store, storeDir, reads, total, clock };
}

t.test('a re-submit within the window reads no rows, and misses no change', async (t) => {
  const dir = t.testdir({});
  const p = await project(dir);
  const s = setup(t, dir, 60_000);
  const upload = () =>
    uploadProject({
      jobId: null,
      blendFile: p.blend,
      sourceBlendFile: p.blend,
      projectRoot: p.root,
      dependencies: p.paths.map((path) => ({ path, relative: true })),
      strict: true,
      store: s.store,
      hasher: s.cache,
      known: s.known,
      trustKnownMs: 600_000,
      digests: s.digests,
    });
  const cold = await upload();
  s.cache.flush();
  await sleep(RACY_MS);

  s.reads.clear();
  const again = await upload();
  t.equal(s.total(), 0, 'no row read from SQLite: the last upload left them in memory');
  t.equal(again.filesHashed, 0, 'nothing hashed');
  t.equal(again.blobsTrusted, FILES + 1, 'every blob trusted');
  t.equal(again.manifestSha256, cold.manifestSha256, 'the same manifest');
  t.equal(
    serializeManifest(again.manifest).sha256,
    again.manifestSha256,
    'the remembered hash is the hash of the manifest returned',
  );

  // Saved since: the row in memory was never trusted over the file's identity.
  await writeFile(p.paths[3]!, 'saved again');
  await sleep(RACY_MS);
  const changed = await upload();
  t.equal(changed.filesHashed, 1, 'the file saved since is hashed again');
  t.equal(changed.blobsUploaded, 1, 'and its new bytes stored');
  t.not(changed.manifestSha256, cold.manifestSha256, 'a new manifest');
  t.equal(serializeManifest(changed.manifest).sha256, changed.manifestSha256);
  t.equal(
    changed.manifest.files['cache/frame_00003.bphys']?.size,
    'saved again'.length,
    'naming the new bytes',
  );
  s.cache.flush();
  await sleep(RACY_MS);

  // The record told a blob is gone (a vanished blob found by another upload): checked with the store.
  const gone = changed.manifest.files['cache/frame_00004.bphys']!;
  await rm(join(s.storeDir, 'cas', gone.sha256.slice(0, 2), gone.sha256), { force: true });
  s.known.forget(s.store.id ?? 'store', [gone.sha256]);
  s.reads.clear();
  const afterForget = await upload();
  t.equal(afterForget.blobsUploaded, 1, 'the forgotten blob is stored again');
  t.equal(afterForget.filesHashed, 0);
});

t.test('rows pruned from the record are not answered from memory', async (t) => {
  const dir = t.testdir({});
  const p = await project(dir);
  const s = setup(t, dir, 60_000);
  const upload = () =>
    uploadProject({
      jobId: null,
      blendFile: p.blend,
      sourceBlendFile: p.blend,
      projectRoot: p.root,
      dependencies: p.paths.map((path) => ({ path, relative: true })),
      strict: true,
      store: s.store,
      hasher: s.cache,
      known: s.known,
      trustKnownMs: 600_000,
      digests: s.digests,
    });
  await upload();
  s.cache.flush();
  await sleep(RACY_MS);
  s.clock.now += 2 * 3_600_000; // two hours on: past the record's maxAge
  t.equal(s.known.prune(), FILES + 1, 'every blob is pruned from the record');
  s.reads.clear();
  const again = await upload();
  t.ok(s.total() > 0, `the record's rows are read again (${s.total()} reads)`);
  t.equal(again.blobsTrusted, 0, 'no blob is trusted from a pruned row');
  t.ok(again.presenceRequests > 0, 'the store is asked instead');
  t.equal(again.blobsUploaded, 0, 'and has them all');
});

t.test('past the window the rows are read from SQLite again', async (t) => {
  const dir = t.testdir({});
  const p = await project(dir);
  const s = setup(t, dir, 200);
  const upload = () =>
    uploadProject({
      jobId: null,
      blendFile: p.blend,
      sourceBlendFile: p.blend,
      projectRoot: p.root,
      dependencies: p.paths.map((path) => ({ path, relative: true })),
      strict: true,
      store: s.store,
      hasher: s.cache,
      known: s.known,
      trustKnownMs: 600_000,
      digests: s.digests,
    });
  const cold = await upload();
  s.cache.flush();
  await sleep(400);
  s.reads.clear();
  const again = await upload();
  t.ok(s.total() > 0, `rows read again (${s.total()} reads)`);
  t.equal(again.filesHashed, 0, 'from the hash cache in SQLite: nothing hashed');
  t.equal(again.manifestSha256, cold.manifestSha256);
});
