# Runs inside Blender with the job's .blend: finishes one split frame (issue #17). The publish stage
# has averaged the parts' passes into one multilayer EXR (daemon/src/split/merge.ts); this applies
# what a single render applies after sampling, once: the scene's denoiser (OpenImageDenoise through
# the compositor's Denoise node, with the albedo/normal the scene's denoiser uses), then the scene's
# colour management and output format, written to the file name the scene gives the frame.
#
#   blender -b --python-exit-code 1 FILE.blend --python merge_frame.py -- '<json>'
#
# JSON: {"scene": str, "frame": int, "merged": str (the averaged EXR), "output": str (final path),
#        "preview": str (optional PNG path), "previewSize": int}
# The scene's own compositor runs on the merged passes (its Render Layers node replaced by the merged
# EXR); split_rules.compositor_problem says which compositors cannot (refused before upload).
# Prints SKYFARM_MERGE_DENOISE <what> when it denoises and SKYFARM_MERGED <frame> <path> when done;
# exits 1 with SKYFARM_MERGE_FAILED <frame> <message> otherwise.
import importlib.util
import json
import os
import sys
import traceback

import bpy

PREFILTERS = {"NONE": "None", "FAST": "Fast", "ACCURATE": "Accurate"}
QUALITIES = {"HIGH": "High", "BALANCED": "Balanced", "FAST": "Fast"}


def say(*parts):
    print(*parts, flush=True)


def one_line(text):
    return " ".join(str(text).split()) or "unknown error"


def load_split_rules():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "split_rules.py")
    spec = importlib.util.spec_from_file_location("skyfarm_split_rules", path)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True
    spec.loader.exec_module(module)
    return module


def has_oidn():
    try:
        import _cycles
    except ImportError:
        return False
    return bool(getattr(_cycles, "with_openimagedenoise", False))


def set_option(node, prop, socket, value, labels):
    """A Denoise node option: a property until 4.x, a menu input socket in 5.x."""
    if hasattr(node, prop):
        setattr(node, prop, value)
        return
    for candidate in node.inputs:
        if candidate.name == socket:
            candidate.default_value = labels.get(value, value)


def fresh_compositor(scene):
    """An empty compositor the render goes through and its output socket (5.x: a node group)."""
    scene.render.use_compositing = True
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("skyfarm merge", "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput")
        return tree, output.inputs[0]
    scene.use_nodes = True
    tree = scene.node_tree
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    output = tree.nodes.new("CompositorNodeComposite")
    return tree, output.inputs["Image"]


def output_socket(node, *names):
    for name in names:
        for socket in node.outputs:
            if socket.name == name:
                return socket
    raise RuntimeError("the merged EXR has no %s pass (it has %s)" % (names[0], ", ".join(s.name for s in node.outputs)))


def add_denoise(tree, source, combined, scene):
    """A Denoise node on the merged image as the scene's Cycles denoiser would run: its output socket
    and a description."""
    cycles = scene.cycles
    node = tree.nodes.new("CompositorNodeDenoise")
    tree.links.new(combined, node.inputs["Image"])
    passes = cycles.denoising_input_passes
    used = ["image"]
    if passes in ("RGB_ALBEDO", "RGB_ALBEDO_NORMAL"):
        tree.links.new(output_socket(source, "Denoising Albedo"), node.inputs["Albedo"])
        used.append("albedo")
    if passes == "RGB_ALBEDO_NORMAL":
        tree.links.new(output_socket(source, "Denoising Normal"), node.inputs["Normal"])
        used.append("normal")
    set_option(node, "use_hdr", "HDR", True, {})
    set_option(node, "prefilter", "Prefilter", cycles.denoising_prefilter, PREFILTERS)
    if hasattr(cycles, "denoising_quality"):
        set_option(node, "quality", "Quality", cycles.denoising_quality, QUALITIES)
    return node.outputs[0], "OIDN %s prefilter %s" % ("+".join(used), cycles.denoising_prefilter)


def merged_source(tree, layer, image):
    source = tree.nodes.new("CompositorNodeImage")
    source.image = image
    if hasattr(source, "layer"):
        source.layer = layer.name
    return source, output_socket(source, "Combined", "Image")


