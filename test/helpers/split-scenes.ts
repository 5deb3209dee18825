// Scenes and pixel checks for split frames (issue #17): a small Cycles scene whose noise is path
// tracing's (an area light, bounces, shadows), and pixel values read by Blender itself.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { blenderCommand } from './scenes.js';

const execFileAsync = promisify(execFile);

const MAKE_NOISY_SCENE_PY = String.raw`
import bpy, json, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
scene = bpy.context.scene
for ob in list(bpy.data.objects):
    bpy.data.objects.remove(ob)
bpy.ops.mesh.primitive_plane_add(size=20)
bpy.ops.mesh.primitive_cube_add(location=(0, 0, 1))
bpy.ops.mesh.primitive_uv_sphere_add(location=(2.2, 0.5, 0.8), radius=0.8)
bpy.ops.mesh.primitive_cube_add(location=(-3, 2, 2), scale=(0.2, 3, 2))
bpy.ops.object.light_add(type="AREA", location=(1.5, -1.5, 4))
bpy.context.object.data.energy = 600
bpy.context.object.data.size = 0.6
bpy.ops.object.camera_add(location=(6, -7, 4.5), rotation=(1.1, 0, 0.72))
scene.camera = bpy.context.object
scene.world.color = (0.02, 0.02, 0.02)
scene.render.engine = args["engine"]
scene.cycles.samples = args["samples"]
scene.cycles.seed = args["seed"]
scene.cycles.use_adaptive_sampling = args["adaptiveThreshold"] is not None
if args["adaptiveThreshold"] is not None:
    scene.cycles.adaptive_threshold = args["adaptiveThreshold"]
if args["samplingPattern"]:
    scene.cycles.sampling_pattern = args["samplingPattern"]
if args["sampleOffset"]:
    # A render of part of the sequence: 4.4+ a sample subset, before: the samples after an offset.
    scene.cycles.sample_offset = args["sampleOffset"]
    if hasattr(scene.cycles, "use_sample_subset"):
        scene.cycles.use_sample_subset = True
        scene.cycles.sample_subset_length = args["sampleSubsetLength"]
scene.cycles.use_denoising = args["denoise"]
scene.render.resolution_x = scene.render.resolution_y = args["size"]
scene.render.resolution_percentage = 100
scene.frame_start = scene.frame_end = 1
settings = scene.render.image_settings
settings.file_format = args["fileFormat"]
if args["fileFormat"] == "OPEN_EXR":
    settings.color_depth = "32"
scene.render.filepath = args["outputPath"]
if args["compositor"]:
    # Render Layers → Blur → output (5.x: a compositor node group; before: the scene's own tree).
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        output = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) or tree.nodes.new("CompositorNodeRLayers")
    blur = tree.nodes.new("CompositorNodeBlur")
    if hasattr(blur, "size_x"):
        blur.size_x = blur.size_y = 3
    else:  # 5.x: the size is an input
        blur.inputs["Size"].default_value = (3, 3)
    tree.links.new(layers.outputs[0], blur.inputs[0])
    tree.links.new(blur.outputs[0], output.inputs[0])
    if args["compositor"] == "file-output":
        tree.nodes.new("CompositorNodeOutputFile")
bpy.ops.wm.save_as_mainfile(filepath=args["path"])
print("SKYFARM_SCENE_SAVED")
`;

export interface NoisySceneOptions {
  samples?: number;
  seed?: number;
  denoise?: boolean;
  engine?: string;
  size?: number;
  /** OPEN_EXR (float, linear: what the comparisons read) or PNG. */
  fileFormat?: string;
  outputPath?: string;
  /** Render Layers → Blur → output; `file-output` adds a File Output node (the merge refuses it). */
  compositor?: 'blur' | 'file-output' | null;
  /** Cycles' sampling pattern (default: the version's default). */
  samplingPattern?: string;
  /** The scene renders from this sample of its sequence (Cycles' sample offset) … */
  sampleOffset?: number;
  /** … this many samples (4.4+: a sample subset; before, `samples` from the offset). */
  sampleSubsetLength?: number;
  /** Adaptive sampling with this noise threshold (default: off). */
  adaptiveThreshold?: number;
}

