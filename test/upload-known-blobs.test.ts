// The daemon's record of blobs seen in a store stays bounded: entries not confirmed for maxAgeMs are
// forgotten, and beyond maxRows the least recently confirmed go first. A blob that vanished from the
// store is sent again — once the trust window has passed, and also after its record was pruned. Small
// files' bytes are kept from hashing only for a store that sends them.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDatabase } from '../daemon/src/db/database.js';
import { KnownBlobs } from '../daemon/src/project/known-blobs.js';
import { uploadProject, type UploadRequest } from '../daemon/src/project/upload.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';

const DAY = 24 * 60 * 60 * 1000;
const blob = (n: number) => ({ sha256: createHash('sha256').update(String(n)).digest('hex'), size: n });

t.test('entries not confirmed for maxAgeMs are forgotten; beyond maxRows the oldest go', async (t) => {
  const db = openDatabase(join(t.testdir({}), 'state.sqlite'));
  t.teardown(() => db.close());
  let now = Date.UTC(2026, 0, 1);
  const known = new KnownBlobs(db, { maxAgeMs: 30 * DAY, maxRows: 4, pruneEveryMs: 60_000, now: () => now });

  known.markPresent('s3://a', [blob(1), blob(2)]);
  now += 20 * DAY;
  known.markPresent('s3://b', [blob(3)]);
  now += 11 * DAY; // blobs 1 and 2: 31 days unconfirmed; blob 3: 11 days
  known.markPresent('s3://a', [blob(4)]); // prunes (more than pruneEveryMs since the last time)
  t.notOk(known.has('s3://a', blob(1)), 'unconfirmed for 31 days: forgotten');
  t.notOk(known.has('s3://a', blob(2)));
  t.ok(known.has('s3://b', blob(3)), 'confirmed 11 days ago: kept');
  t.ok(known.has('s3://a', blob(4)));

  known.markPresent('s3://a', [blob(5)]);
  known.markPresent('s3://a', [blob(6)]); // within pruneEveryMs: no pruning yet
  now += 1000;
  known.markPresent('s3://a', [blob(7)]);
  t.equal(known.count('s3://a') + known.count('s3://b'), 5, 'over maxRows until the next prune');
  now += 60_000;
  t.equal(known.prune(), 1, 'one entry over maxRows');
  t.notOk(known.has('s3://b', blob(3)), 'the least recently confirmed went first');
  t.same(
    [4, 5, 6, 7].map((n) => known.has('s3://a', blob(n))),
    [true, true, true, true],
  );

  t.equal(known.prune(), 0, 'nothing more to prune');
});

t.test('a blob that vanished from the store is uploaded again', async (t) => {
  const dir = t.testdir({});
  const root = join(dir, 'project');
  await mkdir(join(root, 'textures'), { recursive: true });
  const blend = join(root, 'shot.blend');
  await writeFile(blend, Buffer.concat([Buffer.from('BLENDER-v304'), randomBytes(1000)]));
  const files = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const path = join(root, 'textures', `t${i}.png`);
      const data = randomBytes(10_000 + i);
      await writeFile(path, data);
      return { path, sha256: createHash('sha256').update(data).digest('hex') };
    }),
  );
  const storeDir = join(dir, 'store');
  const store = new LocalObjectStore(storeDir);
  const db = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => db.close());
  let now = Date.now();
  const known = new KnownBlobs(db, { maxAgeMs: 30 * DAY, pruneEveryMs: 0, now: () => now });
  const request: UploadRequest = {
    jobId: null,
    blendFile: blend,
    sourceBlendFile: blend,
    projectRoot: root,
    dependencies: files.map((f) => ({ path: f.path, kind: 'image', missing: false, relative: true })),
    strict: true,
    store,
    known,
    trustKnownMs: 10 * 60_000,
  };
  const vanished = files[1]!;
  const blobFile = join(storeDir, 'cas', vanished.sha256.slice(0, 2), vanished.sha256);

  const first = await uploadProject(request);
  t.match(first, { blobsUploaded: 4, blobsTrusted: 0 }, 'the first upload sends every blob');
  t.ok(known.has(store.id, { sha256: vanished.sha256, size: 10_001 }), 'and records them');

  await rm(blobFile);
  now += 60_000;
  const trusted = await uploadProject(request);
  t.match(
    trusted,
    { blobsUploaded: 0, blobsTrusted: 4, presenceRequests: 0 },
    'within the trust window the record is believed (no request)',
  );

  now += 11 * 60_000;
  const confirmed = await uploadProject(request);
  t.match(
    confirmed,
    { blobsUploaded: 1, bytesUploaded: 10_001, blobsVanished: 1, blobsTrusted: 0 },
    'after it, every blob is confirmed and the vanished one sent again',
  );
  t.equal(await store.hasBlob(vanished.sha256), true, 'the blob is back');

  await rm(blobFile);
  now += 31 * DAY; // every record is older than maxAgeMs: the first upload after this prunes them
  t.equal(known.prune(), 4, 'the unconfirmed records are forgotten');
  t.equal(known.count(store.id), 0);
  const afterPrune = await uploadProject(request);
  t.match(
    afterPrune,
    { blobsUploaded: 1, bytesUploaded: 10_001, blobsVanished: 0, blobsTrusted: 0 },
    'with no record left, presence is asked of the store and the vanished blob sent again',
  );
  t.equal(await store.hasBlob(vanished.sha256), true);
  t.equal(known.count(store.id), 4, 'and the record holds every blob again');
});

t.test('small files are kept from hashing only for a store that sends bytes', async (t) => {
  const dir = t.testdir({});
  const root = join(dir, 'project');
  await mkdir(root, { recursive: true });
  const blend = join(root, 'shot.blend');
  await writeFile(blend, Buffer.concat([Buffer.from('BLENDER-v304'), randomBytes(70_000)]));
  const texture = join(root, 'tex.png');
  const data = randomBytes(200_000);
  await writeFile(texture, data);
  const upload = async (takesBytes: boolean) => {
    const local = new LocalObjectStore(join(dir, `store-${takesBytes}`));
    const handed: Array<Buffer | undefined> = [];
    const store = {
      id: local.id,
      takesBytes,
      hasBlob: (sha: string) => local.hasBlob(sha),
      putBlobFromFile: (sha: string, file: string) => local.putBlobFromFile(sha, file),
      putBlob: (sha: string, file: string, options: Parameters<LocalObjectStore['putBlob']>[2]) => {
        handed.push(options.data);
        return local.putBlob(sha, file, options);
      },
      materializeBlob: (sha: string, dest: string) => local.materializeBlob(sha, dest),
      putJson: (key: string, value: unknown) => local.putJson(key, value),
      getJson: <T>(key: string) => local.getJson<T>(key),
    };
    const result = await uploadProject({
      jobId: null,
      blendFile: blend,
      sourceBlendFile: blend,
      projectRoot: root,
      dependencies: [{ path: texture, kind: 'image', missing: false, relative: true }],
      strict: true,
      store,
    });
    t.equal(result.blobsUploaded, 2);
    return handed;
  };
  const plain = await upload(false);
  t.same(plain, [undefined, undefined], 'a store that reads the file itself is handed no bytes');
  const sending = await upload(true);
  t.equal(sending.length, 2);
  t.ok(
    sending.some((bytes) => bytes?.equals(data)),
    'a store that sends bytes gets the bytes read for hashing',
  );
});
