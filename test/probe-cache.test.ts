// The probe cache: a re-submit of an unchanged scene starts no Blender, and anything that could make a
// remembered probe wrong probes again (the .blend, a dependency such as a linked library, a missing
// file appearing, a new file in a folder the probe listed, another scene, another Blender binary, a
// file replaced under the same name, a file written just before the probe). Then the same with real
// Blender: probe.py lists the folders it scanned, and changing a linked library re-probes. The
// `blender --version` check is remembered per binary the same way.
import t, { type Test } from 'tap';
import { chmod, mkdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { openDatabase } from '../daemon/src/db/database.js';
import {
  findBlender,
  probeBlend,
  type BlenderInstall,
  type BlenderVersion,
  type ProbeResult,
} from '../daemon/src/render/blender.js';
import { rememberedFindBlender } from '../daemon/src/render/blender-check.js';
import { ProbeCache, PROBE_CACHE_MAX_ENTRIES } from '../daemon/src/render/probe-cache.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';

/** Sets mtimes a few seconds back: files older than the racy window, as a saved scene usually is. */
async function age(...files: string[]): Promise<void> {
  const past = new Date(Date.now() - 10_000);
  for (const file of files) await utimes(file, past, past);
}

function setup(t: Test) {
  const root = t.testdir({
    'scene.blend': 'BLENDER-v1',
    blender: 'binary v1',
    libs: { 'lib.blend': 'library v1' },
    textures: { 'wood.png': 'wood', 'seq_0001.png': 'frame 1' },
  });
  const file = path.join(root, 'scene.blend');
  const blender = path.join(root, 'blender');
  const library = path.join(root, 'libs', 'lib.blend');
  const missing = path.join(root, 'textures', 'gone.png');
  const textures = path.join(root, 'textures');
  const db = openDatabase(path.join(root, 'state.sqlite'));
  t.teardown(() => db.close());
  const calls: Array<{ file: string; scene: string | undefined }> = [];
  const probe = async (_blender: string, blendFile: string, scene?: string): Promise<ProbeResult> => {
    calls.push({ file: blendFile, scene });
    return {
      blenderVersion: [3, 4, 1],
      blendFile,
      scenes: ['Scene', 'Other'],
      scene: { name: scene ?? 'Scene', frameStart: 1, frameEnd: calls.length } as ProbeResult['scene'],
      dependencies: [
        { path: library, kind: 'library', missing: false, relative: true },
        { path: path.join(textures, 'wood.png'), kind: 'image', missing: false, relative: true },
        { path: path.join(textures, 'seq_0001.png'), kind: 'image', missing: false, relative: true },
        { path: missing, kind: 'image', missing: true, relative: true },
      ],
      scannedDirs: [textures],
    };
  };
  const cache = new ProbeCache(db);
  const cached = cache.wrap(probe);
  const all = [file, blender, library, path.join(textures, 'wood.png'), path.join(textures, 'seq_0001.png')];
  return { root, file, blender, library, missing, textures, db, calls, cache, cached, all };
}

t.test('an unchanged scene is probed once', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  const first = await s.cached(s.blender, s.file);
  const second = await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 1, 'the second submit starts no probe');
  t.same(second, first, 'the same result');
  t.same(s.cache.stats, { hits: 1, misses: 1 });

  // Another daemon on the same database (a restart) remembers it too.
  const again = new ProbeCache(s.db).wrap(async () => {
    throw new Error('no probe expected');
  });
  t.same(await again(s.blender, s.file), first, 'remembered across a restart');
});

t.test('a changed .blend is probed again', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  await s.cached(s.blender, s.file);
  await writeFile(s.file, 'BLENDER-v2 longer');
  await age(s.file);
  const result = await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'probed again after the file changed');
  t.equal(result.scene.frameEnd, 2, 'the new result');
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'and remembered again');

  // Same size and content, only the mtime moved (saved again).
  const past = new Date(Date.now() - 5_000);
  await utimes(s.file, past, past);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 3, 'a new mtime alone re-probes');
});

t.test(
  'a .blend replaced under the same name (same size and mtime, another inode) is probed again',
  async (t) => {
    const s = setup(t);
    await age(...s.all, s.textures);
    await s.cached(s.blender, s.file);
    const before = await stat(s.file);
    const other = path.join(s.root, 'other.blend');
    await writeFile(other, 'BLENDER-v1');
    await utimes(other, before.atime, before.mtime);
    await rename(other, s.file);
    await s.cached(s.blender, s.file);
    t.equal(s.calls.length, 2);
  },
);

t.test('a changed linked library or texture is probed again', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  await s.cached(s.blender, s.file);
  await writeFile(s.library, 'library v2: links another file now');
  await age(s.library);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'library changed');
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'remembered again');
  await rm(path.join(s.textures, 'wood.png'));
  await age(s.textures);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 3, 'a dependency deleted');
});

t.test('a missing file that appears, or a new file in a scanned folder, is probed again', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  await s.cached(s.blender, s.file);
  await writeFile(s.missing, 'now here');
  await age(s.missing, s.textures);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'the missing texture appeared');
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2);
  await writeFile(path.join(s.textures, 'seq_0002.png'), 'frame 2');
  await age(path.join(s.textures, 'seq_0002.png'), s.textures);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 3, 'a new frame of the sequence');
});

t.test('scene and Blender binary are part of the key', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  await s.cached(s.blender, s.file);
  await s.cached(s.blender, s.file, 'Other');
  t.same(
    s.calls.map((c) => c.scene),
    [undefined, 'Other'],
    'another scene is probed on its own',
  );
  await s.cached(s.blender, s.file, 'Other');
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'both remembered');
  await writeFile(s.blender, 'binary v2 (upgraded)');
  await age(s.blender);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 3, 'a new Blender binary probes again');
  const elsewhere = path.join(s.root, 'blender-4.2');
  await writeFile(elsewhere, 'another blender');
  await age(elsewhere);
  await s.cached(elsewhere, s.file);
  t.equal(s.calls.length, 4, 'another Blender path probes again');
});