export async function makeNoisyScene(file: string, opts: NoisySceneOptions = {}): Promise<string> {
  const args = {
    path: path.resolve(file),
    samples: opts.samples ?? 16,
    seed: opts.seed ?? 0,
    denoise: opts.denoise ?? false,
    engine: opts.engine ?? 'CYCLES',
    size: opts.size ?? 64,
    fileFormat: opts.fileFormat ?? 'OPEN_EXR',
    outputPath: opts.outputPath ?? '//render/frame_####',
    compositor: opts.compositor ?? null,
    samplingPattern: opts.samplingPattern ?? null,
    sampleOffset: opts.sampleOffset ?? 0,
    sampleSubsetLength: opts.sampleSubsetLength ?? 1,
    adaptiveThreshold: opts.adaptiveThreshold ?? null,
  };
  await mkdir(path.dirname(args.path), { recursive: true });
  const { stdout } = await execFileAsync(
    blenderCommand,
    [
      '-b',
      '--factory-startup',
      '--python-exit-code',
      '1',
      '--python-expr',
      MAKE_NOISY_SCENE_PY,
      '--',
      JSON.stringify(args),
    ],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  if (!stdout.includes('SKYFARM_SCENE_SAVED')) throw new Error(`no save confirmation in:\n${stdout}`);
  return args.path;
}

const PIXELS_PY = String.raw`
import bpy, json, sys
for path in json.loads(sys.argv[sys.argv.index("--") + 1]):
    image = bpy.data.images.load(path, check_existing=False)
    print("SKYFARM_PIXELS " + json.dumps({"path": path, "size": list(image.size), "float": image.is_float, "pixels": list(image.pixels[:])}))
`;

export interface ImagePixels {
  path: string;
  size: [number, number];
  float: boolean;
  /** RGBA, as Blender loaded them (linear floats for EXR). */
  pixels: number[];
}

/** Pixel values of images as Blender itself loads them. */
export async function readPixels(files: string[]): Promise<ImagePixels[]> {
  const { stdout } = await execFileAsync(
    blenderCommand,
    [
      '-b',
      '--factory-startup',
      '--python-exit-code',
      '1',
      '--python-expr',
      PIXELS_PY,
      '--',
      JSON.stringify(files),
    ],
    { timeout: 120_000, maxBuffer: 256 * 1024 * 1024 },
  );
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('SKYFARM_PIXELS '))
    .map((line) => JSON.parse(line.slice('SKYFARM_PIXELS '.length)) as ImagePixels);
}

/** Mean absolute difference of the colour channels (alpha left out) of two same-size images. */
export function meanAbsoluteDifference(a: ImagePixels, b: ImagePixels): number {
  if (a.pixels.length !== b.pixels.length || a.pixels.length === 0)
    throw new Error(`${a.path} and ${b.path} differ in size`);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < a.pixels.length; i += 1) {
    if (i % 4 === 3) continue;
    sum += Math.abs(a.pixels[i]! - b.pixels[i]!);
    count += 1;
  }
  return sum / count;
}

const RENDER_VARIANTS_PY = String.raw`
import bpy, json, sys
scene = bpy.context.scene
for variant in json.loads(sys.argv[sys.argv.index("--") + 1]):
    scene.cycles.samples = variant["samples"]
    scene.cycles.seed = variant["seed"]
    if variant.get("samplingPattern"):
        scene.cycles.sampling_pattern = variant["samplingPattern"]
    bpy.ops.render.render()
    bpy.data.images["Render Result"].save_render(filepath=variant["path"], scene=scene)
    print("SKYFARM_VARIANT_SAVED " + variant["path"])
`;

export interface RenderVariant {
  samples: number;
  seed: number;
  /** Where the frame goes (the scene's own output format). */
  path: string;
  /** Cycles' sampling pattern (default: the scene's). */
  samplingPattern?: string;
}

/**
 * How split parts render with this Blender and sampling pattern (null: the default), as
 * daemon/blender/split_rules.py decides; each way makes the merge the single render up to float
 * rounding: 4.4+ a sample subset of the frame's sequence; before, with a pattern whose samples do not
 * depend on the sample count, the samples after an offset; else (4.2/4.3's default blue noise) a band
 * of the frame's rows with every sample.
 */
export function splitKind(
  version: readonly number[],
  pattern: string | null = null,
): 'subset' | 'offset' | 'band' {
  const [major = 0, minor = 0] = version;
  if (major > 4 || (major === 4 && minor >= 4)) return 'subset';
  if (pattern !== null)
    return ['TABULATED_SOBOL', 'PROGRESSIVE_MULTI_JITTER', 'SOBOL'].includes(pattern) ? 'offset' : 'band';
  return major === 4 && minor >= 2 ? 'band' : 'offset'; // 3.4: Progressive Multi-Jitter, 3.5–4.1: Tabulated Sobol
}

/** The tabulated pattern's identifier in this Blender (3.4 calls it Progressive Multi-Jitter). */
export function tabulatedPattern(version: readonly number[]): string {
  return (version[0] ?? 0) === 3 && (version[1] ?? 0) < 5 ? 'PROGRESSIVE_MULTI_JITTER' : 'TABULATED_SOBOL';
}

/** Single renders of `blend` (Blender's own render, one Blender for all) with other samples/seeds. */
export async function renderVariants(blend: string, variants: RenderVariant[]): Promise<void> {
  const { stdout } = await execFileAsync(
    blenderCommand,
    [
      '-b',
      blend,
      '--python-exit-code',
      '1',
      '--python-expr',
      RENDER_VARIANTS_PY,
      '--',
      JSON.stringify(variants),
    ],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  const saved = stdout.split('\n').filter((line) => line.startsWith('SKYFARM_VARIANT_SAVED ')).length;
  if (saved !== variants.length)
    throw new Error(`rendered ${saved} of ${variants.length} variants:\n${stdout}`);
}
