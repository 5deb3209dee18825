// The project tree without Blender: where files go (root, _external/, remaps), what is collected
// (folders, tile tokens, OCIO), what is refused (symlinks out of the project, unsafe manifests,
// --strict with missing files), on the local store, whose blobs are checked byte for byte.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { collectFiles } from '../daemon/src/project/collect.js';
import { commonAncestor, externalPath, planTree } from '../daemon/src/project/tree.js';
import { assertSafeManifest, type Manifest } from '../daemon/src/project/manifest.js';
import { materializeProject } from '../daemon/src/project/materialize.js';
import { uploadProject } from '../daemon/src/project/upload.js';
import { LocalObjectStore } from '../daemon/src/store/local-store.js';
import { SkyfarmError } from '../daemon/src/errors.js';
import type { IObjectStore } from '../daemon/src/store/object-store.js';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

function write(file: string, content: string): string {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, content);
  return file;
}

t.test('root, in-tree paths, _external and remaps', async (t) => {
  const base = t.testdir({});
  const root = join(base, 'proj');
  const blend = write(join(root, 'scenes', 'shot.blend'), 'BLENDER-v300 scene');
  const lib = write(join(root, 'pbr_node', 'lib.blend'), 'BLENDER-v300 lib');
  const tex = write(join(root, 'textures', 'Grain Ü.png'), 'grain');
  const texLower = write(join(root, 'textures', 'grain ü.png'), 'grain lower');
  const absInTree = write(join(root, 'textures', 'abs.png'), 'abs');
  const outside = write(join(base, 'shared', 'lib tex', 'wood.png'), 'wood');
  const outsideSeq = [1, 2].map((n) => write(join(base, 'shared', 'lib tex', `seq_000${n}.png`), `seq${n}`));

  const collection = await collectFiles(
    [
      { path: lib, kind: 'library', relative: true },
      { path: tex, kind: 'image', relative: true },
      { path: texLower, kind: 'image', relative: true },
      { path: absInTree, kind: 'image', relative: false },
      { path: outside, kind: 'image', relative: false },
      ...outsideSeq.map((path) => ({ path, kind: 'image', relative: false })),
      { path: join(root, 'textures', 'missing.png'), kind: 'image', relative: true, missing: true },
    ],
    { blendDir: join(root, 'scenes') },
  );
  t.same(collection.missing, [join(root, 'textures', 'missing.png')], 'the missing file is reported');

  const tree = await planTree({ blendFile: blend, sourceBlendFile: blend, files: collection.files });
  t.equal(tree.root, root, 'the root holds the .blend folder and the sibling library folder');
  t.equal(tree.blend, 'scenes/shot.blend');
  const paths = Object.fromEntries(tree.entries.map((e) => [e.source, e.path]));
  t.equal(paths[lib], 'pbr_node/lib.blend', '//../pbr_node/lib.blend still resolves from scenes/');
  t.equal(paths[tex], 'textures/Grain Ü.png', 'spaces and non-ASCII survive');
  t.equal(paths[texLower], 'textures/grain ü.png', 'a name differing only in case is its own file');
  t.equal(paths[absInTree], 'textures/abs.png', 'an absolute path inside the root stays in the tree');
  t.equal(paths[outside], `_external${join(base, 'shared', 'lib tex', 'wood.png')}`, 'outside → _external/');
  t.same(
    tree.remaps,
    { [root]: '.', [join(base, 'shared', 'lib tex')]: `_external${join(base, 'shared', 'lib tex')}` },
    'remaps: the root and the external folder (sequences stay together)',
  );
  t.equal(externalPath('/mnt/nas/a b.png'), '_external/mnt/nas/a b.png');
  t.equal(commonAncestor(['/a/b/c', '/a/b/d/e', '/a/b']), '/a/b');
  t.equal(commonAncestor(['/a/b', '/x/y']), '/');
});

t.test('a relative path far up moves the root up instead of breaking', async (t) => {
  const base = t.testdir({});
  const blend = write(join(base, 'a', 'b', 'c', 'shot.blend'), 'BLENDER');
  const tex = write(join(base, 'tex', 'far.png'), 'far');
  const collection = await collectFiles([{ path: tex, relative: true }], {
    blendDir: join(base, 'a', 'b', 'c'),
  });
  const tree = await planTree({ blendFile: blend, sourceBlendFile: blend, files: collection.files });
  t.equal(tree.root, base);
  t.same(
    tree.entries.map((e) => e.path),
    ['a/b/c/shot.blend', 'tex/far.png'],
  );
});

