// Sequences, tiles and every other kind of file, local and through libraries (direct and indirect),
// with spaces and non-ASCII names, one outside the project, one missing: an image sequence numbered
// mid-name (render_0002_beauty.png is frame 2: Blender's last group of digits), one numbered before
// the extension, the tiles a UDIM image defines (not a look-alike file beside them), a font, a movie,
// an IES light, volume sequences (the frame is the digits before the extension: cloud_0001_hi.vdb is
// no sequence), and the sequencer's image, movie, movie clip and sound strips. skyfarm uploads exactly
// what Blender opens while rendering every frame (strace) and reports only the missing file missing.
// Alembic caches, which these Debian Blenders cannot read, are checked against the probe alone.
import t from 'tap';
import path from 'node:path';
import { blenderSkip } from './helpers/scenes.js';
import { straceAvailable } from './helpers/file-trace.js';
import {
  addonDependencies,
  buildDependencyScene,
  compareWithBlender,
  fluidWorks,
  probeScene,
  traceBlenderRender,
  uploadScene,
  type BuiltScene,
} from './helpers/dependency-scenes.js';

const skip = blenderSkip || (straceAvailable ? false : 'strace is not installed (apt-get install strace)');

t.test('sequences, tiles and other files: what Blender reads', { skip, timeout: 900_000 }, async (t) => {
  const base = t.testdir({});
  const noVolumes = await fluidWorks(t); // the .vdb files are baked by Blender's fluid simulation
  const built = await buildDependencyScene(t, 'sequences', base, { volumes: !noVolumes });
  const [project] = built.roots as [string, string];
  const tex = path.join(project, 'tex');
  const missing = built.missing ?? [];

  const shot = built;
  const probe = await probeScene(shot);
  const upload = await uploadScene(t, shot, path.join(base, 'home'));
  t.equal(upload.code, 0, 'skyfarm upload exits 0');
  const trace = await traceBlenderRender(t, shot, path.join(base, 'frames'));
  compareWithBlender(t, { trace, probe, upload, expectedMissing: missing });

  const listed = new Set(probe.dependencies.map((dependency) => dependency.path));
  for (const frame of [1, 2, 3]) {
    t.ok(
      listed.has(path.join(tex, 'seq ü', `render_000${frame}_beauty.png`)),
      `mid-name sequence frame ${frame}`,
    );
    t.ok(listed.has(path.join(tex, `shot.000${frame}.png`)), `sequence frame ${frame} (indirect library)`);
  }
  t.ok(listed.has(path.join(tex, 'udim', 'skin.1002.png')), 'a UDIM tile the image defines');
  t.notOk(listed.has(path.join(tex, 'udim', 'skin.1003.png')), 'not a file that only looks like a tile');

  t.test('volume sequences', { skip: noVolumes }, async (t) => {
    const volumes = path.join(project, 'volumes');
    for (const frame of [1, 2, 3])
      t.ok(listed.has(path.join(volumes, `smoke.000${frame}.vdb`)), `smoke.000${frame}.vdb`);
    t.ok(listed.has(path.join(volumes, 'cloud_0001_hi.vdb')), 'the mid-name numbered volume itself');
    t.notOk(listed.has(path.join(volumes, 'cloud_0002_hi.vdb')), 'is no sequence: its neighbour is not read');
  });

  const strict = await uploadScene(t, shot, path.join(base, 'home'), ['--strict']);
  t.equal(strict.code, 1, '--strict refuses the shot with a missing texture');
  t.match(strict.result.error, { code: 'MISSING_DEPENDENCIES', message: /missing\.png/ });
  const addon = await addonDependencies(t, shot.blend);
  t.same(
    addon.map((d) => [d.path, d.missing]).sort(),
    probe.dependencies.map((d) => [d.path, d.missing]).sort(),
    "the add-on's collect() lists the same files as the probe",
  );

  t.test('the sequencer: image, movie, movie clip and sound strips', async (t) => {
    const edit: BuiltScene = { blend: built['edit'] as string, roots: built.roots };
    const editProbe = await probeScene(edit);
    const editUpload = await uploadScene(t, edit, path.join(base, 'home'), ['--strict']);
    t.equal(editUpload.code, 0, '--strict passes: every file Blender reads is there');
    const editTrace = await traceBlenderRender(t, edit, path.join(base, 'frames-edit'));
    compareWithBlender(t, { trace: editTrace, probe: editProbe, upload: editUpload, expectedMissing: [] });
    t.ok(editUpload.sources.has(path.join(project, 'sounds', 'beep.wav')), 'the sound of a sound strip');
  });
});

t.test(
  'Alembic caches: sequences by the digits before the extension, and layers',
  { skip: blenderSkip },
  async (t) => {
    const scene = await buildDependencyScene(t, 'alembic', t.testdir({}));
    const folder = scene['folder'] as string;
    const probe = await probeScene(scene);
    const listed = probe.dependencies
      .filter((d) => d.kind === 'cache')
      .map((d) => path.relative(folder, d.path));
    t.same(
      listed.sort(),
      ['anim_0001.abc', 'anim_0001_v2.abc', 'anim_0002.abc', 'anim_0003.abc', 'fix layer.abc'],
      'every frame of anim_####.abc; anim_0001_v2.abc alone (Blender reads no other frame of it); the layer',
    );
  },
);
