// probeBlend against real Blender: scene settings, output paths, dependencies (relative, absolute,
// outside the project, missing, linked library, spaces and non-ASCII names), scene selection and
// the errors a user can run into.
import t from 'tap';
import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isSkyfarmError } from '../daemon/src/errors.js';
import { findBlender, probeArgs, probeBlend, runBlender } from '../daemon/src/render/blender.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isSkyfarmError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected an error');
}

t.test('probe with real Blender', { skip: blenderSkip }, async (t) => {
  const blender = (await findBlender()).path;
  const root = t.testdir({ project: {}, elsewhere: {} });
  const project = path.join(root, 'project');
  const blendFile = await makeScene(project, {
    name: 'shot 01 ü.blend',
    frames: [5, 17],
    sceneName: 'Main Shot',
    extraScenes: ['Alt', 'Ölsardine'],
    outputPath: '//render/shot_####',
    textures: [
      { path: 'textures/wood grain.png' },
      { path: 'textures/ñandú.png' },
      { path: 'textures/missing.png', create: false },
      { path: path.join(root, 'elsewhere', 'outside.png'), relative: false },
      { path: path.join(root, 'elsewhere', 'gone.png'), relative: false, create: false },
    ],
    library: 'libs/props library.blend',
  });

  const probe = await probeBlend(blender, blendFile);

  t.test('scene settings of the active scene', async (t) => {
    t.equal(probe.blenderVersion.length, 3);
    t.ok(probe.blenderVersion[0]! >= 3, 'Blender major version');
    t.equal(probe.blendFile, blendFile);
    t.same([...probe.scenes].sort(), ['Alt', 'Main Shot', 'Ölsardine'].sort());
    t.match(probe.scene, {
      name: 'Main Shot',
      frameStart: 5,
      frameEnd: 17,
      frameStep: 1,
      hasCamera: true,
      camera: 'Camera',
      engine: 'CYCLES',
      resolutionX: 64,
      resolutionY: 36,
      resolutionPercentage: 100,
      outputPath: '//render/shot_####',
      outputPathAbsolute: path.join(project, 'render', 'shot_####'),
      fileFormat: 'PNG',
      fileExtension: '.png',
      useFileExtension: true,
      isMovie: false,
      // Blender's own frame_path: the folder and the file name with the frame as #s.
      output: {
        framePath: path.join(project, 'render', 'shot_0005.png'),
        dir: path.join(project, 'render'),
        pattern: 'shot_####.png',
      },
    });
  });

  t.test('dependencies: every external file, with kind and missing flag', async (t) => {
    const byPath = new Map(probe.dependencies.map((dependency) => [dependency.path, dependency]));
    // [path, kind, missing, relative (stored as //… in the .blend)]
    const expected: Array<[string, string, boolean, boolean]> = [
      [path.join(project, 'textures', 'wood grain.png'), 'image', false, true],
      [path.join(project, 'textures', 'ñandú.png'), 'image', false, true],
      [path.join(project, 'textures', 'missing.png'), 'image', true, true],
      [path.join(root, 'elsewhere', 'outside.png'), 'image', false, false],
      [path.join(root, 'elsewhere', 'gone.png'), 'image', true, false],
      [path.join(project, 'libs', 'props library.blend'), 'library', false, true],
    ];
    for (const [file, kind, missing, relative] of expected) {
      t.same(byPath.get(file), { path: file, kind, missing, relative }, path.basename(file));
    }
    t.equal(probe.dependencies.length, expected.length, 'nothing else, no duplicates');
  });

  t.test('a named scene, and an unknown one', async (t) => {
    const alt = await probeBlend(blender, blendFile, 'Ölsardine');
    t.equal(alt.scene.name, 'Ölsardine');
    t.equal(alt.scene.hasCamera, false, 'a new scene has no camera');
    t.equal(alt.scene.camera, null);

    const error = await rejection(probeBlend(blender, blendFile, 'Nope'));
    t.equal(error.code, 'SCENE_NOT_FOUND');
    t.match(error.message, `scene "Nope" not found in ${blendFile}; scenes: `);
    for (const name of ['Main Shot', 'Alt', 'Ölsardine']) t.match(error.message, name);
  });

  t.test('files that are not .blend files, or not there', async (t) => {
    const missing = await rejection(probeBlend(blender, path.join(root, 'nope.blend')));
    t.equal(missing.code, 'FILE_NOT_FOUND');
    const text = path.join(root, 'text.blend');
    await writeFile(text, 'this is not a blend file\n');
    const notBlend = await rejection(probeBlend(blender, text));
    t.equal(notBlend.code, 'NOT_A_BLEND');
    const folder = await rejection(probeBlend(blender, project));
    t.equal(folder.code, 'NOT_A_BLEND');
  });

  t.test("a truncated .blend: BLENDER_FAILED with Blender's own error", async (t) => {
    const broken = path.join(root, 'broken.blend');
    await writeFile(broken, 'BLENDER-v304RENDH');
    const error = await rejection(probeBlend(blender, broken));
    t.equal(error.code, 'BLENDER_FAILED');
    t.match(error.message, /exited with code 1/);
    t.match(error.message, /Error: /, 'carries the Blender error line');
  });

  t.test('camera bound by a timeline marker counts as a camera', async (t) => {
    const markerFile = await makeScene(t.testdir(), { failFirstFrame: true });
    const probe = await probeBlend(blender, markerFile);
    t.equal(probe.scene.camera, null, 'scene.camera is empty');
    t.equal(probe.scene.hasCamera, true, 'but a marker binds one');
    const noCamera = await probeBlend(blender, await makeScene(t.testdir(), { camera: false }));
    t.equal(noCamera.scene.hasCamera, false);
  });

  t.test('movie output is reported (cannot be split into chunks)', async (t) => {
    const movie = await probeBlend(blender, await makeScene(t.testdir(), { fileFormat: 'FFMPEG' }));
    t.equal(movie.scene.isMovie, true);
    t.equal(movie.scene.fileFormat, 'FFMPEG');
    const exr = await probeBlend(blender, await makeScene(t.testdir(), { fileFormat: 'OPEN_EXR' }));
    t.equal(exr.scene.isMovie, false);
    t.equal(exr.scene.fileExtension, '.exr');
  });

  t.test('an empty output path resolves to the .blend folder', async (t) => {
    const dir = t.testdir();
    const probe = await probeBlend(blender, await makeScene(dir, { outputPath: '' }));
    t.equal(probe.scene.outputPath, '');
    t.equal(probe.scene.outputPathAbsolute, '');
    const folderOutput = await probeBlend(blender, await makeScene(t.testdir(), { outputPath: '//frames/' }));
    t.match(folderOutput.scene.outputPathAbsolute, /\/frames\/$/, 'a folder keeps its trailing slash');
  });

  t.test('the probe does not render, even a scene that would take hours', async (t) => {
    // 1,000,000 samples: if probe.py rendered anything, this test would hit its timeout.
    const heavy = await makeScene(t.testdir(), { samples: 1_000_000, frames: [1, 250] });
    const lines: string[] = [];
    const run = await runBlender(blender, probeArgs(heavy), { onLine: (line) => lines.push(line) });
    t.equal(run.exitCode, 0);
    t.equal(lines.filter((line) => line.startsWith('SKYFARM_PROBE ')).length, 1, 'exactly one probe line');
    t.same(
      lines.filter((line) => line.startsWith('Fra:')),
      [],
      'no render status line',
    );
    const probe = await probeBlend(blender, heavy);
    t.equal(probe.scene.frameEnd, 250);
  });

  t.test('a copy of the project probes relative to its new place', async (t) => {
    const copyDir = t.testdir();
    const copy = path.join(copyDir, 'copy.blend');
    await copyFile(blendFile, copy);
    const probe = await probeBlend(blender, copy);
    t.equal(probe.scene.outputPathAbsolute, path.join(copyDir, 'render', 'shot_####'));
    const wood = probe.dependencies.find((dependency) => dependency.path.endsWith('wood grain.png'));
    t.same(wood, {
      path: path.join(copyDir, 'textures', 'wood grain.png'),
      kind: 'image',
      missing: true,
      relative: true,
    });
    const outside = probe.dependencies.find((dependency) => dependency.path.endsWith('outside.png'));
    t.equal(outside?.missing, false, 'absolute paths stay where they were');
  });
});
