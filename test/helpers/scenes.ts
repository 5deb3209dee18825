// Builds tiny real .blend files with real Blender at test time, and checks real PNG output.
import { execFile, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32, inflateSync } from 'node:zlib';

const execFileAsync = promisify(execFile);

/** The Blender the tests use: SKYFARM_BLENDER, else `blender` on PATH. */
export const blenderCommand = process.env.SKYFARM_BLENDER?.trim() || 'blender';

function detectBlenderVersion(): string | null {
  const result = spawnSync(blenderCommand, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) return null;
  return /^Blender (\d+\.\d+(?:\.\d+)?)/m.exec(result.stdout)?.[1] ?? null;
}

export const blenderVersion = detectBlenderVersion();
export const blenderAvailable = blenderVersion !== null;
/**
 * The series of the Blender under test (`5.2`) when it is newer than `series` (a farm's default
 * image), else null: a scene it saves needs a worker image of its own series there.
 */
export function blenderSeriesNewerThan(series: string): string | null {
  const [major = 0, minor = 0] = (blenderVersion ?? '').split('.').map(Number);
  const [otherMajor = 0, otherMinor = 0] = series.split('.').map(Number);
  return major > otherMajor || (major === otherMajor && minor > otherMinor) ? `${major}.${minor}` : null;
}
/**
 * Pass as `{ skip: blenderSkip }`: false when Blender runs, else the reason, so a machine without
 * Blender says why the real-Blender tests did not run (CI installs Blender, so they run there).
 */
export const blenderSkip: string | false = blenderAvailable
  ? false
  : `Blender not installed ("${blenderCommand} --version" failed): install it with ` +
    '"sudo apt-get install blender" or set SKYFARM_BLENDER';

export interface SceneTexture {
  /** Absolute, or relative to the scene's folder. Spaces and non-ASCII characters are fine. */
  path: string;
  /** Write a real 4×4 PNG there (default true); false leaves the file missing. */
  create?: boolean;
  /** Store the path in the .blend as `//…` relative to it (default true). */
  relative?: boolean;
}

export interface SceneOptions {
  /** File name of the .blend inside `dir` (default `scene.blend`). */
  name?: string;
  /** Frame range (default [1, 3]). */
  frames?: [number, number];
  /** Keep the camera (default true). */
  camera?: boolean;
  /**
   * Make the first frame fail for real: the only camera is bound by a timeline marker one frame
   * later and is hidden from render (keyframed) on the first frame, so Blender finds no camera
   * there ("Cannot render, no camera") while later frames render.
   */
  failFirstFrame?: boolean;
  /** Image textures used by the cube's material. */
  textures?: SceneTexture[];
  /** Write a library .blend at this path (absolute or relative to `dir`) and link an object from it. */
  library?: string;
  /** `BLENDER_EEVEE` means Eevee in every Blender (4.2 to 4.x call it `BLENDER_EEVEE_NEXT`). */
  engine?: 'CYCLES' | 'BLENDER_EEVEE';
  /** scene.render.filepath (default `//render/frame_####`). */
  outputPath?: string;
  /** Name of the scene (default `Scene`). */
  sceneName?: string;
  /** More (empty) scenes in the same file. */
  extraScenes?: string[];
  /** scene.render.image_settings.file_format (default PNG). */
  fileFormat?: 'PNG' | 'JPEG' | 'OPEN_EXR' | 'FFMPEG';
  /** Render samples (default 4). */
  samples?: number;
  /**
   * A 64×36 PNG written at this path (absolute, or relative to `dir`; stored absolute) and shown by an
   * image strip in the sequencer over every frame: the render is then that picture.
   */
  imageStrip?: string;
}

