// Collecting a project states its files in batches on the hash workers (no promise per file on the
// main thread): what the batches report is what lstat/stat say — a file's size, mtime, inode and mode,
// a symlink's target, a folder expanded, a missing path or a dangling link listed as missing.
import t from 'tap';
import { mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { collectFiles } from '../daemon/src/project/collect.js';
import { HashPool } from '../daemon/src/project/hash-pool.js';

t.test('the pool states paths in one job: lstat, and stat behind a symlink', async (t) => {
  const dir = t.testdir({ 'a.txt': 'hello', sub: { 'b.bin': 'xy' } });
  await symlink(join(dir, 'a.txt'), join(dir, 'link'));
  const pool = new HashPool(1);
  t.teardown(() => pool.close());
  const [file, folder, link, missing] = await pool.lstat(
    ['a.txt', 'sub', 'link', 'nope'].map((name) => join(dir, name)),
  );
  const real = await stat(join(dir, 'a.txt'), { bigint: true });
  t.match(file, {
    kind: 'file',
    symlink: false,
    size: 5n,
    mtimeNs: real.mtimeNs,
    ino: real.ino,
    dev: real.dev,
  });
  t.match(folder, { kind: 'directory', symlink: false });
  t.match(link, { kind: 'file', symlink: true, size: 5n, ino: real.ino }, 'a symlink: what it leads to');
  t.equal(missing, null, 'a path that cannot be stated');
});

t.test('collectFiles of 2,500 files, folders, links and missing paths', async (t) => {
  const dir = t.testdir({});
  const files: string[] = [];
  for (let i = 0; i < 2500; i++) {
    const folder = join(dir, `d${i % 7}`);
    if (i < 7) await mkdir(folder);
    const path = join(folder, `f${i}.png`);
    await writeFile(path, 'x'.repeat(i % 50));
    files.push(path);
  }
  await mkdir(join(dir, 'cache'));
  await writeFile(join(dir, 'cache', 'c1.vdb'), 'c1');
  await writeFile(join(dir, 'cache', 'c2.vdb'), 'c2');
  await symlink(files[3]!, join(dir, 'alias.png'));
  await symlink(join(dir, 'gone.png'), join(dir, 'dangling.png'));
  const dependencies = [
    ...files,
    join(dir, 'cache'),
    join(dir, 'alias.png'),
    join(dir, 'dangling.png'),
    join(dir, 'missing.png'),
  ].map((path) => ({ path, relative: true }));

  const collection = await collectFiles(dependencies, { blendDir: dir });
  t.same(collection.missing, [join(dir, 'dangling.png'), join(dir, 'missing.png')]);
  t.equal(collection.files.length, 2500 + 2 + 1, 'every file, the folder expanded, the link');
  const byPath = new Map(collection.files.map((file) => [file.path, file]));
  let same = 0;
  for (const path of [...files, join(dir, 'cache', 'c2.vdb')]) {
    const s = await stat(path, { bigint: true });
    const identity = byPath.get(path)?.identity;
    if (
      identity?.size === Number(s.size) &&
      identity.mtimeNs === s.mtimeNs &&
      identity.inode === `${s.dev}:${s.ino}` &&
      identity.mode === (Number(s.mode) & 0o777)
    )
      same += 1;
    else
      t.fail(
        `${path}: ${JSON.stringify(identity, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`,
      );
  }
  t.equal(same, 2501, 'each identity is what stat says');
  const alias = byPath.get(join(dir, 'alias.png'));
  t.equal(alias?.symlink, true);
  t.equal(alias?.identity.inode, byPath.get(files[3]!)?.identity.inode, 'a link has its target identity');
});
