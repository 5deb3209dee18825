// The scene upload in real Blender's GUI under Xvfb: Strict refusing with the missing files named,
// a big upload's live bar and "files · MB · MB/s · ETA" line driven by the add-on's own timer, and
// Cancel during the upload. Screenshots go to .tap/artifacts/addon-gui-upload/; each is checked for
// what Blender drew (the editor, its panels, the upload's bar filled to its share).
import t from 'tap';
import path from 'node:path';
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
import { checkCapture } from '../blender-addon/tests/screen.js';

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
    display,
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
  t.same(
    result.captures.map((capture) => capture.name),
    ['upload-strict', 'upload-progress', 'upload-canceled'],
    'every screenshot was taken',
  );
  for (const capture of result.captures) {
    checkCapture(t, capture);
    t.comment(
      `screenshot: ${capture.png}${capture.texts ? ` (the job box reads: ${capture.texts.join(' | ')})` : ''}`,
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
