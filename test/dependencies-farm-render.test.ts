// The render side of dependency collection: each dependency scene (point caches, modifier caches,
// sequences and files of every kind, with linked libraries, caches and textures outside the project
// named by absolute paths) is rendered by `skyfarm render --wait` on the local backend with Blender
// under strace. The job's Blender reads only the job's copy (render_chunk.py's Remapper rewrote every
// path that led outside it, a library outside the project tree brought its cache folder along), reads
// the same files Blender reads rendering the original, and logs exactly the missing files as missing.
import t from 'tap';
import path from 'node:path';
import { blenderSkip } from './helpers/scenes.js';
import { straceAvailable } from './helpers/file-trace.js';
import {
  bakeOceans,
  buildDependencyScene,
  compareFarmRender,
  farmRender,
  fluidWorks,
  traceBlenderRender,
} from './helpers/dependency-scenes.js';

const skip = blenderSkip || (straceAvailable ? false : 'strace is not installed (apt-get install strace)');

t.test('the farm finds every file where Blender looks', { skip, timeout: 1_800_000 }, async (t) => {
  const noFluid = await fluidWorks(t);

  t.test('point caches, linked and outside the project', async (t) => {
    const base = t.testdir({});
    const scene = await buildDependencyScene(t, 'point-caches', base);
    const reference = await traceBlenderRender(t, scene, path.join(base, 'frames'));
    compareFarmRender(t, await farmRender(t, scene, base), reference, []);
  });

  t.test('modifier caches, linked and outside the project', async (t) => {
    const base = t.testdir({});
    const scene = await buildDependencyScene(t, 'modifier-caches', base, { fluid: !noFluid });
    await bakeOceans(t, scene['oceans'] as string[]);
    const reference = await traceBlenderRender(t, scene, path.join(base, 'frames'));
    compareFarmRender(t, await farmRender(t, scene, base), reference, []);
  });

  t.test('sequences, tiles, fonts, movies, volumes; one file missing', async (t) => {
    const base = t.testdir({});
    const scene = await buildDependencyScene(t, 'sequences', base, { volumes: !noFluid });
    const reference = await traceBlenderRender(t, scene, path.join(base, 'frames'));
    compareFarmRender(t, await farmRender(t, scene, base), reference, scene.missing ?? []);
  });
});
