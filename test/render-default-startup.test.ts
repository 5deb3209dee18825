// `skyfarm render scene.blend --wait` of a scene saved from the running Blender's own default startup
// file renders every frame on the local backend (issue #12: with Blender 5.2 every frame failed with
// "'SequenceEditor' object has no attribute 'sequences_all'"). The startup file brings what a new
// user's scene has: Eevee, a sequence editor, output `/tmp/` (set here to `//f_####`, as the user
// would) and, in 5.x, a linked brush library outside the project (so the render remaps paths).
// Changed besides the output, only so that a frame takes seconds instead of minutes here: the
// resolution percentage (1920×1080 at 5 % = 96×54) and Eevee's samples (64 → 4).
import t from 'tap';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { blenderCommand, blenderSkip, readPng } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

const execFileAsync = promisify(execFile);

const SAVE_DEFAULT_PY = String.raw`
import bpy, json, sys
blend_path = sys.argv[sys.argv.index("--") + 1]
scene = bpy.context.scene
scene.render.filepath = "//f_####"
scene.render.resolution_percentage = 5
scene.eevee.taa_render_samples = 4
bpy.ops.wm.save_as_mainfile(filepath=blend_path)
print("SKYFARM_DEFAULT_SCENE", json.dumps({
    "engine": scene.render.engine,
    "sequenceEditor": scene.sequence_editor is not None,
    "frames": [scene.frame_start, scene.frame_end],
}))
`;

t.test('a scene from the default startup file renders every frame', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const blendPath = join(dir, 'default scene.blend');
  const { stdout } = await execFileAsync(
    blenderCommand,
    ['-b', '--factory-startup', '--python-exit-code', '1', '--python-expr', SAVE_DEFAULT_PY, '--', blendPath],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  const saved = /^SKYFARM_DEFAULT_SCENE (.*)$/m.exec(stdout);
  t.ok(saved, 'Blender saved the scene');
  const defaults = JSON.parse(saved![1]!) as { engine: string; sequenceEditor: boolean; frames: number[] };
  t.match(defaults.engine, /^BLENDER_EEVEE/, "the startup file's engine: Eevee");
  t.equal(defaults.sequenceEditor, true, 'the startup file has a sequence editor');
  t.same(defaults.frames, [1, 250]);

  const env = cliEnv(t, join(dir, 'home'));
  const render = await runCli(['render', blendPath, '--frames', '1-2', '--wait', '--json'], {
    env,
    cwd: dir,
    timeoutMs: 600_000,
  });
  t.equal(render.code, 0, `exit code 0 (stderr: ${render.stderr.slice(-800)})`);
  const job = JSON.parse(render.stdout) as Record<string, unknown>;
  t.match(job, { state: 'done', framesDone: 2, framesTotal: 2, framesFailed: 0 });

  const frames = readdirSync(dir)
    .filter((name) => name.endsWith('.png'))
    .sort();
  t.same(frames, ['f_0001.png', 'f_0002.png'], 'the frames land beside the .blend, named f_####');
  for (const frame of frames) {
    t.match(await readPng(join(dir, frame)), { width: 96, height: 54 }, `${frame} is a real PNG`);
  }

  // Every supported Blender reports progress inside a frame (5.x only with `--log render`).
  const logs = await runCli(['logs', String(job['id'])], { env });
  t.equal(logs.code, 0);
  for (const frame of [1, 2]) {
    t.match(
      logs.stdout,
      new RegExp(`Fra: ?${frame}\\b.*Rendering 4 / 4 samples`),
      `frame ${frame}: Eevee samples logged`,
    );
  }
});