// Runs in `blender -b --factory-startup` (Cube, Camera, Light) with the JSON options after `--`.
const MAKE_SCENE_PY = String.raw`
import bpy, json, math, os, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
blend_path = args["blendPath"]
start, end = args["frames"]

bpy.context.preferences.filepaths.save_version = 0  # no scene.blend1 backups
scene = bpy.context.scene
scene.name = args["sceneName"]
for extra in args["extraScenes"]:
    bpy.data.scenes.new(extra)
render = scene.render
render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 36, 100
scene.frame_start, scene.frame_end, scene.frame_current = start, end, start
try:
    render.engine = args["engine"]
except TypeError:
    if args["engine"] != "BLENDER_EEVEE":
        raise
    render.engine = "BLENDER_EEVEE_NEXT"  # Eevee's name in 4.2 to 4.x (3.x and 5.x: BLENDER_EEVEE)
scene.cycles.device = "CPU"
scene.cycles.samples = args["samples"]
scene.cycles.use_adaptive_sampling = False  # exactly "samples" samples: render time follows it
scene.cycles.use_denoising = False  # Debian's Blender is built without OpenImageDenoise
scene.eevee.taa_render_samples = args["samples"]
render.filepath = args["outputPath"]
if args["fileFormat"] == "FFMPEG" and hasattr(render.image_settings, "media_type"):
    render.image_settings.media_type = "VIDEO"  # 5.x lists FFMPEG only among video formats
render.image_settings.file_format = args["fileFormat"]

cube = bpy.data.objects["Cube"]
cube.rotation_euler = (0, 0, 0)
cube.keyframe_insert("rotation_euler", frame=start)
cube.rotation_euler = (0, 0, math.radians(45))  # a quarter turn would look the same
cube.keyframe_insert("rotation_euler", frame=max(end, start + 1))

camera = bpy.data.objects["Camera"]
if not args["camera"]:
    bpy.data.objects.remove(camera)
elif args["failFirstFrame"]:
    marker = scene.timeline_markers.new("camera", frame=start + 1)
    marker.camera = camera
    camera.hide_render = True
    camera.keyframe_insert("hide_render", frame=start)
    camera.hide_render = False
    camera.keyframe_insert("hide_render", frame=start + 1)
    scene.camera = None  # after the marker: 4.x+ make a marker's new camera the scene's camera

os.makedirs(os.path.dirname(blend_path), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=blend_path)  # relative paths below need the file's folder

if args["textures"]:
    material = bpy.data.materials.new("Textured")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    shader = nodes["Principled BSDF"]
    for index, texture in enumerate(args["textures"]):
        path = texture["path"]
        name = "texture_%d" % index
        if texture["create"]:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pixels = bpy.data.images.new(name + "_pixels", 4, 4)
            pixels.pixels = [(i % 4) / 4 for i in range(4 * 4 * 4)]
            pixels.filepath_raw = path
            pixels.file_format = "PNG"
            pixels.save()
            bpy.data.images.remove(pixels)
        image = bpy.data.images.new(name, 4, 4)
        image.source = "FILE"
        image.filepath = bpy.path.relpath(path) if texture["relative"] else path
        node = nodes.new("ShaderNodeTexImage")
        node.image = image
        if index == 0:
            material.node_tree.links.new(node.outputs["Color"], shader.inputs["Base Color"])
    cube.data.materials.clear()
    cube.data.materials.append(material)

if args["library"]:
    library_path = args["library"]
    os.makedirs(os.path.dirname(library_path), exist_ok=True)
    mesh = bpy.data.meshes.new("LibraryMesh")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    library_object = bpy.data.objects.new("LibraryObject", mesh)
    bpy.data.libraries.write(library_path, {library_object})
    bpy.data.objects.remove(library_object)
    bpy.data.meshes.remove(mesh)
    with bpy.data.libraries.load(library_path, link=True, relative=True) as (source, target):
        target.objects = ["LibraryObject"]
    for linked in target.objects:
        scene.collection.objects.link(linked)

if args["imageStrip"]:
    strip_path = args["imageStrip"]
    os.makedirs(os.path.dirname(strip_path), exist_ok=True)
    plate = bpy.data.images.new("plate_pixels", 64, 36)
    plate.pixels = [((i // 4) % 64) / 64 if i % 4 < 3 else 1.0 for i in range(64 * 36 * 4)]  # a gradient
    plate.filepath_raw = strip_path
    plate.file_format = "PNG"
    plate.save()
    bpy.data.images.remove(plate)
    editor = scene.sequence_editor_create()
    strips = getattr(editor, "strips", None)  # 4.4+; 5.0 removed the old name
    strips = editor.sequences if strips is None else strips
    strip = strips.new_image("Plate", strip_path, 1, start)
    strip.frame_final_duration = end - start + 1
    render.use_sequencer = True

bpy.ops.wm.save_mainfile()
print("SKYFARM_SCENE_SAVED", blend_path)
`;

