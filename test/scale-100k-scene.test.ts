// A scene that reads a 100,000-frame image sequence (the size of a production plate or a fluid cache)
// renders on the local backend from the CLI (the daemon's probe finds every file) and from Blender
// (the add-on collects the list in the live session and sends it by reference): every file is
// stored, the frame is delivered, and a re-submit finds nothing new to store.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeScene, blenderSkip } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';
import {
  addonRoot,
  blender,
  blenderEnv,
  run,
  runBlenderScript,
  tail,
} from '../blender-addon/tests/harness.js';

const FRAMES = 100_000;
const minute = 60_000;
// Two renders of a 100,000-file project take minutes on a busy 2-core machine: more than tap's
// default per-file limit.
t.setTimeout(25 * minute);

// Makes the plate an image sequence of FRAMES frames (Blender reads frame 1 for frame 1).
const SEQUENCE_PY = String.raw`
import bpy
for image in bpy.data.images:
    if "plate_" in image.filepath:
        image.source = "SEQUENCE"
        for material in bpy.data.materials:
            if material.node_tree:
                for node in material.node_tree.nodes:
                    if getattr(node, "image", None) == image:
                        node.image_user.frame_duration = ${FRAMES}
                        node.image_user.frame_start = 1
bpy.ops.wm.save_mainfile()
`;

t.test(
  `a ${FRAMES.toLocaleString('en')}-file scene renders from the CLI and from Blender`,
  { skip: blenderSkip, timeout: 20 * minute },
  async (t) => {
    const dir = t.testdir({});
    const project = join(dir, 'project');
    const blend = await makeScene(project, {
      frames: [1, 1],
      textures: [{ path: 'plates/plate_000001.png' }, { path: 'tex/gone.png', create: false }],
    });
    const sequence = await run(blender, ['-b', '--factory-startup', blend, '--python-expr', SEQUENCE_PY], {
      env: blenderEnv(t),
      timeoutMs: 2 * minute,
    });
    t.equal(sequence.code, 0, 'the plate became an image sequence', { output: tail(sequence) });
    // Every other frame: the first frame's PNG with bytes after its end (distinct files, distinct blobs).
    const first = readFileSync(join(project, 'plates', 'plate_000001.png'));
    for (let frame = 2; frame <= FRAMES; frame++) {
      writeFileSync(
        join(project, 'plates', `plate_${String(frame).padStart(6, '0')}.png`),
        Buffer.concat([first, Buffer.from(`frame ${frame}`)]),
      );
    }

    // From the CLI: the daemon probes the scene itself.
    const home = join(dir, 'home');
    const env = cliEnv(t, home);
    const started = Date.now();
    const cli = await runCli(
      ['render', blend, '--frames', '1', '--output', join(dir, 'cli frames'), '--wait', '--json'],
      { env, cwd: dir, timeoutMs: 12 * minute },
    );
    t.comment(`CLI render: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    t.equal(cli.code, 0, `the CLI render exits 0 (stderr: ${cli.stderr.slice(-800)})`);
    const job = JSON.parse(cli.stdout) as { state: string; id: string };
    t.match(job, { state: 'done', framesDone: 1 });
    t.ok(existsSync(join(dir, 'cli frames', 'frame_0001.png')), 'the frame is delivered');
    const cliLog = readFileSync(join(home, 'logs', `${job.id}.log`), 'utf8');
    t.match(
      cliLog,
      new RegExp(`stored ${FRAMES + 1} files \\(\\d+ new bytes\\); 1 missing`),
      'every frame of the sequence and the scene were stored; the missing texture is named',
    );

    // From Blender: the add-on collects the 100,001 files and sends the list by reference.
    const fromBlender = Date.now();
    await runBlenderScript(t, {
      script: 'background.py',
      blendFile: blend,
      args: {
        scenario: 'submit',
        addonSource: addonRoot,
        blendFile: blend,
        outputDir: join(dir, 'blender frames'),
        resolution: [32, 18],
        frameSpec: '1',
        expectedFrames: ['frame_0001.png'],
        expectedDependencies: [
          { path: join(project, 'plates', 'plate_000001.png'), kind: 'image', missing: false },
          { path: join(project, 'plates', `plate_${FRAMES}.png`), kind: 'image', missing: false },
          { path: join(project, 'tex', 'gone.png'), kind: 'image', missing: true },
        ],
        missingNames: ['gone.png'],
        renderTimeout: 600,
        dependenciesOut: join(dir, 'addon-dependencies.json'),
      },
      env: blenderEnv(t, { SKYFARM_HOME: home }),
      timeoutMs: 12 * minute,
    });
    t.comment(`Blender render: ${((Date.now() - fromBlender) / 1000).toFixed(1)} s`);
    const collected = JSON.parse(readFileSync(join(dir, 'addon-dependencies.json'), 'utf8')) as unknown[];
    t.equal(collected.length, FRAMES + 1, 'the add-on collected every frame and the missing texture');
    const jobs = JSON.parse((await runCli(['jobs', '--json'], { env })).stdout) as Array<{
      id: string;
      state: string;
    }>;
    const blenderJob = jobs.find((j) => j.id !== job.id)!;
    t.equal(blenderJob.state, 'done', 'the job from Blender is done');
    t.match(
      readFileSync(join(home, 'logs', `${blenderJob.id}.log`), 'utf8'),
      new RegExp(`stored ${FRAMES + 1} files \\(\\d+ new bytes\\); 1 missing`),
      'every file was stored again from the list the add-on sent',
    );
  },
);
