// The local backend names and places frames exactly as Blender does, for every form of output path:
// a folder only (Blender's startup `/tmp/`, `//out/`), no `#`, `##` mid-name, `#` in a folder name,
// File Extensions off, `//` alone and a path template; with and without --output. The reference is
// a plain `blender -b FILE -S SCENE -a` run of the same file.
import t from 'tap';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import { runSkyfarm } from './fakes/batch/farm.js';
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
  'local renders: frame files named and placed as Blender names them',
  { skip: blenderSkip, timeout: 900_000 },
  async (t) => {
    const dir = t.testdir({});
    const source = await makeOutputForms(path.join(dir, 'src'));
    const startupFrame = uniqueStartupFrame();
    const expected = await blenderNames(await copyForms(source, path.join(dir, 'ref')), startupFrame);
    for (const [scene, names] of expected)
      t.ok(names.length > 0, `plain Blender wrote frames for "${scene}": ${names.join(', ')}`);

    const daemon = await startTestDaemon(t, {
      stateDir: path.join(dir, 'home'),
      env: { SKYFARM_BLENDER: blenderCommand },
    });
    const home = daemon.paths.root;
    const blend = await copyForms(source, path.join(dir, 'sky'));
    const outputs = path.join(dir, 'chosen');
    const render = async (scene: string, extra: string[]) => {
      const run = await runSkyfarm(
        ['render', blend, '--scene', scene, ...extra, '--wait', '--json'],
        home,
        dir,
        600_000,
      );
      const what = `${scene}${extra.includes('--output') ? ' --output' : ''}`;
      t.equal(run.code, 0, `${what}: exit code 0`, { stderr: run.stderr.slice(-2000) });
      return JSON.parse(run.stdout || '{}') as Job;
    };
    const startupFrames = ['--frames', String(startupFrame)];
    t.teardown(() => rm(path.join('/tmp', `${startupFrame}.png`), { force: true }));

    // Without --output: the scene's own folder, as Blender resolves it.
    const own = await Promise.all([
      ...OUTPUT_FORMS.map((form) => render(form.scene, [])),
      render(STARTUP_SCENE, startupFrames),
    ]);
    for (const [index, form] of OUTPUT_FORMS.entries()) {
      const folder = path.join(path.dirname(blend), form.folder);
      const names = expected.get(form.scene)!;
      t.same(await frameFiles(folder), names, `${form.scene} (${form.outputPath}): Blender's names`);
      t.equal(
        own[index]?.output,
        path.normalize(folder),
        `${form.scene}: the job's output folder is Blender's`,
      );
      t.equal(own[index]?.state, 'done', `${form.scene}: done`);
    }
    const startupJob = own.at(-1)!;
    const startupNames = expected.get(STARTUP_SCENE)!;
    t.same(startupNames, [`${startupFrame}.png`], 'Blender names a startup-file frame <frame>.png in /tmp');
    t.equal(startupJob.state, 'done', 'a scene straight from the startup file renders (output /tmp/)');
    t.equal(startupJob.output, '/tmp', 'its output folder is /tmp');
    t.ok(existsSync(path.join('/tmp', startupNames[0]!)), `its frame is /tmp/${startupNames[0]}`);
    t.equal(startupJob.lastFrame, path.join('/tmp', startupNames[0]!), 'lastFrame is that frame');
    await rm(path.join('/tmp', startupNames[0]!), { force: true });

    // With --output: the chosen folder, the same names.
    const chosen = await Promise.all([
      ...OUTPUT_FORMS.map((form) => render(form.scene, ['--output', path.join(outputs, form.scene)])),
      render(STARTUP_SCENE, [...startupFrames, '--output', path.join(outputs, STARTUP_SCENE)]),
    ]);
    for (const [index, scene] of [...OUTPUT_FORMS.map((f) => f.scene), STARTUP_SCENE].entries()) {
      const names = expected.get(scene)!;
      t.same(await frameFiles(path.join(outputs, scene)), names, `${scene} --output: Blender's names`);
      const last = chosen[index]?.lastFrame ?? '';
      t.ok(
        names.some((name) => path.join(outputs, scene, name) === last),
        `${scene} --output: lastFrame ${path.basename(last)} is one of them`,
      );
    }
    t.notOk(existsSync(path.join('/tmp', `${startupFrame}.png`)), 'with --output nothing goes to /tmp');
  },
);
