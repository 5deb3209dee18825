// Builds real multi-folder Blender projects for the upload tests, with real Blender:
//
//   <base>/proj/scenes/shot 01 é.blend          the scene (space + non-ASCII in the name)
//   <base>/proj/textures/Wood Grain.png          relative texture
//   <base>/proj/textures/wood grain.png          same name, other case: a different file
//   <base>/proj/textures/größe ü.png             non-ASCII name
//   <base>/proj/textures/udim/skin.<UDIM>.png    UDIM set: tiles 1001, 1002, 1011
//   <base>/proj/textures/seq/frame_0001..3.png   image sequence
//   <base>/proj/pbr_node/lib.blend               linked library in a sibling folder (//../pbr_node/…)
//   <base>/proj/pbr_node/tex/wood.png            …which itself uses a texture (//tex/wood.png)
//   <base>/proj/sounds/beep.wav                  a sound
//   <base>/outside/shared tex.png                absolute path outside the project
//   <base>/proj/textures/missing.png             referenced, never created
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { blenderCommand } from './scenes.js';

const execFileAsync = promisify(execFile);

// Runs in `blender -b --factory-startup` with the JSON arguments after `--`.
const MAKE_PROJECT_PY = String.raw`
import bpy, json, math, os, struct, sys, wave
args = json.loads(sys.argv[sys.argv.index("--") + 1])
root, outside, blend_path = args["root"], args["outside"], args["blend"]
bpy.context.preferences.filepaths.save_version = 0

def png(path, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = bpy.data.images.new("pixels", 8, 8)
    # Unique per seed: the first 16 channel values spell the seed in binary.
    image.pixels = [float((seed >> i) & 1) if i < 16 else ((i * 7 + seed * 13) % 17) / 17 for i in range(8 * 8 * 4)]
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)

def tex(material, image, link=False):
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    if link:
        material.node_tree.links.new(node.outputs["Color"], material.node_tree.nodes["Principled BSDF"].inputs["Base Color"])

# Files on disk
png(os.path.join(root, "textures", "Wood Grain.png"), 1)
png(os.path.join(root, "textures", "wood grain.png"), 2)
png(os.path.join(root, "textures", "größe ü.png"), 3)
for tile in (1001, 1002, 1011):
    png(os.path.join(root, "textures", "udim", "skin.%d.png" % tile), tile)
for frame in (1, 2, 3):
    png(os.path.join(root, "textures", "seq", "frame_%04d.png" % frame), 20 + frame)
png(os.path.join(root, "pbr_node", "tex", "wood.png"), 4)
png(os.path.join(outside, "shared tex.png"), 5)
os.makedirs(os.path.join(root, "sounds"), exist_ok=True)
with wave.open(os.path.join(root, "sounds", "beep.wav"), "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 4))) for i in range(800)))

# The library: one object whose material uses //tex/wood.png (relative to the library)
bpy.ops.wm.read_factory_settings(use_empty=True)
lib_path = os.path.join(root, "pbr_node", "lib.blend")
os.makedirs(os.path.dirname(lib_path), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=lib_path)
mesh = bpy.data.meshes.new("LibMesh")
mesh.from_pydata([(-1, -1, 1.2), (1, -1, 1.2), (0, 1, 1.2)], [], [(0, 1, 2)])
ob = bpy.data.objects.new("LibObject", mesh)
bpy.context.scene.collection.objects.link(ob)
material = bpy.data.materials.new("LibMaterial")
material.use_nodes = True
mesh.materials.append(material)
wood = bpy.data.images.load(os.path.join(root, "pbr_node", "tex", "wood.png"))
wood.filepath = "//tex/wood.png"
tex(material, wood, link=True)
bpy.ops.wm.save_as_mainfile(filepath=lib_path)

# The scene
bpy.ops.wm.read_factory_settings(use_empty=False)
scene = bpy.context.scene
render = scene.render
render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 36, 100
scene.frame_start, scene.frame_end = 1, 2
render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 2
scene.cycles.use_denoising = False
render.filepath = "//render/frame_####"
os.makedirs(os.path.dirname(blend_path), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=blend_path)

material = bpy.data.materials.new("Textured")
material.use_nodes = True
def load(path, relative=True):
    image = bpy.data.images.load(path, check_existing=False)
    image.filepath = bpy.path.relpath(path) if relative else path
    return image
tex(material, load(os.path.join(root, "textures", "Wood Grain.png")), link=True)
tex(material, load(os.path.join(root, "textures", "wood grain.png")))
tex(material, load(os.path.join(root, "textures", "größe ü.png")))
tex(material, load(os.path.join(outside, "shared tex.png"), relative=False))
missing = bpy.data.images.new("missing", 4, 4)
missing.source = "FILE"
missing.filepath = bpy.path.relpath(os.path.join(root, "textures", "missing.png"))
tex(material, missing)
udim = bpy.data.images.load(os.path.join(root, "textures", "udim", "skin.1001.png"))
udim.source = "TILED"
udim.filepath = bpy.path.relpath(os.path.join(root, "textures", "udim", "skin.<UDIM>.png"))
tex(material, udim)
seq = bpy.data.images.load(os.path.join(root, "textures", "seq", "frame_0001.png"))
seq.source = "SEQUENCE"
seq.filepath = bpy.path.relpath(os.path.join(root, "textures", "seq", "frame_0001.png"))
tex(material, seq)
cube = bpy.data.objects["Cube"]
cube.data.materials.clear()
cube.data.materials.append(material)
sound = bpy.data.sounds.load(os.path.join(root, "sounds", "beep.wav"))
sound.filepath = bpy.path.relpath(sound.filepath)
sound.use_fake_user = True

with bpy.data.libraries.load(bpy.path.relpath(lib_path), link=True, relative=True) as (source, target):
    target.objects = ["LibObject"]
for linked in target.objects:
    scene.collection.objects.link(linked)
bpy.ops.wm.save_mainfile()
print("SKYFARM_PROJECT_SAVED", blend_path)
`;

