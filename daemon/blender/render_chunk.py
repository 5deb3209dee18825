# Runs inside Blender; renders one chunk of frames with overwrite off.
#
#   blender -b --python-exit-code 1 FILE.blend --python render_chunk.py -- '<json>'   (or -- @args.json)
#   blender -b --python-exit-code 1 --python render_chunk.py -- @stdin
#
# With @stdin Blender was started ahead of its chunk (daemon/src/render/warm-blender.ts): it waits
# for one line of the same JSON plus "blendFile", opens that file and renders; end-of-file (the
# daemon went away or no longer needs it) ends it quietly with exit code 0.
#
# JSON: {"scene": str, "frames": [int], "outputDir": str,
#        "filePattern": "frame_####.png" (the name Blender gives frame ####, from probe.py's output_names),
#        "remaps": {oldAbsPath: newAbsPath},
#        "device": "CPU" | "GPU" (optional; GPU enables OptiX, else CUDA, and fails every frame when
#                  Blender finds neither: a GPU job never falls back to the CPU),
#        "previewDir": str (optional; a small PNG of every finished frame, <previewDir>/<frame>.png,
#                  written before its FRAME_DONE marker), "previewSize": int (longest side, default 256),
#        "split": {"parts": N, "part": k, "dir": str} (optional; renders part k of N of every frame,
#                  split_rules.py, to <dir>/<frame>/<k>.exr instead of the scene's output)}
#
# Prints one marker line per event, which the daemon parses (daemon/src/render/progress.ts):
#   SKYFARM_FRAME_START <f>
#   SKYFARM_FRAME_DONE <f> <seconds> <path>
#   SKYFARM_FRAME_SKIPPED <f> <path>
#   SKYFARM_FRAME_FAILED <f> <one-line message>
#   SKYFARM_PART <f> <part> <samples> <total samples> <first sample> <seed> <rows>   (split: before
#                 the frame renders; samples first … first+samples-1 of the sequence of that seed, of
#                 every row ("-") or of a band of rows ("Y0-Y1/H", from the bottom; split_rules.py))
# A frame that fails does not stop the chunk; the exit code is 0 only when every frame is done or
# skipped. A frame is written to a temporary name and renamed, so a killed render leaves no partial
# frame under the final name, and a retried chunk skips every frame that already exists.
import glob
import importlib.util
import json
import os
import sys
import time
import traceback

import bpy

TEMP_PREFIX = ".skyfarm-tmp-"


def say(*parts):
    # Python buffers stdout on a pipe while Blender's C code flushes: flush so lines keep their order.
    print(*parts, flush=True)


def one_line(text):
    return " ".join(str(text).split()) or "unknown error"


def script_args():
    argv = sys.argv
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    if not rest:
        raise ValueError("render_chunk.py needs a JSON argument after --")
    if rest[0] == "@stdin":
        line = sys.stdin.readline()
        if not line.strip():
            sys.exit(0)
        args = json.loads(line)
        bpy.ops.wm.open_mainfile(filepath=args["blendFile"], load_ui=False)
        return args
    if rest[0].startswith("@"):
        with open(rest[0][1:], encoding="utf-8") as handle:
            return json.load(handle)
    return json.loads(rest[0])


def normalized_abspath(path, library=None):
    return os.path.normpath(bpy.path.abspath(path, library=library)) if path else ""


def all_strips(editor):
    """Every strip, meta strips' content too: `strips_all` since 4.4, `sequences_all` until 4.5
    (gone in 5.0)."""
    strips = getattr(editor, "strips_all", None)
    return editor.sequences_all if strips is None else strips


def point_caches(ob):
    """Every point cache an object reads (cloth, soft body, particles, dynamic paint)."""
    caches = []
    for modifier in ob.modifiers:
        for owner in (modifier, getattr(modifier, "settings", None)):
            cache = getattr(owner, "point_cache", None) if owner is not None else None
            if cache is not None:
                caches.append(cache)
        canvas = getattr(modifier, "canvas_settings", None)
        if canvas is not None:
            caches.extend(surface.point_cache for surface in canvas.canvas_surfaces)
    caches.extend(system.point_cache for system in ob.particle_systems)
    return caches


