// The scene upload as the artist sees it in real Blender: missing files named before submit, the
// Strict option refusing (in the add-on and, as a safety net, in the daemon), and a big project's
// upload followed live in window_manager.skyfarm (bar fraction, files · MB · MB/s · ETA) until Cancel
// stops it: the job ends canceled, no byte more is written and the local store keeps no partial blob.
// The upload is made observable by its size (a few hundred MB of generated textures), not by sleeps.
import t from 'tap';
import path from 'node:path';
import { makeScene } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import { makeBigUploadScene } from './helpers/big-files.js';
import { addonRoot, blenderEnv, blenderVersion, runBlenderScript } from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

const minute = 60_000;
const MiB = 1024 * 1024;

t.test('missing files are named before submit; Strict refuses with a clear message', async (t) => {
  const dir = t.testdir({ project: {} });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const project = path.join(dir, 'project');
  const blendFile = await makeScene(project, {
    name: 'shot.blend',
    frames: [1, 2],
    textures: [
      { path: 'textures/oak.png' },
      { path: 'textures/wood.png', create: false },
      { path: 'textures/metal.png', create: false },
    ],
  });
  const result = await runBlenderScript(t, {
    script: 'upload.py',
    blendFile,
    args: {
      scenario: 'missing-strict',
      addonSource: addonRoot,
      outputDir: path.join(dir, 'out'),
      missing: ['textures/metal.png', 'textures/wood.png'],
      renderTimeout: 180,
    },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 5 * minute,
  });
  // Operator reports go to Blender's report log, which background Blender prints.
  t.match(
    result.stdout,
    /Warning: skyfarm: submitting frames 1-2; 2 files missing: textures\/metal\.png, textures\/wood\.png/,
    'pressing Render names the missing files',
  );
  t.equal(daemon.jobs.list().jobs.length, 1, 'only the non-strict submit made a job');
  await daemon.stop(); // before the fixture folder goes, even if the scenario left a job running
});

t.test('a big upload shows live progress in Blender and Cancel stops it', async (t) => {
  const dir = t.testdir({ project: { textures: {} } });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const project = path.join(dir, 'project');
  const fileSize = 60 * MiB;
  const { blendFile, bigFiles } = await makeBigUploadScene(project, { fileSize });
  const result = await runBlenderScript(t, {
    script: 'upload.py',
    blendFile,
    args: {
      scenario: 'upload-cancel',
      addonSource: addonRoot,
      outputDir: path.join(dir, 'out'),
      storeDir: daemon.paths.store,
      bigFiles: bigFiles.length,
      bigBytes: bigFiles.length * fileSize,
    },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 5 * minute,
  });
  for (const line of result.stdout.split('\n').filter((l) => l.startsWith('[skyfarm-test]'))) t.comment(line);
  const [job] = daemon.jobs.list().jobs;
  t.match(
    job,
    { state: 'canceled', stages: { upload: 'canceled' } },
    'the daemon ended the job in its upload',
  );
  // Stopped here, before the fixture folder goes: a failed scenario may leave a job running.
  await daemon.stop();
});
