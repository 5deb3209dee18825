// Modifier caches, local and in a linked library: a baked Ocean reads its maps (relative to the
// library that owns it), a Mesh Cache its PC2/MDD file (one outside the project), a baked smoke domain
// its cache folders, a geometry-nodes bake (4.1+) its meta and blobs; an unbaked Ocean or domain reads
// nothing and is not reported missing. skyfarm uploads exactly what Blender opens while rendering
// every frame (strace), --strict passes, and a baked ocean whose maps are gone is reported missing.
import t from 'tap';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { blenderSkip, blenderVersion } from './helpers/scenes.js';
import { straceAvailable } from './helpers/file-trace.js';
import {
  addonDependencies,
  bakeOceans,
  buildDependencyScene,
  compareWithBlender,
  fluidWorks,
  probeScene,
  traceBlenderRender,
  uploadScene,
} from './helpers/dependency-scenes.js';

const skip = blenderSkip || (straceAvailable ? false : 'strace is not installed (apt-get install strace)');

t.test('modifier caches: what Blender reads, local and linked', { skip, timeout: 900_000 }, async (t) => {
  const base = t.testdir({});
  const noFluid = await fluidWorks(t);
  const scene = await buildDependencyScene(t, 'modifier-caches', base, { fluid: !noFluid });
  await bakeOceans(t, scene['oceans'] as string[]);
  const [project, outside] = scene.roots as [string, string];
  const fx = path.join(project, 'fx');
  const probe = await probeScene(scene);
  const upload = await uploadScene(t, scene, path.join(base, 'home'));
  t.equal(upload.code, 0, 'skyfarm upload exits 0');
  const trace = await traceBlenderRender(t, scene, path.join(base, 'frames'));
  compareWithBlender(t, { trace, probe, upload, expectedMissing: [] });

  const listed = new Set(probe.dependencies.map((dependency) => dependency.path));
  const maps = (folder: string) => [1, 2, 3].map((frame) => path.join(folder, `disp_000${frame}.exr`));
  for (const file of [...maps(path.join(fx, 'ocean cache')), ...maps(path.join(outside, 'local ocean'))]) {
    t.ok(listed.has(file), `baked ocean map ${path.relative(project, file)}`);
  }
  t.ok(
    listed.has(path.join(fx, 'mesh cache', 'wave.pc2')),
    "a linked Mesh Cache's PC2, relative to its library",
  );
  t.ok(listed.has(path.join(outside, 'anim ü.mdd')), 'an MDD outside the project');
  t.notOk(
    [...listed].some((file) => file.includes('unbaked ocean') || file.includes('cache_fluid')),
    'an unbaked ocean or domain reads nothing',
  );
  if (blenderVersion && Number(blenderVersion.split('.')[0]) >= 4) {
    const bakes = [...listed].filter((file) => file.includes(`${path.sep}blendcache_fx lib${path.sep}`));
    t.ok(
      bakes.some((file) => file.endsWith('.json')) && bakes.some((file) => file.endsWith('.blob')),
      'the geometry-nodes bake beside its library',
    );
  }

  t.test('fluid caches', { skip: noFluid }, async (t) => {
    const smoke = [...listed].filter((file) => file.includes(`${path.sep}smoke cache${path.sep}`));
    const local = [...listed].filter((file) => file.includes(`${path.sep}local smoke${path.sep}`));
    t.same(
      smoke.map((file) => path.relative(path.join(fx, 'smoke cache'), file)).sort(),
      [
        'config/config_0001.uni',
        'config/config_0002.uni',
        'config/config_0003.uni',
        'data/fluid_data_0001.vdb',
        'data/fluid_data_0002.vdb',
        'data/fluid_data_0003.vdb',
      ],
      "the linked domain's baked cache, relative to its library",
    );
    t.equal(local.length, 6, "the shot's own domain");
  });

  const strict = await uploadScene(t, scene, path.join(base, 'home'), ['--strict']);
  t.equal(strict.code, 0, '--strict passes: every file Blender reads is there');
  const addon = await addonDependencies(t, scene.blend);
  t.same(
    addon.map((d) => [d.path, d.missing]).sort(),
    probe.dependencies.map((d) => [d.path, d.missing]).sort(),
    "the add-on's collect() lists the same files as the probe",
  );

  t.test('a baked ocean whose maps are gone is reported missing', async (t) => {
    const folder = path.join(fx, 'ocean cache');
    for (const name of await readdir(folder)) await rm(path.join(folder, name));
    const expected = maps(folder);
    const missingProbe = await probeScene(scene);
    const missingUpload = await uploadScene(t, scene, path.join(base, 'home'));
    const missingTrace = await traceBlenderRender(t, scene, path.join(base, 'frames-missing'));
    compareWithBlender(t, {
      trace: missingTrace,
      probe: missingProbe,
      upload: missingUpload,
      expectedMissing: expected,
    });
    const refused = await uploadScene(t, scene, path.join(base, 'home'), ['--strict']);
    t.equal(refused.code, 1, '--strict refuses');
    t.match(refused.result.error, { code: 'MISSING_DEPENDENCIES', message: /disp_0001\.exr/ });
  });
});