def load_split_rules():
    """split_rules.py beside this script (Blender runs it as a file, not as a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "split_rules.py")
    spec = importlib.util.spec_from_file_location("skyfarm_split_rules", path)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True
    spec.loader.exec_module(module)
    return module


def load_dependencies():
    """blender-addon/skyfarm/dependencies.py (found walking up from here, as probe.py finds it), or None
    where it is not shipped."""
    directory = os.path.dirname(os.path.abspath(__file__))
    while True:
        candidate = os.path.join(directory, "blender-addon", "skyfarm", "dependencies.py")
        if os.path.isfile(candidate):
            break
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    spec = importlib.util.spec_from_file_location("skyfarm_dependencies", candidate)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True  # leave no __pycache__ in the add-on's source folder
    spec.loader.exec_module(module)
    return module


class Remapper:
    """Maps absolute paths from the submitting machine to where the copy stage put the files.

    A key names a file, or a folder whose whole content moved (the project root, an external folder
    holding image sequences or UDIM sets); the longest matching key wins. Paths that already point
    into a target (relative paths resolved in the job folder) are left alone. Each rewrite is printed
    as `SKYFARM_REMAP <old> -> <new>`; afterwards every file the scene still cannot find is printed as
    `SKYFARM_MISSING <path>` (it renders without it: pink textures).
    """

    def __init__(self, remaps):
        self.remaps = sorted(
            ((os.path.normpath(old), os.path.normpath(new)) for old, new in (remaps or {}).items()),
            key=lambda pair: len(pair[0]),
            reverse=True,
        )
        self.targets = [new for _, new in self.remaps]
        self.count = 0

    @staticmethod
    def _inside(path, folder):
        return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)

    def target(self, path, library=None):
        absolute = normalized_abspath(path, library)
        if not absolute or any(self._inside(absolute, t) for t in self.targets):
            return None
        for old, new in self.remaps:
            if self._inside(absolute, old):
                return new + absolute[len(old.rstrip(os.sep)) :] if absolute != old else new
        # A cache folder whose files all lie in subfolders (fluid: config/, data/…; a geometry-nodes
        # bake: <id>/meta/…) has keys only for those: it moved where they moved, minus the same tail.
        for old, new in self.remaps:
            tail = old[len(absolute.rstrip(os.sep)) :]
            if self._inside(old, absolute) and old != absolute and new.endswith(tail):
                return new[: len(new) - len(tail)]
        return None

    def _set(self, owner, attribute, new_path, what):
        old_path = getattr(owner, attribute)
        try:
            setattr(owner, attribute, new_path)
        except (AttributeError, TypeError, RuntimeError) as error:
            say("Warning: skyfarm could not remap %s %s: %s" % (what, old_path, one_line(error)))
            return False
        self.count += 1
        say("SKYFARM_REMAP", old_path, "->", new_path)
        return True

    def apply(self):
        """Rewrites the paths; True when it had to save the job's copy and open it again."""
        if not self.remaps:
            return False
        reopen = False
        # Libraries first (parents before the libraries they link): reloading one loads its data, and
        # its own `//` paths then resolve inside the job folder. Blender keeps every library's path
        # relative to the main file, indirect ones included.
        for library in sorted(bpy.data.libraries, key=lambda lib: 0 if lib.parent is None else 1):
            new_path = self.target(library.filepath)
            if new_path and self._set(library, "filepath", new_path, "library"):
                library.reload()
        collections = (
            bpy.data.images,
            bpy.data.movieclips,
            bpy.data.sounds,
            bpy.data.fonts,
            bpy.data.volumes,
            bpy.data.cache_files,
        )
        for collection in collections:
            for datablock in collection:
                if getattr(datablock, "packed_file", None) is not None or not datablock.filepath:
                    continue
                # Linked data keeps `//` paths relative to its (remapped) library; absolute ones need this.
                new_path = self.target(datablock.filepath, datablock.library)
                if new_path:
                    self._set(datablock, "filepath", new_path, datablock.__class__.__name__.lower())
        for cache_file in bpy.data.cache_files:
            for layer in getattr(cache_file, "layers", ()):  # Alembic layers (3.0+)
                new_path = self.target(layer.filepath, cache_file.library)
                if new_path:
                    self._set(layer, "filepath", new_path, "cache layer")
        for ob in bpy.data.objects:
            for modifier in ob.modifiers:
                domain = getattr(modifier, "domain_settings", None)
                if domain is not None and domain.cache_directory:
                    new_dir = self.target(domain.cache_directory, ob.library)
                    if new_dir:
                        self._set(domain, "cache_directory", new_dir, "fluid cache")
                if modifier.type in ("OCEAN", "MESH_CACHE") and getattr(modifier, "filepath", ""):
                    new_path = self.target(modifier.filepath, ob.library)
                    if new_path:
                        self._set(modifier, "filepath", new_path, "modifier cache")
                if modifier.type == "NODES":  # geometry-nodes bakes (3.6-4.0: simulation_bake_directory)
                    for attribute in ("bake_directory", "simulation_bake_directory"):
                        new_dir = self.target(getattr(modifier, attribute, ""), ob.library)
                        if new_dir and self._set(modifier, attribute, new_dir, "bake folder"):
                            reopen = True
                    for bake in getattr(modifier, "bakes", ()):
                        new_dir = self.target(bake.directory, ob.library) if bake.use_custom_path else None
                        if new_dir and self._set(bake, "directory", new_dir, "bake folder"):
                            reopen = True
            for cache in point_caches(ob):
                # An external cache's folder; a relative one follows its .blend, which is the library
                # of a linked object unless "Library Path" is off (then the main file).
                if cache.use_external and cache.filepath:
                    base = ob.library if cache.use_library_path else None
                    new_dir = self.target(cache.filepath, base)
                    if new_dir:
                        self._set(cache, "filepath", new_dir + os.sep, "point cache")
        for scene in bpy.data.scenes:
            if scene.sequence_editor is None:
                continue
            for strip in all_strips(scene.sequence_editor):
                if strip.type == "IMAGE":
                    new_dir = self.target(strip.directory, scene.library)
                    if new_dir:
                        self._set(strip, "directory", new_dir + os.sep, "image strip")
                elif hasattr(strip, "filepath"):
                    new_path = self.target(strip.filepath, scene.library)
                    if new_path:
                        self._set(strip, "filepath", new_path, "strip")
        say("SKYFARM_REMAPPED", self.count)
        if reopen:
            # Blender looks for geometry-nodes bakes when it opens the file and keeps the answer: a bake
            # folder that moved is found only by opening the job's copy again with the new paths.
            bpy.ops.wm.save_mainfile(relative_remap=False)
            bpy.ops.wm.revert_mainfile()
            say("SKYFARM_REOPENED", bpy.data.filepath)
        return reopen

    @staticmethod
    def report_missing():
        dependencies = load_dependencies()
        if dependencies is not None:
            # The add-on's rules (blender-addon/skyfarm/dependencies.py), as the probe used them: what
            # Blender reads, not every path the file stores (an unbaked cache's folder, a text's file).
            for path, _kind, _relative in dependencies.entries(include_unused=True):
                if not os.path.exists(path):
                    say("SKYFARM_MISSING", path)
            return
        for path in bpy.utils.blend_paths(absolute=True, packed=False, local=False):
            path = os.path.normpath(path)
            if path.startswith("<") or not path:
                continue
            if "<UDIM>" in path or "<UVTILE>" in path:
                folder = os.path.dirname(path)
                head = os.path.basename(path).split("<")[0]
                present = os.path.isdir(folder) and any(n.startswith(head) for n in os.listdir(folder))
            else:
                present = os.path.exists(path)
            if not present:
                say("SKYFARM_MISSING", path)


