// The AWS worker names frames exactly as Blender does, the same as the local backend: every form of
// output path (Blender's startup `/tmp/`, a folder only, no `#`, `##` mid-name, `#` in a folder name,
// File Extensions off, `//` alone, a path template), with and without --output, on the fake farm
// (the real worker, real Blender). The frames come back into the folder Blender would write them to
// (`skyfarm download` too) under the names a plain `blender -b FILE -S SCENE -a` gives them.
import t from 'tap';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { blenderSkip } from './helpers/scenes.js';
import { runSkyfarm, startFarm } from './fakes/batch/farm.js';
import {
  blenderNames,
  copyForms,
  frameFiles,
  makeOutputForms,
  OUTPUT_FORMS,
  STARTUP_SCENE,
  uniqueStartupFrame,
} from './helpers/output-forms.js';
import type { Job } from '../protocol/generated/protocol.js';

t.test(
  'AWS renders: frame files named and placed as Blender names them',
  { skip: blenderSkip, timeout: 900_000 },
  async (t) => {
    const farm = await startFarm(t, { maxRunning: 4 });
    await farm.startDaemon();
    const dir = farm.dir;
    const source = await makeOutputForms(path.join(dir, 'src'));
    const startupFrame = uniqueStartupFrame();
    const expected = await blenderNames(await copyForms(source, path.join(dir, 'ref')), startupFrame);
    const blend = await copyForms(source, path.join(dir, 'sky'));
    const outputs = path.join(dir, 'chosen');
    const startupFile = path.join('/tmp', `${startupFrame}.png`);
    t.teardown(() => rm(startupFile, { force: true }));

    const render = async (scene: string, extra: string[]) => {
      const run = await runSkyfarm(
        ['render', blend, '--backend', 'aws', '--scene', scene, ...extra, '--wait', '--json'],
        farm.stateDir,
        dir,
        600_000,
      );
      const what = `${scene}${extra.includes('--output') ? ' --output' : ''}`;
      t.equal(run.code, 0, `${what}: exit code 0`, { stderr: run.stderr.slice(-2000) });
      return JSON.parse(run.stdout || '{}') as Job;
    };
    const startupFrames = ['--frames', String(startupFrame)];
    const scenes = [...OUTPUT_FORMS.map((form) => form.scene), STARTUP_SCENE];

    // With --output: the chosen folder, Blender's names.
    const chosen = await Promise.all(
      scenes.map((scene) =>
        render(scene, [
          ...(scene === STARTUP_SCENE ? startupFrames : []),
          '--output',
          path.join(outputs, scene),
        ]),
      ),
    );
    for (const [index, scene] of scenes.entries()) {
      t.equal(chosen[index]?.state, 'done', `${scene} --output: done`);
      t.same(
        await frameFiles(path.join(outputs, scene)),
        expected.get(scene),
        `${scene} --output: Blender's names`,
      );
    }
    t.notOk(existsSync(startupFile), 'with --output nothing goes to /tmp');

    // Without --output: the folder Blender writes to.
    const own = await Promise.all(
      scenes.map((scene) => render(scene, scene === STARTUP_SCENE ? startupFrames : [])),
    );
    for (const [index, form] of OUTPUT_FORMS.entries()) {
      const folder = path.normalize(path.join(path.dirname(blend), form.folder));
      t.equal(
        own[index]?.output,
        folder,
        `${form.scene} (${form.outputPath}): the job's folder is Blender's`,
      );
      t.same(await frameFiles(folder), expected.get(form.scene), `${form.scene}: Blender's names`);
    }
    const startupJob = own.at(-1)!;
    t.equal(startupJob.state, 'done', 'a scene straight from the startup file renders on the farm');
    t.equal(startupJob.output, '/tmp', 'into /tmp, its output folder');
    t.same(expected.get(STARTUP_SCENE), [`${startupFrame}.png`], 'Blender names it <frame>.png');
    t.ok(existsSync(startupFile), `as ${startupFile}, the name Blender gives it`);

    // `skyfarm download` fetches the published frames under the same names.
    const noHash = OUTPUT_FORMS.findIndex((form) => form.scene === 'hash-mid-name');
    const again = path.join(dir, 'again');
    const download = await runSkyfarm(
      ['download', own[noHash]!.id, '--output', again, '--json'],
      farm.stateDir,
      dir,
    );
    t.equal(download.code, 0, 'download: exit code 0', { stderr: download.stderr });
    t.same(await frameFiles(again), expected.get('hash-mid-name'), 'download: Blender’s names');
  },
);
