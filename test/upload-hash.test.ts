// Hashing: the worker pool gives the same SHA-256 as a plain hash for every size, hands small files'
// bytes back, stops a canceled job; the hash cache trusts a file only while path, size, mtime and inode
// are unchanged and the file was not modified within its racy window.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HashPool } from '../daemon/src/project/hash-pool.js';
import { HashCache, fileIdentity } from '../daemon/src/project/hash-cache.js';
import { openDatabase } from '../daemon/src/db/database.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test('idle workers stop after a quiet spell; the next hash starts them again', async (t) => {
  const dir = t.testdir({});
  const pool = new HashPool(2, 200);
  t.teardown(() => pool.close());
  const path = join(dir, 'f.bin');
  const data = randomBytes(100_000);
  await writeFile(path, data);
  await Promise.all([pool.hash(path), pool.hash(path)]);
  t.equal(pool.workers, 2, 'two workers while there is work');
  for (let i = 0; i < 100 && pool.workers > 0; i++) await sleep(50);
  t.equal(pool.workers, 0, 'none left after the idle time');
  t.equal((await pool.hash(path)).sha256, sha(data), 'hashing again starts a worker');
});

t.test('the worker pool hashes like createHash, keeps small files, stops canceled jobs', async (t) => {
  const dir = t.testdir({});
  const pool = new HashPool(2);
  t.teardown(() => pool.close());
  const sizes = [0, 1, 65_536, 1_048_575, 1_048_576, 3 * 1_048_576 + 7, 9 * 1_048_576];
  const files = await Promise.all(
    sizes.map(async (size, i) => {
      const data = randomBytes(size);
      const path = join(dir, `f${i}.bin`);
      await writeFile(path, data);
      return { path, data };
    }),
  );
  const results = await Promise.all(files.map((f) => pool.hash(f.path, { keepMax: 4 * 1_048_576 })));
  results.forEach((result, i) => {
    const file = files[i]!;
    t.equal(result.sha256, sha(file.data), `${sizes[i]} bytes: same SHA-256`);
    if (file.data.length <= 4 * 1_048_576)
      t.ok(result.bytes?.equals(file.data), `${sizes[i]} bytes handed back`);
    else t.equal(result.bytes, undefined, `${sizes[i]} bytes: too large to hand back`);
  });
  await t.rejects(pool.hash(join(dir, 'absent.bin')), { code: 'ENOENT' });

  const big = join(dir, 'big.bin');
  await writeFile(big, randomBytes(96 * 1_048_576));
  const controller = new AbortController();
  const started = Date.now();
  const job = pool.hash(big, { signal: controller.signal });
  setTimeout(() => controller.abort(new Error('stop')), 5);
  await t.rejects(job, { message: 'stop' }, 'a canceled job rejects with the abort reason');
  t.ok(Date.now() - started < 2000, 'at once');
  const after = await pool.hash(files[3]!.path);
  t.equal(after.sha256, sha(files[3]!.data), 'the pool keeps working after a cancel');
});

t.test('the pool hashes with SHA-256 only, and states the path after reading when asked', async (t) => {
  const dir = t.testdir({});
  const pool = new HashPool(1);
  t.teardown(() => pool.close());
  const data = randomBytes(200_000);
  const path = join(dir, 'f.bin');
  await writeFile(path, data);
  const plain = await pool.hash(path, { keepMax: data.length });
  t.same(Object.keys(plain).sort(), ['bytes', 'sha256'], 'the hash and the bytes, no second digest');
  t.equal(plain.after, undefined, 'no stat unless asked');
  const full = await pool.hash(path, { keepMax: data.length, statAfter: true });
  t.equal(full.sha256, sha(data));
  t.ok(full.bytes?.equals(data));
  const identity = await fileIdentity(path);
  t.match(
    full.after,
    { size: BigInt(data.length), mtimeNs: identity.mtimeNs, file: true },
    'the path as stated after reading',
  );
  t.equal(`${full.after?.dev}:${full.after?.ino}`, identity.inode);
});

t.test('the hash cache trusts only unchanged files', async (t) => {
  const dir = t.testdir({});
  const db = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => db.close());
  const cache = new HashCache(db);
  const file = join(dir, 'tex.png');
  await writeFile(file, 'one');

  const fresh = await cache.hash(file);
  t.equal(fresh.sha256, sha(Buffer.from('one')));
  t.equal(
    cache.lookup(file, await fileIdentity(file)),
    undefined,
    'hashed right after a write: not trusted yet',
  );

  await sleep(150);
  await cache.hash(file);
  t.equal(cache.lookup(file, await fileIdentity(file)), fresh.sha256, 'older than the racy window: trusted');
  t.equal((await cache.hash(file)).cached, true);

  await writeFile(file, 'two');
  await utimes(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  t.equal(cache.lookup(file, await fileIdentity(file)), undefined, 'same size, other mtime: not trusted');
  const two = await cache.hash(file);
  t.match(two, { sha256: sha(Buffer.from('two')), cached: false });

  const replacement = join(dir, 'replacement.png');
  await writeFile(replacement, 'two');
  const identity = await fileIdentity(file);
  await utimes(
    replacement,
    new Date(Number(identity.mtimeNs / 1_000_000n)),
    new Date(Number(identity.mtimeNs / 1_000_000n)),
  );
  await rename(replacement, file); // same bytes, same size, same mtime (ms), another inode
  t.equal(cache.lookup(file, await fileIdentity(file)), undefined, 'another inode: not trusted');

  cache.flush();
  const reopened = new HashCache(db);
  await sleep(150);
  const third = await reopened.hash(file);
  t.equal(third.cached, false);
  t.equal((await reopened.hash(file)).cached, true, 'hashes persist in SQLite');
});
