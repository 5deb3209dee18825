// The add-on inside real Blender in background mode (`blender -b`) with jobs that do not simply
// succeed: Cancel from Blender, a failing job, and the daemon missing or going away mid-job.
import t from 'tap';
import path from 'node:path';
import { makeScene } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import {
  addonRoot,
  blenderEnv,
  blenderVersion,
  cliEntry,
  runBlenderScript,
  daemonHomeStartedByBlender,
  nodeForBlender,
} from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

const addonSource = addonRoot;
const minute = 60_000;

t.test('Cancel stops a running job', async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 60], samples: 16 });
  await runBlenderScript(t, {
    script: 'background.py',
    blendFile,
    args: { scenario: 'cancel', addonSource, outputDir: path.join(dir, 'out') },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 3 * minute,
  });
});

t.test("a failing job reports the daemon's message", async (t) => {
  const dir = t.testdir({});
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(dir, { frames: [1, 2], failFirstFrame: true });
  await runBlenderScript(t, {
    script: 'background.py',
    blendFile,
    args: { scenario: 'failure', addonSource, outputDir: path.join(dir, 'out'), renderTimeout: 180 },
    env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 5 * minute,
  });
});

t.test('no daemon: Start Daemon; daemon stopped mid-job: disconnected, then the true state', async (t) => {
  const dir = t.testdir({});
  const home = daemonHomeStartedByBlender(t);
  const blendFile = await makeScene(dir, { frames: [1, 6], samples: 8 });
  await runBlenderScript(t, {
    script: 'background.py',
    blendFile,
    args: {
      scenario: 'daemon-lifecycle',
      addonSource,
      skyfarmCommand: `"${nodeForBlender(t)}" "${cliEntry}"`,
      outputDir: path.join(dir, 'out'),
      frames: 6,
      renderTimeout: 240,
    },
    env: blenderEnv(t, { SKYFARM_HOME: home, SKYFARM_PORT: '0' }),
    timeoutMs: 6 * minute,
  });
});
