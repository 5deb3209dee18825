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
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32, deflateSync } from 'node:zlib';
import { blenderCommand } from './scenes.js';

const execFileAsync = promisify(execFile);

// Runs in `blender -b --factory-startup` with the JSON arguments after `--`.
const MAKE_PROJECT_PY = String.raw`
import bpy, json, os, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
root, outside, blend_path = args["root"], args["outside"], args["blend"]
bpy.context.preferences.filepaths.save_version = 0

def tex(material, image, link=False):
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    if link:
        material.node_tree.links.new(node.outputs["Color"], material.node_tree.nodes["Principled BSDF"].inputs["Base Color"])

# The textures and the sound were written by makeProject before Blender started.

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
  const t = (...parts: string[]) => path.join(root, 'textures', ...parts);
  const files = {
    woodGrain: t('Wood Grain.png'),
    woodGrainLower: t('wood grain.png'),
    unicode: t('größe ü.png'),
    udim: [1001, 1002, 1011].map((tile) => t('udim', `skin.${tile}.png`)),
    sequence: [1, 2, 3].map((frame) => t('seq', `frame_000${frame}.png`)),
    library: path.join(root, 'pbr_node', 'lib.blend'),
    libraryTexture: path.join(root, 'pbr_node', 'tex', 'wood.png'),
    sound: path.join(root, 'sounds', 'beep.wav'),
    outside: path.join(outside, 'shared tex.png'),
  };
  // Every texture different (seed < 256), so blob counts equal file counts.
  const textures = [
    files.woodGrain,
    files.woodGrainLower,
    files.unicode,
    ...files.udim,
    ...files.sequence,
    files.libraryTexture,
    files.outside,
  ];
  for (const [index, file] of textures.entries()) {
    await mkdir(path.dirname(file), { recursive: true });
    await writePng(file, index + 1);
  }
  await mkdir(path.dirname(files.sound), { recursive: true });
  await writeFile(files.sound, wav());
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
  return { base, root, outside, blend, files, missing: t('missing.png') };
}

/** A short mono 8 kHz WAV tone. */
function wav(): Buffer {
  const samples = 800;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(8000 * Math.sin(i / 4)), i * 2);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(8000, 24);
  header.writeUInt32LE(16000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** Writes a valid 8×8 RGB PNG whose pixels depend on `seed` (a texture "edited" by the artist). */
export async function writePng(file: string, seed: number): Promise<void> {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(8, 0);
  header.writeUInt32BE(8, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows: number[] = [];
  for (let y = 0; y < 8; y++) {
    rows.push(0); // filter: none
    for (let x = 0; x < 8 * 3; x++) rows.push((seed * 31 + y * 17 + x * 7) & 0xff);
  }
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.from(rows))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
  await writeFile(file, png);
}