t.test('symlinks that lead out of the project are refused; inside ones are fine', async (t) => {
  const base = t.testdir({});
  const root = join(base, 'proj');
  const blend = write(join(root, 'shot.blend'), 'BLENDER');
  const secret = write(join(base, 'elsewhere', 'secret.png'), 'secret');
  const real = write(join(root, 'tex', 'real.png'), 'real');
  symlinkSync(secret, join(root, 'tex', 'link-out.png'));
  symlinkSync(real, join(root, 'tex', 'link-in.png'));
  symlinkSync(join(base, 'elsewhere'), join(root, 'dirlink'));

  const plan = async (path: string) => {
    const collection = await collectFiles([{ path, relative: true }], { blendDir: root });
    return planTree({ blendFile: blend, sourceBlendFile: blend, files: collection.files });
  };
  await t.rejects(plan(join(root, 'tex', 'link-out.png')), { code: 'UNSAFE_PATH', message: /leads out of/ });
  await t.rejects(plan(join(root, 'dirlink', 'secret.png')), { code: 'UNSAFE_PATH' });
  const ok = await plan(join(root, 'tex', 'link-in.png'));
  t.same(
    ok.entries.map((e) => e.path),
    ['shot.blend', 'tex/link-in.png'],
    'a symlink to a file inside the project is uploaded as that file',
  );
});

t.test('unsafe manifests are refused before anything is written', async (t) => {
  const base = t.testdir({});
  const store = new LocalObjectStore(join(base, 'store'));
  const good = sha('x');
  const manifest = (files: Record<string, string>, extra: Partial<Manifest> = {}): Manifest => ({
    version: 1,
    blend: 'shot.blend',
    files: Object.fromEntries(
      Object.entries({ 'shot.blend': good, ...files }).map(([p, s]) => [
        p,
        { sha256: s, size: 1, mode: 0o644 },
      ]),
    ),
    remaps: {},
    ...extra,
  });
  for (const bad of ['../escape.png', '/etc/passwd', 'a/../../b.png', 'a/./b.png', 'a//b.png', 'C:/x.png']) {
    t.throws(
      () => assertSafeManifest(manifest({ [bad]: good })),
      { code: 'UNSAFE_PATH' },
      `refuses "${bad}"`,
    );
    await t.rejects(materializeProject(store, manifest({ [bad]: good }), join(base, 'job', 'project')), {
      code: 'UNSAFE_PATH',
    });
  }
  t.throws(() => assertSafeManifest(manifest({}, { remaps: { '/x': '../up' } })), { code: 'UNSAFE_PATH' });
  t.throws(() => assertSafeManifest(manifest({}, { env: { OCIO: '/etc/ocio.yaml' } })), {
    code: 'UNSAFE_PATH',
  });
  t.throws(() => assertSafeManifest(manifest({ 'a.png': 'not-a-hash' })), { code: 'BAD_ARGUMENT' });
  t.notOk(existsSync(join(base, 'job', 'project', 'shot.blend')), 'nothing was materialised');
  t.notOk(existsSync(join(base, 'escape.png')));
});

t.test(
  'folders, tile tokens and the OCIO config are collected; backups and hidden files are not',
  async (t) => {
    const base = t.testdir({});
    const root = join(base, 'proj');
    write(join(root, 'cache_fluid', 'data', 'fluid_0001.vdb'), 'vdb1');
    write(join(root, 'cache_fluid', 'data', 'fluid_0002.vdb'), 'vdb2');
    write(join(root, 'cache_fluid', '.hidden'), 'no');
    write(join(root, 'cache_fluid', 'old.blend1'), 'no');
    write(join(root, 'cache_fluid', 'x.tmp'), 'no');
    for (const tile of [1001, 1002]) write(join(root, 'udim', `skin.${tile}.exr`), `tile${tile}`);
    write(join(root, 'udim', 'skin.preview.exr'), 'not a tile');
    const ocio = write(
      join(base, 'color', 'config.ocio'),
      'ocio_profile_version: 2\nsearch_path: luts:more\n',
    );
    write(join(base, 'color', 'luts', 'a.spi1d'), 'lut a');
    write(join(base, 'color', 'more', 'b.spi3d'), 'lut b');
    const collection = await collectFiles(
      [
        { path: join(root, 'cache_fluid'), kind: 'cache', relative: true },
        { path: '//udim/skin.<UDIM>.exr', kind: 'image' },
      ],
      { blendDir: root, env: { OCIO: ocio } },
    );
    t.same(collection.files.map((f) => f.path).sort(), [
      join(base, 'color', 'config.ocio'),
      join(base, 'color', 'luts', 'a.spi1d'),
      join(base, 'color', 'more', 'b.spi3d'),
      join(root, 'cache_fluid', 'data', 'fluid_0001.vdb'),
      join(root, 'cache_fluid', 'data', 'fluid_0002.vdb'),
      join(root, 'udim', 'skin.1001.exr'),
      join(root, 'udim', 'skin.1002.exr'),
    ]);
    t.same(collection.env, { OCIO: ocio });
    t.same(collection.missing, []);
    const missingOcio = await collectFiles([], { blendDir: root, env: { OCIO: join(base, 'nope.ocio') } });
    t.same(
      missingOcio.missing,
      [join(base, 'nope.ocio')],
      'an OCIO config that does not exist is reported missing',
    );
  },
);