def build_compositor(scene, layer, image, denoise):
    """Composites the merged passes: with the scene's own compositor, its Render Layers nodes replaced
    by the merged EXR (the image denoised first when the scene denoises, as Cycles hands the compositor
    a denoised image); without one, merged image → (Denoise) → output. Returns how it denoised."""
    rules = load_split_rules()
    tree = rules.compositor_tree(scene)
    if tree is None:
        tree, final = fresh_compositor(scene)
        source, combined = merged_source(tree, layer, image)
        image_out, denoised = add_denoise(tree, source, combined, scene) if denoise else (combined, None)
        tree.links.new(image_out, final)
        return denoised
    source, combined = merged_source(tree, layer, image)
    image_out, denoised = add_denoise(tree, source, combined, scene) if denoise else (combined, None)
    render_layers = [node for node in tree.nodes if node.bl_idname == "CompositorNodeRLayers"]
    for link in [link for link in tree.links if link.from_node in render_layers]:
        name = link.from_socket.name
        if name in ("Image", "Combined"):
            socket = image_out
        elif name == "Noisy Image":
            socket = combined
        else:
            socket = output_socket(source, name)
        tree.links.new(socket, link.to_socket)
    for node in render_layers:
        tree.nodes.remove(node)
    return denoised


def write_preview(final_path, preview_path, size):
    image = bpy.data.images.load(final_path, check_existing=False)
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            return
        scale = min(1.0, float(size) / max(width, height))
        image.scale(max(1, int(round(width * scale))), max(1, int(round(height * scale))))
        os.makedirs(os.path.dirname(preview_path), exist_ok=True)
        temp_path = preview_path + ".tmp.png"
        image.filepath_raw = temp_path
        image.file_format = "PNG"
        image.save()
        os.replace(temp_path, preview_path)
    finally:
        bpy.data.images.remove(image)


def merge(args):
    rules = load_split_rules()
    scene = bpy.data.scenes.get(args["scene"])
    if scene is None:
        raise RuntimeError('scene "%s" not found' % args["scene"])
    if bpy.context.window is not None:
        bpy.context.window.scene = scene
    problems = rules.refusals(scene)
    if problems:
        raise RuntimeError("this scene cannot be split: " + "; ".join(message for _code, message in problems))
    layer = rules.rendered_view_layers(scene)[0]
    denoise = rules.scene_denoises(scene, layer)
    if denoise and not has_oidn():
        raise RuntimeError(
            "the scene denoises but this Blender %s was built without OpenImageDenoise: the merged frame "
            "cannot be denoised as a single render would be" % bpy.app.version_string
        )
    scene.frame_set(int(args["frame"]))
    image = bpy.data.images.load(args["merged"], check_existing=False)
    denoised = build_compositor(scene, layer, image, denoise)
    if denoised:
        say("SKYFARM_MERGE_DENOISE", denoised)
    # Only the compositor runs: it has no Render Layers node, so Blender does not render the scene.
    scene.render.use_sequencer = False
    bpy.ops.render.render(scene=scene.name)
    output = args["output"]
    folder, name = os.path.split(output)
    os.makedirs(folder, exist_ok=True)
    temp_path = os.path.join(folder, ".skyfarm-tmp-%d-%s" % (os.getpid(), name))
    try:
        bpy.data.images["Render Result"].save_render(filepath=temp_path, scene=scene)
        if not (os.path.isfile(temp_path) and os.path.getsize(temp_path) > 0):
            raise RuntimeError("Blender wrote no image to %s" % temp_path)
        os.replace(temp_path, output)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)
    if args.get("preview"):
        try:
            write_preview(output, args["preview"], int(args.get("previewSize") or 256))
        except Exception as error:  # noqa: BLE001 - a preview is a nicety
            say("Warning: no preview for frame %s: %s" % (args["frame"], one_line(error)))
    say("SKYFARM_MERGED", args["frame"], output)


def main():
    argv = sys.argv
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = json.loads(rest[0]) if rest else {}
    try:
        merge(args)
        return True
    except Exception as error:  # noqa: BLE001 - reported as the frame's failure
        traceback.print_exc(file=sys.stderr)
        say("SKYFARM_MERGE_FAILED", args.get("frame"), one_line(error))
        return False


if not main():
    sys.stdout.flush()
    sys.exit(1)
