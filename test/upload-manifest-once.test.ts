// `project.upload` of an unchanged project does not write its manifest again: the key names the
// manifest's bytes, and this daemon wrote it to that store within the trust window. A changed, added or
// removed file gives another manifest, which is written; with no trust window every upload writes.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase } from '../daemon/src/db/database.js';
import { silentNotify } from '../daemon/src/notify.js';
import { ProjectService } from '../daemon/src/project/service.js';
import type { Manifest } from '../daemon/src/project/manifest.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';

const FILES = 1200;

async function setup(t: Test, trustSeconds: string) {
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
  const db = openDatabase(join(dir, 'state.sqlite'));
  t.teardown(() => db.close());
  const local = new LocalObjectStore(join(dir, 'store'));
  const writes: string[] = [];
  const store = Object.assign(Object.create(local) as LocalObjectStore, {
    putJson: (key: string, value: unknown) => {
      writes.push(key);
      return local.putJson(key, value);
    },
  });
  const service = new ProjectService({
    db,
    localStore: store,
    env: { SKYFARM_BLOB_TRUST_SECONDS: trustSeconds },
    notify: silentNotify,
    findBlender: () => Promise.reject(new Error('no Blender in this test')),
    probeBlend: () => Promise.reject(new Error('no Blender in this test')),
    watcher: { enabled: false },
  });
  const upload = async (files = paths) => {
    const result = await service.uploadRequest({
      blendFile: blend,
      projectRoot: root,
      dependencies: files.map((path) => ({ path, relative: true })),
    });
    service.hashCache.flush();
    await sleep(150); // past the hash cache's racy window
    return result;
  };
  const stored = async (key: string) =>
    JSON.parse(await readFile(join(dir, 'store', key), 'utf8')) as Manifest;
  return { paths, upload, writes, stored };
}

t.test('an unchanged re-submit does not write its manifest again', async (t) => {
  const { paths, upload, writes, stored } = await setup(t, '600');
  const first = await upload();
  t.same(writes, [first.manifest.key], 'the first upload writes the manifest');
  const again = await upload();
  t.equal(again.filesHashed, 0, 'the re-submit hashes nothing');
  t.equal(again.manifest.key, first.manifest.key, 'the same manifest');
  t.same(writes, [first.manifest.key], 'which is not written again');
  t.equal(Object.keys((await stored(first.manifest.key)).files).length, FILES + 1, 'it is in the store');

  // One file changed (same size): another manifest, written, naming the new bytes.
  await writeFile(paths[3]!, 'frame X');
  const changed = await upload();
  t.equal(changed.filesHashed, 1, 'the changed file is hashed again');
  t.not(changed.manifest.key, first.manifest.key, 'a new manifest');
  t.same(writes, [first.manifest.key, changed.manifest.key], 'and it is written');
  const manifest = await stored(changed.manifest.key);
  t.equal(manifest.files['cache/frame_00003.bphys']?.size, 7);
  t.not(
    manifest.files['cache/frame_00003.bphys']?.sha256,
    (await stored(first.manifest.key)).files['cache/frame_00003.bphys']?.sha256,
    'with the changed file’s new hash',
  );

  // A file added, then removed again.
  const extra = join(paths[0]!, '..', 'extra.bphys');
  await writeFile(extra, 'extra');
  const added = await upload([...paths, extra]);
  t.equal(added.files, FILES + 2, 'the added file is uploaded');
  t.ok(!writes.slice(0, 2).includes(added.manifest.key), 'a new manifest');
  t.equal(writes.at(-1), added.manifest.key, 'written');
  t.ok((await stored(added.manifest.key)).files['cache/extra.bphys'], 'naming the added file');
  await rm(extra);
  const removed = await upload();
  t.equal(removed.manifest.key, changed.manifest.key, 'without it: the manifest before');
  t.equal(writes.length, 3, 'written minutes ago, so not again');
  t.notOk((await stored(removed.manifest.key)).files['cache/extra.bphys'], 'it does not name the file');
});

t.test('without a trust window every upload writes its manifest', async (t) => {
  const { upload, writes } = await setup(t, '0');
  const first = await upload();
  const again = await upload();
  t.equal(again.manifest.key, first.manifest.key);
  t.same(writes, [first.manifest.key, first.manifest.key], 'written each time');
});
