// The hash cache and the project watcher: a re-submit hashes only what changed; a file changed after
// a submit is re-hashed in the background (chokidar) so the next submit finds it hashed; editor
// backups, temporary and hidden files are not; the watcher keeps to its budget and stops with the
// daemon.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase } from '../daemon/src/db/database.js';
import { HashCache, fileIdentity } from '../daemon/src/project/hash-cache.js';
import { ProjectWatcher } from '../daemon/src/project/watcher.js';
import { uploadProject } from '../daemon/src/project/upload.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';

async function until(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A fake project: a .blend and three textures in each of `folders` folders. */
async function project(root: string, folders = 2) {
  const blend = join(root, 'shot.blend');
  await mkdir(root, { recursive: true });
  await writeFile(blend, Buffer.concat([Buffer.from('BLENDER-v300'), randomBytes(2000)]));
  const files: string[] = [];
  for (let f = 0; f < folders; f++) {
    await mkdir(join(root, `tex${f}`), { recursive: true });
    for (let i = 0; i < 3; i++) {
      const file = join(root, `tex${f}`, `t${i}.png`);
      await writeFile(file, randomBytes(3000 + i));
      files.push(file);
    }
  }
  return { root, blend, files, dependencies: files.map((path) => ({ path, relative: true })) };
}

t.test('re-submits hash only changed files; the watcher re-hashes in the background', async (t) => {
  const dir = t.testdir({});
  const db = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => db.close());
  const cache = new HashCache(db);
  const rehashed: string[] = [];
  const watcher = new ProjectWatcher({
    hashCache: cache,
    debounceMs: 300,
    onRehashed: (p) => rehashed.push(p),
  });
  t.teardown(() => watcher.close());
  const p = await project(join(dir, 'proj'));
  await sleep(150); // older than the cache's racy window
  const store = new LocalObjectStore(join(dir, 'store'));
  const submit = () =>
    uploadProject({
      jobId: null,
      blendFile: p.blend,
      sourceBlendFile: p.blend,
      projectRoot: p.root,
      dependencies: p.dependencies,
      strict: true,
      store,
      hasher: cache,
    });

  const cold = await submit();
  t.equal(cold.filesHashed, 7, 'the first submit hashes every file');
  const warm = await submit();
  t.equal(warm.filesHashed, 0, 'an unchanged re-submit hashes nothing');
  t.equal(warm.bytesUploaded, 0);

  await watcher.watch(p.root, [p.blend, ...p.files]);
  t.same(watcher.watchedProjects, [p.root]);
  t.equal(watcher.watchedFolders, 3);

  // Noise the watcher must ignore, then one real change.
  await writeFile(join(p.root, 'shot.blend1'), 'backup');
  await writeFile(join(p.root, 'tex0', '.t0.png.swp'), 'editor swap');
  await writeFile(join(p.root, 'tex0', 'export.tmp'), 'temp');
  await writeFile(join(p.root, 'tex1', 'unrelated.png'), 'a file the scene does not use');
  const changed = p.files[1]!;
  await writeFile(changed, randomBytes(4000));
  await until('the background re-hash', () => rehashed.includes(changed));
  await sleep(500);
  t.same(rehashed, [changed], 'only the changed file the scene uses was re-hashed');
  const identity = await fileIdentity(changed);
  t.ok(cache.lookup(changed, identity), 'its new hash is in the cache');

  const next = await submit();
  t.equal(next.filesHashed, 0, 'the next submit found the changed file already hashed');
  t.equal(next.blobsUploaded, 1, 'and sent only that blob');
  t.equal(next.bytesUploaded, 4000);

  await watcher.close();
  await writeFile(p.files[2]!, randomBytes(10));
  await sleep(800);
  t.same(rehashed, [changed], 'a closed watcher re-hashes nothing');
});

t.test('the watcher keeps to its budget', async (t) => {
  const dir = t.testdir({});
  const db = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => db.close());
  const watcher = new ProjectWatcher({ hashCache: new HashCache(db), maxProjects: 5, maxFolders: 12 });
  t.teardown(() => watcher.close());
  const roots: string[] = [];
  for (let i = 0; i < 7; i++) {
    const p = await project(join(dir, `proj${i}`), 1);
    roots.push(p.root);
    await watcher.watch(p.root, [p.blend, ...p.files]);
  }
  t.same(watcher.watchedProjects, roots.slice(2), 'the five most recently submitted projects');
  t.equal(watcher.watchedFolders, 10);
  const wide = await project(join(dir, 'wide'), 6);
  await watcher.watch(wide.root, [wide.blend, ...wide.files]);
  t.ok(watcher.watchedFolders <= 12, `at most 12 folders in all (${watcher.watchedFolders})`);
  t.same(watcher.watchedProjects.length, 5);
});

t.test('a project with more folders than the budget is not scanned again on each re-submit', async (t) => {
  const dir = t.testdir({});
  const db = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => db.close());
  const started: string[][] = [];
  const rehashed: string[] = [];
  const watcher = new ProjectWatcher({
    hashCache: new HashCache(db),
    maxFolders: 4,
    debounceMs: 100,
    onWatchStarted: (_root, folders) => started.push(folders),
    onRehashed: (path) => rehashed.push(path),
  });
  t.teardown(() => watcher.close());
  const wide = await project(join(dir, 'wide'), 7);
  for (let i = 0; i < 3; i++) await watcher.watch(wide.root, [wide.blend, ...wide.files]);
  t.equal(started.length, 1, 'its folders were scanned once for three submits');
  t.equal(started[0]!.length, 4, 'within the budget');
  const inWatched = wide.files.find((file) => started[0]!.includes(dirname(file)))!;
  await writeFile(inWatched, randomBytes(50));
  await until('the background re-hash', () => rehashed.includes(inWatched));
  t.pass('a change in a watched folder is still re-hashed');
});

t.test('the daemon watches submitted projects and stops watching when it stops', async (t) => {
  const dir = t.testdir({});
  const p = await project(join(dir, 'proj'));
  const daemon = await startTestDaemon(t, { stateDir: join(dir, 'home') });
  const client = await connectTestClient(t, daemon);
  const result = await client.request('project.upload', { blendFile: p.blend, dependencies: p.dependencies });
  t.equal(result.files, 7);
  t.equal(result.manifest.key, `manifests/${result.manifest.sha256}.json`);
  await until('the watcher', () => daemon.projects.watcher?.watchedProjects.includes(p.root) ?? false);
  await daemon.stop();
  t.same(daemon.projects.watcher?.watchedProjects, [], 'every watcher closed on daemon stop');
});