/** Builds a tiny real scene (64×36, few samples, denoising off) and returns the .blend path. */
export async function makeScene(dir: string, opts: SceneOptions = {}): Promise<string> {
  const blendPath = path.resolve(dir, opts.name ?? 'scene.blend');
  const args = {
    blendPath,
    frames: opts.frames ?? [1, 3],
    camera: opts.camera ?? true,
    failFirstFrame: opts.failFirstFrame ?? false,
    textures: (opts.textures ?? []).map((texture) => ({
      path: path.resolve(dir, texture.path),
      create: texture.create ?? true,
      relative: texture.relative ?? true,
    })),
    library: opts.library ? path.resolve(dir, opts.library) : null,
    engine: opts.engine ?? 'CYCLES',
    outputPath: opts.outputPath ?? '//render/frame_####',
    sceneName: opts.sceneName ?? 'Scene',
    extraScenes: opts.extraScenes ?? [],
    fileFormat: opts.fileFormat ?? 'PNG',
    samples: opts.samples ?? 4,
    imageStrip: opts.imageStrip ? path.resolve(dir, opts.imageStrip) : null,
  };
  try {
    const { stdout } = await execFileAsync(
      blenderCommand,
      [
        '-b',
        '--factory-startup',
        '--python-exit-code',
        '1',
        '--python-expr',
        MAKE_SCENE_PY,
        '--',
        JSON.stringify(args),
      ],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    );
    if (!stdout.includes('SKYFARM_SCENE_SAVED')) throw new Error(`no save confirmation in:\n${stdout}`);
  } catch (error) {
    const failure = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`makeScene failed: ${failure.message}\n${failure.stdout ?? ''}\n${failure.stderr ?? ''}`);
  }
  return blendPath;
}

export interface PngInfo {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  /** The inflated image data (filtered scanlines): compare these, not the files, whose metadata
   * (render date, .blend path) differs between renders of the same picture. */
  pixels: Buffer;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Reads and fully validates a PNG: signature, every chunk's CRC, IHDR, IEND, and that the image
 * data inflates to exactly the size the header promises. Throws on anything wrong.
 */
export async function readPng(file: string): Promise<PngInfo> {
  const data = await readFile(file);
  if (!data.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error(`${file}: not a PNG signature`);
  let offset = 8;
  let info: PngInfo | undefined;
  let interlaced = false;
  const idat: Buffer[] = [];
  let sawEnd = false;
  while (offset < data.length) {
    if (offset + 12 > data.length) throw new Error(`${file}: truncated chunk at ${offset}`);
    const length = data.readUInt32BE(offset);
    const type = data.toString('latin1', offset + 4, offset + 8);
    const end = offset + 8 + length;
    if (end + 4 > data.length) throw new Error(`${file}: chunk ${type} runs past the end`);
    const body = data.subarray(offset + 8, end);
    if (crc32(data.subarray(offset + 4, end)) !== data.readUInt32BE(end)) {
      throw new Error(`${file}: bad CRC in chunk ${type}`);
    }
    if (type === 'IHDR') {
      info = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        bitDepth: body[8]!,
        colorType: body[9]!,
        pixels: Buffer.alloc(0),
      };
      interlaced = body[12] === 1;
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    }
    offset = end + 4;
  }
  if (!info) throw new Error(`${file}: no IHDR`);
  if (!sawEnd) throw new Error(`${file}: no IEND (truncated?)`);
  const channels = CHANNELS[info.colorType];
  if (channels === undefined) throw new Error(`${file}: unknown colour type ${info.colorType}`);
  const pixels = inflateSync(Buffer.concat(idat));
  if (!interlaced) {
    const rowBytes = Math.ceil((info.width * channels * info.bitDepth) / 8);
    const expected = info.height * (1 + rowBytes);
    if (pixels.length !== expected) {
      throw new Error(`${file}: image data is ${pixels.length} bytes, expected ${expected}`);
    }
  }
  return { ...info, pixels };
}