def enable_gpu(scene):
    """Switches Cycles to the GPU (OptiX, else CUDA); returns an error message when there is none."""
    if scene.render.engine != "CYCLES":
        return None  # Eevee and Workbench draw with the GPU already; they fail on their own without one
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
    except KeyError:
        return "GPU requested but the Cycles add-on is not available"
    tried = []
    for kind in ("OPTIX", "CUDA"):
        try:
            prefs.compute_device_type = kind
        except TypeError:
            tried.append("%s (not in this Blender build)" % kind)
            continue
        devices = [device for device in prefs.get_devices_for_type(kind) if device.type == kind]
        if not devices:
            tried.append("%s (no device)" % kind)
            continue
        for device in prefs.devices:
            device.use = device.type == kind
        scene.cycles.device = "GPU"
        say("SKYFARM_GPU", kind, ", ".join(device.name for device in devices))
        return None
    return "GPU requested but Blender found no GPU: tried " + ", ".join(tried) + "; refusing to render on the CPU"


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


def is_finished_frame(path):
    try:
        return os.path.isfile(path) and os.path.getsize(path) > 0
    except OSError:
        return False


def render_frame(scene, frame, final_path, file_camera):
    # A camera switched by a timeline marker stays set after that frame; start every frame from the
    # file's own camera so a frame renders the same whatever chunk it is in.
    scene.camera = file_camera
    scene.frame_set(frame)
    bpy.ops.render.render(scene=scene.name)
    folder, name = os.path.split(final_path)
    os.makedirs(folder, exist_ok=True)
    # A Blender killed between save and rename (SIGKILL) leaves its temporary file: remove it.
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(TEMP_PREFIX) + "*-" + glob.escape(name))):
        os.remove(stale)
    temp_path = os.path.join(folder, "%s%d-%s" % (TEMP_PREFIX, os.getpid(), name))
    try:
        bpy.data.images["Render Result"].save_render(filepath=temp_path, scene=scene)
        if not is_finished_frame(temp_path):
            raise RuntimeError("Blender wrote no image to %s" % temp_path)
        os.replace(temp_path, final_path)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)


