// The add-on in real Blender's GUI under Xvfb, installed from the built zip like a user would (with
// Install… as a legacy add-on, and on 4.2+ also as an extension with `blender --command extension
// install-file`): press Render on skyfarm in Properties > Output, follow
// window_manager.skyfarm.jobs through bpy.app.timers to done, check the frames on disk, and check
// the screenshots taken mid-render and at the end show the panels, the job's bar filled to its
// share, and its text.
import t, { type Test } from 'tap';
import path from 'node:path';
import { makeScene, readPng } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import {
  artifactsDir,
  blenderEnv,
  blenderRelease,
  blenderVersion,
  buildAddonZip,
  installExtension,
  runBlenderScript,
  startXvfb,
  tail,
} from '../blender-addon/tests/harness.js';
import { checkCapture } from '../blender-addon/tests/screen.js';

t.comment(`using ${blenderVersion()}`);
const [major, minor] = blenderRelease();
const extensions = major > 4 || (major === 4 && minor >= 2);

async function renderFromThePanel(t: Test, asExtension: boolean): Promise<void> {
  const dir = t.testdir({ project: {} });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  // 32 samples: each frame takes long enough that the panel is seen part-way through the job.
  const blendFile = await makeScene(path.join(dir, 'project'), {
    name: 'shot.blend',
    frames: [1, 3],
    samples: 32,
  });
  const addonZip = path.join(dir, 'skyfarm-addon.zip');
  const built = await buildAddonZip(addonZip);
  t.equal(built.code, 0, 'the add-on zip builds', { output: tail(built) });

  const display = await startXvfb(t);
  const env = blenderEnv(t, { DISPLAY: display, SKYFARM_HOME: daemon.paths.root });
  if (asExtension) {
    const installed = await installExtension(addonZip, env);
    t.equal(installed.code, 0, 'blender --command extension install-file installs and enables the zip', {
      output: tail(installed),
    });
  }
  const artifacts = artifactsDir(asExtension ? 'addon-gui' : 'addon-gui-legacy');
  const outputDir = path.join(dir, 'frames');
  const result = await runBlenderScript(t, {
    script: 'gui_render.py',
    background: false,
    // The extension is enabled in the preferences the install saved, as it is for a user.
    factoryStartup: !asExtension,
    display,
    blendFile,
    args: {
      ...(asExtension ? { extension: true } : { addonZip }),
      blendFile,
      outputDir,
      resolution: [80, 45],
      frames: 3,
      renderTimeout: 180,
      timeout: 300,
      artifactsDir: artifacts,
      scrollPixels: 720,
    },
    env,
    timeoutMs: 6 * 60_000,
  });
  if (asExtension) {
    t.match(
      result.stdout,
      /extension enabled at startup: bl_ext\.user_default\.skyfarm/,
      'the add-on is the installed extension',
    );
  } else {
    t.match(result.stdout, /installed .*skyfarm-addon\.zip/, 'the add-on came from the built zip');
  }
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
  t.same(
    result.captures.map((capture) => capture.name),
    ['addon-job-rendering', 'addon-job-done', 'addon-output-panels', 'addon-preferences'],
    'every screenshot was taken',
  );
  for (const capture of result.captures) {
    checkCapture(t, capture);
    t.comment(
      `screenshot: ${capture.png}${capture.texts ? ` (the job box reads: ${capture.texts.join(' | ')})` : ''}`,
    );
  }
}

t.test('installed as a legacy add-on (Install…), Render in the GUI follows the job to done', async (t) => {
  await renderFromThePanel(t, false);
});

// Blender 4.2 introduced extensions, the way to install there; the legacy install above still works.
if (extensions) {
  t.test('installed as an extension, Render in the GUI follows the job to done', async (t) => {
    await renderFromThePanel(t, true);
  });
}
