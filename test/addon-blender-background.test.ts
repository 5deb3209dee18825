// The add-on inside real Blender in background mode (`blender -b`): registering twice, bad input
// explained by Render's poll, submitting from a script (unsaved changes, dependencies, frames on
// disk) and untitled files. Cancel, failures and daemon restarts: addon-blender-jobs.test.ts.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeScene } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import {
  addonRoot,
  blender,
  blenderEnv,
  blenderVersion,
  repoRoot,
  run,
  runBlenderScript,
  tail,
} from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

const addonSource = addonRoot;
const probeScript = path.join(repoRoot, 'daemon', 'blender', 'probe.py');
const minute = 60_000;

t.test('registers and unregisters cleanly twice; preferences and scene properties exist', async (t) => {
  const env = blenderEnv(t, { SKYFARM_HOME: path.join(t.testdir({}), 'no-daemon-here') });
  await runBlenderScript(t, {
    script: 'background.py',
    args: { scenario: 'register', addonSource },
    env,
    timeoutMs: 2 * minute,
  });
});

t.test('submit from a script reaches the daemon and renders the unsaved state', async (t) => {
  const dir = t.testdir({ 'project ü': {}, libs: {}, outside: {} });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const project = path.join(dir, 'project ü');
  const blendFile = await makeScene(project, {
    name: 'shot 01 ü.blend',
    frames: [1, 3],
    textures: [
      { path: 'tex/wood grain ü.png' },
      { path: 'tex/gone.png', create: false },
      { path: path.join(dir, 'outside', 'shared tex.png'), relative: false },
    ],
    library: path.join(dir, 'libs', 'props lib.blend'),
  });
  const outputDir = path.join(dir, 'frames out');
  const dependenciesOut = path.join(dir, 'addon-dependencies.json');
  await runBlenderScript(t, {
    script: 'background.py',
    blendFile,
    args: {
      scenario: 'submit',
      addonSource,
      blendFile,
      outputDir,
      resolution: [72, 40],
      frameSpec: '1,3',
      expectedFrames: ['frame_0001.png', 'frame_0003.png'],
      expectedDependencies: [
        { path: path.join(project, 'tex', 'wood grain ü.png'), kind: 'image', missing: false },
        { path: path.join(project, 'tex', 'gone.png'), kind: 'image', missing: true },
        { path: path.join(dir, 'outside', 'shared tex.png'), kind: 'image', missing: false },
        { path: path.join(dir, 'libs', 'props lib.blend'), kind: 'library', missing: false },
      ],
      missingNames: ['gone.png'],
      renderTimeout: 180,
      dependenciesOut,
    },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 5 * minute,
  });

  // The add-on collects dependencies in the live session because the daemon only sees a temporary
  // copy; both must agree on the saved file, or the daemon would upload a different set.
  const probe = await run(
    blender,
    ['-b', '--factory-startup', blendFile, '--python-exit-code', '3', '--python', probeScript, '--', '{}'],
    { env: blenderEnv(t), timeoutMs: 2 * minute },
  );
  const line = probe.stdout.split('\n').find((text) => text.startsWith('SKYFARM_PROBE '));
  t.ok(line, 'the daemon probe ran', { output: tail(probe) });
  const probed = (JSON.parse(line!.slice('SKYFARM_PROBE '.length)) as { dependencies: object[] })
    .dependencies;
  const key = (entries: object[]) =>
    entries.map((entry) => JSON.stringify(entry, Object.keys(entry).sort())).sort();
  t.same(
    key(JSON.parse(readFileSync(dependenciesOut, 'utf8')) as object[]),
    key(probed),
    'same list as the daemon probe',
  );
});

t.test('each bad input disables Render with a reason', async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 3] });
  await runBlenderScript(t, {
    script: 'background.py',
    blendFile,
    args: { scenario: 'bad-inputs', addonSource },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 2 * minute,
  });
});

t.test('an untitled, never saved file renders', async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  await runBlenderScript(t, {
    script: 'background.py',
    args: { scenario: 'untitled', addonSource, outputDir: path.join(dir, 'out'), renderTimeout: 180 },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 5 * minute,
  });
});
