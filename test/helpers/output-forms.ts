// Scenes for the output-name tests: one .blend with a scene per form of Blender's output path, built
// by real Blender, and the file names a plain `blender -b FILE -S SCENE -a` run gives their frames.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { blenderCommand } from './scenes.js';

const execFileAsync = promisify(execFile);

export interface OutputForm {
  /** Scene name. */
  scene: string;
  /** scene.render.filepath. */
  outputPath: string;
  /** Where Blender writes the frames, relative to the .blend's folder. */
  folder: string;
  useFileExtension?: boolean;
}

/** Frames 9 and 10: padding and a carry into a second digit. */
export const FORM_FRAMES = [9, 10] as const;

export const OUTPUT_FORMS: OutputForm[] = [
  { scene: 'folder-only', outputPath: '//out_folder/', folder: 'out_folder' },
  { scene: 'no-hash', outputPath: '//out_plain/shot', folder: 'out_plain' },
  { scene: 'hash-mid-name', outputPath: '//out_mid/shot_##_v2', folder: 'out_mid' },
  { scene: 'hash-in-folder', outputPath: '//out#3/f_', folder: 'out#3' },
  {
    scene: 'extension-off',
    outputPath: '//out_noext/noext_####',
    folder: 'out_noext',
    useFileExtension: false,
  },
  { scene: 'blend-folder', outputPath: '//', folder: '.' },
  // Blender 4.5+ resolves path templates; older ones keep the braces: either way, as Blender names it.
  { scene: 'template', outputPath: '//out_template/{scene_name}_#', folder: 'out_template' },
  // `{{` is a literal brace in 4.5+ templates (older Blenders keep both): the name has braces.
  { scene: 'braces', outputPath: '//out_braces/a{{b}}_', folder: 'out_braces' },
];

/** The scene as Blender's startup file leaves it: output `/tmp/`. */
export const STARTUP_SCENE = 'Scene';

// Runs in `blender -b --factory-startup` with the JSON arguments after `--`. Every scene renders
// with Workbench at a tiny size (the engine and size do not change file names); the startup scene
// keeps its own output path (`/tmp/`) and frame range.
const MAKE_FORMS_PY = String.raw`
import bpy, json, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
bpy.context.preferences.filepaths.save_version = 0
startup = bpy.context.scene
def small(scene):
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 32, 18, 100
small(startup)
for form in args["forms"]:
    scene = bpy.data.scenes.new(form["scene"])
    for ob in startup.collection.all_objects:
        scene.collection.objects.link(ob)
    scene.camera = startup.camera
    small(scene)
    scene.frame_start, scene.frame_end = args["frames"]
    scene.render.filepath = form["outputPath"]
    scene.render.use_file_extension = form.get("useFileExtension", True)
bpy.ops.wm.save_as_mainfile(filepath=args["blendPath"])
print("SKYFARM_SCENE_SAVED", args["blendPath"])
`;

export async function makeOutputForms(dir: string, name = 'forms.blend'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const blendPath = path.join(dir, name);
  await execFileAsync(
    blenderCommand,
    [
      '-b',
      '--factory-startup',
      '--python-exit-code',
      '1',
      '--python-expr',
      MAKE_FORMS_PY,
      '--',
      JSON.stringify({ blendPath, forms: OUTPUT_FORMS, frames: FORM_FRAMES }),
    ],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  return blendPath;
}

/** Copies the forms .blend into `dir` (a fresh folder of its own, so renders do not meet). */
export async function copyForms(blend: string, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const copy = path.join(dir, path.basename(blend));
  await copyFile(blend, copy);
  return copy;
}

/** The frame files in a folder (no dotfiles, no .blend). */
export async function frameFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.') && !/\.blend\d*$/.test(e.name))
    .map((e) => e.name)
    .sort();
}

/**
 * Plain Blender: `blender -b FILE -S <form> -a …` for every form (one Blender), then
 * `-S Scene -f <startupFrame>` for the startup scene, whose frame lands in /tmp (removed here).
 * Returns the file names Blender gave each scene's frames.
 */
export async function blenderNames(blend: string, startupFrame: number): Promise<Map<string, string[]>> {
  const args = ['-b', blend];
  for (const form of OUTPUT_FORMS) args.push('-S', form.scene, '-a');
  args.push('-S', STARTUP_SCENE, '-f', String(startupFrame));
  const before = new Set(await frameFiles('/tmp'));
  await execFileAsync(blenderCommand, args, { timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  const names = new Map<string, string[]>();
  for (const form of OUTPUT_FORMS)
    names.set(form.scene, await frameFiles(path.join(path.dirname(blend), form.folder)));
  const fresh = (await frameFiles('/tmp')).filter(
    (name) => !before.has(name) && name.startsWith(String(startupFrame)),
  );
  names.set(STARTUP_SCENE, fresh);
  for (const name of fresh) await rm(path.join('/tmp', name), { force: true });
  return names;
}

/** A frame for the startup scene that no other run writes to /tmp at the same time. */
export function uniqueStartupFrame(): number {
  return 200_000 + ((process.pid * 7919 + Date.now()) % 800_000);
}
