// The scene upload in real Blender's GUI under Xvfb: Strict refusing with the missing files named,
// a big upload's live bar and "files · MB · MB/s · ETA" line driven by the add-on's own timer, and
// Cancel during the upload. Screenshots go to .tap/artifacts/addon-gui-upload/.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readPng } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import { makeBigUploadScene } from './helpers/big-files.js';
import {
  addonRoot,
  artifactsDir,
  blenderEnv,
  blenderVersion,
  runBlenderScript,
  startXvfb,
  tail,
} from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

const MiB = 1024 * 1024;

t.test('upload progress and Cancel in the GUI; Strict names the missing files', async (t) => {
  const dir = t.testdir({ project: { textures: {} } });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const project = path.join(dir, 'project');
  const { blendFile } = await makeBigUploadScene(project, {
    fileSize: 80 * MiB,
    missing: ['textures/wood.png', 'textures/metal.png'],
  });

  const display = await startXvfb(t);
  const artifacts = artifactsDir('addon-gui-upload');
  const result = await runBlenderScript(t, {
    script: 'gui_upload.py',
    background: false,
    blendFile,
    args: {
      addonSource: addonRoot,
      outputDir: path.join(dir, 'frames'),
      artifactsDir: artifacts,
      scrollToSubmit: 720,
      timeout: 240,
    },
    env: blenderEnv(t, { DISPLAY: display, SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 5 * 60_000,
  });
  for (const line of result.stdout.split('\n').filter((l) => l.startsWith('[skyfarm-test]'))) t.comment(line);
  t.notMatch(
    `${result.stdout}\n${result.stderr}`,
    /Traceback|Error in|rna_uiItem/,
    'no Python errors while drawing',
    {
      output: tail(result),
    },
  );
  for (const name of ['upload-strict.png', 'upload-progress.png', 'upload-canceled.png']) {
    const file = path.join(artifacts, name);
    t.ok(existsSync(file), `${name} was saved`);
    const png = await readPng(file);
    t.ok(
      png.width >= 800 && png.height >= 600,
      `${name} shows the maximised editor (${png.width}×${png.height})`,
    );
  }
  const [job] = daemon.jobs.list().jobs;
  t.match(
    job,
    { state: 'canceled', stages: { upload: 'canceled' } },
    'the daemon ended the job in its upload',
  );
  // Stopped here, before the fixture folder goes: a failed scenario may leave a job running.
  await daemon.stop();
});
