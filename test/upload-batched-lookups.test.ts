// A re-submit asks SQLite about its files in chunks, not file by file: the hash cache and the
// known-blob record read the rows of every file and blob of the upload with one statement per 1,000
// keys, and answer from those rows (a file changed since is still hashed again, a blob forgotten is
// still checked with the store).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase } from '../daemon/src/db/database.js';
import { HashCache } from '../daemon/src/project/hash-cache.js';
import { KnownBlobs } from '../daemon/src/project/known-blobs.js';
import { uploadProject } from '../daemon/src/project/upload.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';
import { countingDb } from './helpers/counting-db.js';

const FILES = 2500;

t.test('a re-submit reads the hash cache and known blobs in chunks of 1,000', async (t) => {
  const dir = t.testdir({});
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
  const real = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => real.close());
  const { db, reads } = countingDb(real);
  const cache = new HashCache(db);
  const known = new KnownBlobs(db);
  const store = new LocalObjectStore(join(dir, 'store'));
  const upload = () =>
    uploadProject({
      jobId: null,
      blendFile: blend,
      sourceBlendFile: blend,
      projectRoot: root,
      dependencies: paths.map((path) => ({ path, relative: true })),
      strict: true,
      store,
      hasher: cache,
      known,
      trustKnownMs: 600_000,
    });
  const cold = await upload();
  t.equal(cold.filesHashed, FILES + 1, 'the first upload hashes every file');
  cache.flush();
  await sleep(150); // past the hash cache's racy window

  reads.clear();
  const again = await upload();
  const total = [...reads.values()].reduce((a, b) => a + b, 0);
  t.equal(again.filesHashed, 0, 'the re-submit hashes nothing');
  t.equal(again.blobsTrusted, FILES + 1, 'and trusts every blob it saw minutes ago');
  t.equal(again.manifestSha256, cold.manifestSha256, 'the same manifest');
  t.ok(
    total <= 2 * Math.ceil((FILES + 1) / 1000),
    `${total} reads for ${FILES + 1} files: one per 1,000 paths, one per 1,000 blobs`,
  );

  // A file changed since it was hashed is hashed again from the rows read in one go.
  await writeFile(paths[7]!, 'changed');
  await sleep(150);
  reads.clear();
  const changed = await upload();
  t.equal(changed.filesHashed, 1, 'the changed file is hashed again');
  t.equal(changed.blobsUploaded, 1, 'and its new blob stored');
  const afterChange = [...reads.values()].reduce((a, b) => a + b, 0);
  t.ok(
    afterChange <= 2 * Math.ceil((FILES + 1) / 1000) + 2,
    `${afterChange} reads: the chunks, and the new blob's own row`,
  );
});