t.test("a one-off file (the add-on's temporary copy) is neither looked up nor remembered", async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  await s.cached(s.blender, s.file, undefined, { remember: false });
  await s.cached(s.blender, s.file, undefined, { remember: false });
  t.equal(s.calls.length, 2, 'probed each time');
  const { n } = s.db.prepare('SELECT count(*) AS n FROM probe_cache').get() as { n: number };
  t.equal(n, 0, 'nothing stored');
});

t.test('a file written just before the probe is not remembered', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  await writeFile(s.file, 'BLENDER-v1 just saved'); // mtime: now
  await s.cached(s.blender, s.file);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 2, 'probed both times');
  await writeFile(s.library, 'library just saved');
  await age(s.file);
  await s.cached(s.blender, s.file);
  await s.cached(s.blender, s.file);
  t.equal(s.calls.length, 4, 'a dependency written just now is not trusted either');
});

t.test('a failed probe is not remembered', async (t) => {
  const s = setup(t);
  await age(...s.all, s.textures);
  let fail = true;
  const cached = new ProbeCache(s.db).wrap(async (...args) => {
    if (fail) throw new Error('Blender could not read it');
    return { blendFile: args[1], dependencies: [], scannedDirs: [] } as unknown as ProbeResult;
  });
  await t.rejects(cached(s.blender, s.file), /could not read/);
  fail = false;
  t.equal((await cached(s.blender, s.file)).blendFile, s.file);
});

t.test('the cache is bounded', async (t) => {
  const s = setup(t);
  const dir = path.join(s.root, 'many');
  await mkdir(dir);
  const probe = async (_b: string, file: string) =>
    ({ blendFile: file, dependencies: [], scannedDirs: [] }) as unknown as ProbeResult;
  const cache = new ProbeCache(s.db);
  await age(s.blender);
  for (let i = 0; i < PROBE_CACHE_MAX_ENTRIES + 5; i++) {
    const file = path.join(dir, `${i}.blend`);
    await writeFile(file, 'BLENDER');
    await age(file);
    await cache.wrap(probe)(s.blender, file);
  }
  const { n } = s.db.prepare('SELECT count(*) AS n FROM probe_cache').get() as { n: number };
  t.equal(n, PROBE_CACHE_MAX_ENTRIES);
});

t.test('with real Blender: a linked library changing re-probes', { skip: blenderSkip }, async (t) => {
  const blender = (await findBlender()).path;
  const root = t.testdir({});
  const blendFile = await makeScene(root, {
    textures: [{ path: 'textures/wood.png' }],
    library: 'libs/props.blend',
  });
  const library = path.join(root, 'libs', 'props.blend');
  const texture = path.join(root, 'textures', 'wood.png');
  await age(blendFile, library, texture);
  const db = openDatabase(path.join(root, 'state.sqlite'));
  t.teardown(() => db.close());
  let probes = 0;
  const cached = new ProbeCache(db).wrap(async (...args) => {
    probes++;
    return probeBlend(...args);
  });
  const first = await cached(blender, blendFile);
  t.ok(
    first.dependencies.some((d) => d.path === library && d.kind === 'library'),
    'the library is a dependency',
  );
  t.ok(Array.isArray(first.scannedDirs), 'probe.py reports the folders it scanned');
  const second = await cached(blender, blendFile);
  t.equal(probes, 1, 'an unchanged scene starts no second Blender');
  t.same(second, first);
  const saved = new Date(Date.now() - 5_000); // the library saved again
  await utimes(library, saved, saved);
  await cached(blender, blendFile);
  t.equal(probes, 2, 'the linked library changed: probed again');
});

t.test('the Blender version check is remembered per binary', async (t) => {
  const root = t.testdir({ bin: { blender: '#!/bin/sh\necho "Blender 3.4.1"\n' } });
  const binary = path.join(root, 'bin', 'blender');
  await chmod(binary, 0o755);
  const db = openDatabase(path.join(root, 'state.sqlite'));
  t.teardown(() => db.close());
  let checks = 0;
  let version: BlenderVersion = [3, 4, 1];
  const find = async (): Promise<BlenderInstall> => {
    checks++;
    return { path: binary, version };
  };
  const env = { SKYFARM_BLENDER: binary, PATH: '' };
  t.same(await rememberedFindBlender(db, env, find)(), { path: binary, version: [3, 4, 1] });
  t.same(await rememberedFindBlender(db, env, find)(), { path: binary, version: [3, 4, 1] });
  t.equal(checks, 1, 'a second daemon on the same database starts no `blender --version`');
  version = [4, 2, 3];
  await writeFile(binary, '#!/bin/sh\necho "Blender 4.2.3 (upgraded)"\n');
  t.same((await rememberedFindBlender(db, env, find)()).version, [4, 2, 3], 'an upgrade is checked');
  t.equal(checks, 2);
  const failing = async (): Promise<BlenderInstall> => {
    checks++;
    throw new Error('not a working Blender');
  };
  await rm(binary);
  await writeFile(binary, 'replaced');
  await chmod(binary, 0o755);
  await t.rejects(rememberedFindBlender(db, env, failing)(), /not a working Blender/);
  await t.rejects(
    rememberedFindBlender(db, env, failing)(),
    /not a working Blender/,
    'a failure is not remembered',
  );
  t.equal(checks, 4);
});