export interface TestProject {
  base: string;
  root: string;
  outside: string;
  blend: string;
  /** Files the scene uses, by role (absolute paths). */
  files: {
    woodGrain: string;
    woodGrainLower: string;
    unicode: string;
    udim: string[];
    sequence: string[];
    library: string;
    libraryTexture: string;
    sound: string;
    outside: string;
  };
  missing: string;
}

/** Builds the project under `base` with real Blender (about 2 s). */
export async function makeProject(base: string): Promise<TestProject> {
  const root = path.join(base, 'proj');
  const outside = path.join(base, 'outside');
  const blend = path.join(root, 'scenes', 'shot 01 é.blend');
  try {
    const { stdout } = await execFileAsync(
      blenderCommand,
      [
        '-b',
        '--factory-startup',
        '--python-exit-code',
        '1',
        '--python-expr',
        MAKE_PROJECT_PY,
        '--',
        JSON.stringify({ root, outside, blend }),
      ],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    );
    if (!stdout.includes('SKYFARM_PROJECT_SAVED')) throw new Error(`no save confirmation in:\n${stdout}`);
  } catch (error) {
    const failure = error as Error & { stdout?: string; stderr?: string };
    throw new Error(
      `makeProject failed: ${failure.message}\n${failure.stdout ?? ''}\n${failure.stderr ?? ''}`,
    );
  }
  const t = (...parts: string[]) => path.join(root, 'textures', ...parts);
  return {
    base,
    root,
    outside,
    blend,
    files: {
      woodGrain: t('Wood Grain.png'),
      woodGrainLower: t('wood grain.png'),
      unicode: t('größe ü.png'),
      udim: [1001, 1002, 1011].map((tile) => t('udim', `skin.${tile}.png`)),
      sequence: [1, 2, 3].map((frame) => t('seq', `frame_000${frame}.png`)),
      library: path.join(root, 'pbr_node', 'lib.blend'),
      libraryTexture: path.join(root, 'pbr_node', 'tex', 'wood.png'),
      sound: path.join(root, 'sounds', 'beep.wav'),
      outside: path.join(outside, 'shared tex.png'),
    },
    missing: t('missing.png'),
  };
}
