// The add-on in real Blender's GUI under Xvfb, installed from the built zip like a user would:
// press Render on skyfarm in Properties > Output, follow window_manager.skyfarm.jobs through
// bpy.app.timers to done, check the frames on disk, and save a screenshot of the panels.
import t from 'tap';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { makeScene, readPng } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import {
  artifactsDir,
  blenderEnv,
  blenderVersion,
  buildAddonZip,
  runBlenderScript,
  startXvfb,
  tail,
} from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

t.test('Render in the GUI follows the job to done and shows native panels', async (t) => {
  const dir = t.testdir({ project: {} });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(path.join(dir, 'project'), { name: 'shot.blend', frames: [1, 3] });
  const addonZip = path.join(dir, 'skyfarm-addon.zip');
  const built = await buildAddonZip(addonZip);
  t.equal(built.code, 0, 'the add-on zip builds', { output: tail(built) });

  const display = await startXvfb(t);
  const artifacts = artifactsDir('addon-gui');
  const outputDir = path.join(dir, 'frames');
  const result = await runBlenderScript(t, {
    script: 'gui_render.py',
    background: false,
    blendFile,
    args: {
      addonZip,
      blendFile,
      outputDir,
      resolution: [80, 45],
      frames: 3,
      renderTimeout: 180,
      timeout: 300,
      artifactsDir: artifacts,
      scrollPixels: 720,
    },
    env: blenderEnv(t, { DISPLAY: display, SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 6 * 60_000,
  });
  t.match(result.stdout, /installed .*skyfarm-addon\.zip/, 'the add-on came from the built zip');
  // Errors while drawing panels do not stop Blender; they only print a traceback.
  t.notMatch(
    `${result.stdout}\n${result.stderr}`,
    /Traceback|Error in|rna_uiItem/,
    'no Python errors while drawing',
    {
      output: tail(result),
    },
  );

  for (const frame of ['frame_0001.png', 'frame_0002.png', 'frame_0003.png']) {
    const info = await readPng(path.join(outputDir, frame));
    t.same([info.width, info.height], [80, 45], `${frame} is a whole PNG at the unsaved resolution`);
  }
  const screenshot = path.join(artifacts, 'addon-output-panels.png');
  t.ok(existsSync(screenshot) && statSync(screenshot).size > 10_000, 'the panel screenshot was saved');
  const shot = await readPng(screenshot);
  t.ok(
    shot.width >= 800 && shot.height >= 600,
    `the screenshot shows the maximised editor (${shot.width}×${shot.height})`,
  );
  t.comment(`panel screenshot: ${screenshot}`);
  const prefsShot = path.join(artifacts, 'addon-preferences.png');
  t.ok(existsSync(prefsShot), 'the preferences screenshot was saved');
  t.comment(`preferences screenshot: ${prefsShot}`);
});