def main():
    args = script_args()
    scene = bpy.data.scenes.get(args["scene"])
    frames = [int(frame) for frame in args["frames"]]
    if scene is None:
        names = ", ".join(s.name for s in bpy.data.scenes)
        for frame in frames:
            say("SKYFARM_FRAME_FAILED", frame, one_line('scene "%s" not found; scenes: %s' % (args["scene"], names)))
        return False
    if bpy.context.window is not None:
        bpy.context.window.scene = scene
    if Remapper(args.get("remaps")).apply():
        scene = bpy.data.scenes.get(args["scene"])  # the file was saved and opened again
    Remapper.report_missing()
    # The file name Blender gives each frame (probe.py reads it from Blender's own frame_path) in the
    # job's folder; frame_path then names every frame. 4.5+ read `{…}` as path templates: the
    # pattern is already resolved, so its braces (and the folder's) are literal.
    output_path = os.path.join(args["outputDir"], args.get("filePattern") or "frame_####")
    if bpy.app.version >= (4, 5, 0):
        output_path = output_path.replace("{", "{{").replace("}", "}}")
    scene.render.filepath = output_path
    file_camera = scene.camera
    preview_dir = args.get("previewDir")
    preview_size = int(args.get("previewSize") or 256)
    split = args.get("split")
    part_path = None
    if split:
        parts, part = int(split["parts"]), int(split["part"])
        try:
            rules = load_split_rules()
            problems = rules.refusals(scene)
            if problems:
                raise ValueError("this scene cannot be split: " + "; ".join(message for _code, message in problems))
            samples, total, offset, rows = rules.configure_part(scene, parts, part)
            seed = scene.cycles.seed
            band = "%d-%d/%d" % rows if rows else "-"
        except Exception as error:  # noqa: BLE001 - every frame of the chunk fails with the reason
            for frame in frames:
                say("SKYFARM_FRAME_FAILED", frame, one_line(error))
            return False
        preview_dir = None  # a part is not the frame; the merge makes its preview
        part_path = lambda frame: os.path.join(split["dir"], str(frame), "%d.exr" % part)  # noqa: E731
    if str(args.get("device") or "CPU").upper() == "GPU":
        problem = enable_gpu(scene)
        if problem:
            for frame in frames:
                say("SKYFARM_FRAME_FAILED", frame, one_line(problem))
            return False

    all_ok = True
    for frame in frames:
        say("SKYFARM_FRAME_START", frame)
        started = time.monotonic()
        try:
            final_path = part_path(frame) if part_path else scene.render.frame_path(frame=frame)
            if part_path:
                say("SKYFARM_PART", frame, part, samples, total, offset, seed, band)
            if is_finished_frame(final_path):
                say("SKYFARM_FRAME_SKIPPED", frame, final_path)
                continue
            render_frame(scene, frame, final_path, file_camera)
            if preview_dir:
                try:
                    write_preview(final_path, os.path.join(preview_dir, "%d.png" % frame), preview_size)
                except Exception as error:  # noqa: BLE001 - a preview is a nicety; the frame is done
                    say("Warning: no preview for frame %d: %s" % (frame, one_line(error)))
            say("SKYFARM_FRAME_DONE", frame, "%.3f" % (time.monotonic() - started), final_path)
        except Exception as error:  # noqa: BLE001 - one bad frame must not stop the chunk
            all_ok = False
            traceback.print_exc(file=sys.stderr)
            say("SKYFARM_FRAME_FAILED", frame, one_line(error))
    return all_ok


if not main():
    sys.stdout.flush()
    sys.exit(1)
