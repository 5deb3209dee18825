// Point caches on disk (cloth, particles, soft body, dynamic paint), local and linked, directly and
// through another library, from a library outside the project: skyfarm uploads exactly what Blender
// opens while rendering every frame (checked with strace), reports nothing missing on the complete
// shot (--strict passes), ignores a stored folder Blender ignores and an unbaked cache, and reports a
// baked cache whose files are gone.
import t from 'tap';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { blenderEnv, run, tail } from '../blender-addon/tests/harness.js';
import { straceAvailable } from './helpers/file-trace.js';
import {
  addonDependencies,
  buildDependencyScene,
  compareWithBlender,
  filesUnder,
  probeScene,
  traceBlenderRender,
  uploadScene,
} from './helpers/dependency-scenes.js';

const skip = blenderSkip || (straceAvailable ? false : 'strace is not installed (apt-get install strace)');

t.test(
  'point caches: what Blender reads, local and through libraries',
  { skip, timeout: 900_000 },
  async (t) => {
    const base = t.testdir({});
    const scene = await buildDependencyScene(t, 'point-caches', base);
    const [project, outside] = scene.roots as [string, string];
    const lib = path.join(project, 'lib');
    const trace = await traceBlenderRender(t, scene, path.join(base, 'frames'));
    const probe = await probeScene(scene);
    const upload = await uploadScene(t, scene, path.join(base, 'home'));
    t.equal(upload.code, 0, 'skyfarm upload exits 0');
    compareWithBlender(t, { trace, probe, upload, expectedMissing: [] });

    const listed = new Set(probe.dependencies.map((dependency) => dependency.path));
    const onDisk = await filesUnder([base]);
    const folder = (...parts: string[]) =>
      [...onDisk].filter((file) => path.dirname(file) === path.join(...parts));
    const unbaked = (file: string) => path.basename(file).startsWith('556E62616B6564_'); // "Unbaked"
    for (const [what, files] of [
      ['linked caches beside their library', folder(lib, 'blendcache_sim lib')],
      ["the external cache's own folder, relative to its library", folder(lib, 'ext cache')],
      [
        "the local cloth, and the linked cache with 'Library Path' off, beside the shot",
        folder(project, 'shots', 'blendcache_shot'),
      ],
      ['the cache of a library outside the project, beside it', folder(outside, 'blendcache_ext lib')],
    ] as const) {
      t.ok(files.length >= 3, `${what}: baked`);
      t.same(
        files.filter((file) => !listed.has(file)),
        [],
        `${what}: every file listed`,
      );
    }
    t.notOk(
      [...listed].some((file) => file.includes('stale folder') || unbaked(file)),
      'neither the stored folder of a non-external cache nor the never baked cloth',
    );
    t.ok(
      listed.has(path.join(lib, 'blendcache_sim lib', '54C3BC6368_000002_00.bphys')),
      'a non-ASCII object name is hex-encoded byte by byte (Tüch)',
    );

    const strict = await uploadScene(t, scene, path.join(base, 'home'), ['--strict']);
    t.equal(strict.code, 0, '--strict passes: every file Blender reads is there');

    const addon = await addonDependencies(t, scene.blend);
    t.same(
      addon.map((d) => [d.path, d.missing]).sort(),
      probe.dependencies.map((d) => [d.path, d.missing]).sort(),
      "the add-on's collect() lists the same files as the probe",
    );

    t.test('a cache baked after an upload is in the next one (the probe is not reused)', async (t) => {
      const baked = await run(
        blenderCommand,
        [
          '-b',
          path.join(lib, 'sim lib.blend'),
          '--python-exit-code',
          '1',
          '--python-expr',
          'import bpy\nob = bpy.data.objects["Unbaked"]\n' +
            'with bpy.context.temp_override(point_cache=ob.modifiers["Cloth"].point_cache):\n' +
            '    bpy.ops.ptcache.bake(bake=True)\nbpy.ops.wm.save_mainfile()\n',
        ],
        { env: blenderEnv(t), timeoutMs: 120_000 },
      );
      t.equal(baked.code, 0, 'Blender baked the cloth in its library', { output: tail(baked) });
      const again = await uploadScene(t, scene, path.join(base, 'home'));
      const files = [...again.sources].filter((file) => unbaked(file)).map((file) => path.basename(file));
      t.same(files.sort(), [
        '556E62616B6564_000001_00.bphys',
        '556E62616B6564_000002_00.bphys',
        '556E62616B6564_000003_00.bphys',
      ]);
    });

    t.test('a baked cache whose files are gone is reported missing', async (t) => {
      const folder = path.join(lib, 'blendcache_sim lib');
      for (const name of await readdir(folder)) {
        if (name.startsWith('456D6974746572_')) await rm(path.join(folder, name)); // "Emitter"
      }
      const expected = path.join(folder, '456D6974746572_000001_00.bphys');
      const missingTrace = await traceBlenderRender(t, scene, path.join(base, 'frames-missing'));
      const missingProbe = await probeScene(scene);
      const missingUpload = await uploadScene(t, scene, path.join(base, 'home'));
      compareWithBlender(t, {
        trace: missingTrace,
        probe: missingProbe,
        upload: missingUpload,
        expectedMissing: [expected],
      });
      const refused = await uploadScene(t, scene, path.join(base, 'home'), ['--strict']);
      t.equal(refused.code, 1, '--strict refuses');
      t.match(refused.result.error, {
        code: 'MISSING_DEPENDENCIES',
        message: /456D6974746572_000001_00\.bphys/,
      });
    });
  },
);