t.test(
  'upload to the local store: strict refusal, dedupe, verified blobs, OCIO in the manifest',
  async (t) => {
    const base = t.testdir({});
    const root = join(base, 'proj');
    const blend = write(join(root, 'shot.blend'), 'BLENDER scene bytes');
    const a = write(join(root, 'tex', 'a.png'), 'same bytes');
    const b = write(join(root, 'tex', 'b.png'), 'same bytes');
    const ocio = write(join(base, 'ocio', 'config.ocio'), 'search_path: luts\n');
    write(join(base, 'ocio', 'luts', 'x.cube'), 'cube');
    const calls: string[] = [];
    const local = new LocalObjectStore(join(base, 'store'));
    const spy: IObjectStore = {
      id: local.id,
      hasBlob: (s) => (calls.push('has'), local.hasBlob(s)),
      putBlobFromFile: (s, f, sig) => (calls.push('put'), local.putBlobFromFile(s, f, sig)),
      putBlob: (s, f, o) => (calls.push('put'), local.putBlob(s, f, o)),
      presence: () => {
        const check = local.presence();
        return {
          get requests() {
            return check.requests;
          },
          has: (blob) => (calls.push('has'), check.has(blob)),
        };
      },
      materializeBlob: (s, d, sig) => local.materializeBlob(s, d, sig),
      putJson: (k, v) => local.putJson(k, v),
      getJson: (k) => local.getJson(k),
    };
    const dependencies = [
      { path: a, relative: true },
      { path: b, relative: true },
      { path: join(root, 'tex', 'gone.png'), relative: true, missing: true },
    ];
    const request = {
      jobId: null,
      blendFile: blend,
      sourceBlendFile: blend,
      projectRoot: root,
      dependencies,
      store: spy,
      env: { OCIO: ocio },
    };
    const refused = await uploadProject({ ...request, strict: true }).catch((error: unknown) => error);
    t.ok(refused instanceof SkyfarmError && refused.code === 'MISSING_DEPENDENCIES', 'strict refuses');
    t.match((refused as Error).message, /gone\.png/);
    t.same(calls, [], 'strict refused before touching the store');

    const result = await uploadProject({ ...request, strict: false });
    t.equal(result.files, 5, 'scene, two textures, the OCIO config and its LUT');
    t.equal(result.blobsUploaded, 4, 'identical textures are one blob');
    t.equal(result.bytesUploaded, result.bytesTotal - 'same bytes'.length);
    t.same(result.missing, [join(root, 'tex', 'gone.png')]);
    t.equal(result.manifest.files['tex/a.png']?.sha256, sha('same bytes'));
    t.equal(result.manifest.env?.['OCIO'], `_external${join(base, 'ocio', 'config.ocio')}`);
    for (const [path, entry] of Object.entries(result.manifest.files)) {
      const stored = readFileSync(join(base, 'store', 'cas', entry.sha256.slice(0, 2), entry.sha256));
      t.equal(sha(stored), entry.sha256, `${path}: the stored blob has the right bytes`);
    }
    const again = await uploadProject({ ...request, strict: false });
    t.equal(again.bytesUploaded, 0, 'nothing new the second time');
    t.equal(again.manifestSha256, result.manifestSha256, 'the same project gives the same manifest');

    const out = join(base, 'job', 'project');
    const blendOut = await materializeProject(local, result.manifest, out);
    t.equal(blendOut, join(out, 'shot.blend'));
    t.equal(readFileSync(join(out, 'tex', 'b.png'), 'utf8'), 'same bytes');
    t.ok(existsSync(join(out, '_external', base, 'ocio', 'luts', 'x.cube')));
    t.same(readdirSync(join(out, 'tex')).sort(), ['a.png', 'b.png']);
  },
);
