# Runs inside Blender; reads a .blend without rendering and prints what skyfarm needs to plan a job.
#
#   blender -b --python-exit-code 3 FILE.blend --python probe.py -- '{"scene": "Scene"}'
#
# Prints exactly one line `SKYFARM_PROBE <json>` on stdout. An unknown scene is not an error here:
# the JSON says `sceneFound: false` and lists the scenes, so the caller can tell the user which exist.
import importlib.util
import json
import os
import sys

import bpy

MARKER = "SKYFARM_PROBE"

# Folders whose listing decided the dependency list (sequences, tiles, caches): the daemon's probe
# cache re-checks their mtime, so a file added to one of them is noticed.
SCANNED_DIRS = set()


def script_args():
    argv = sys.argv
    if "--" not in argv:
        return {}
    rest = argv[argv.index("--") + 1 :]
    return json.loads(rest[0]) if rest else {}


def load_dependencies():
    """The add-on's blender-addon/skyfarm/dependencies.py, the one dependency list both use, loaded by
    its path (the add-on package itself is not imported). It is found like the daemon finds this
    script: walking up from here to the folder holding both daemon/ and blender-addon/."""
    directory = os.path.dirname(os.path.abspath(__file__))
    while True:
        candidate = os.path.join(directory, "blender-addon", "skyfarm", "dependencies.py")
        if os.path.isfile(candidate):
            break
        parent = os.path.dirname(directory)
        if parent == directory:
            raise RuntimeError("blender-addon/skyfarm/dependencies.py not found above " + __file__)
        directory = parent
    spec = importlib.util.spec_from_file_location("skyfarm_dependencies", candidate)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.dont_write_bytecode = True  # leave no __pycache__ in the add-on's source folder
    spec.loader.exec_module(module)
    return module


dependencies = load_dependencies()


def normalized_abspath(path, library=None):
    """Blender's own resolution of `//` (relative to the .blend, or to the library it comes from)."""
    return dependencies.normalized_abspath(path, library, keep_trailing_separator=True)


def frame_format(frame, width):
    # How Blender writes a frame number into a file name (`-3` with `####` gives `-0003`).
    return ("-" if frame < 0 else "") + str(abs(frame)).zfill(width)


def output_names(scene):
    """Where Blender itself writes this scene's frames, from its own `frame_path` (which knows `//`,
    `#` groups, appended numbers, extensions and 4.5+ path templates): the folder and the file name
    with the frame number as `#`s. `pattern` is None when the name cannot be written that way."""
    render = scene.render
    start = scene.frame_start
    try:
        first = render.frame_path(frame=start)
    except Exception as error:  # noqa: BLE001 - the daemon says the name cannot be told
        return {"framePath": "", "dir": "", "pattern": None, "error": str(error)}
    result = {"framePath": first, "dir": os.path.dirname(first), "pattern": None}
    names = {frame: os.path.basename(render.frame_path(frame=frame)) for frame in (1, 2)}
    one, two = names[1], names[2]
    suffix_length = 0
    while suffix_length < len(one) and one[len(one) - 1 - suffix_length] == two[len(two) - 1 - suffix_length]:
        suffix_length += 1
    suffix = one[len(one) - suffix_length :]
    # The padding: the smallest power of ten whose name grows is one digit wider than it.
    width = None
    for digits in range(1, 10):
        if len(os.path.basename(render.frame_path(frame=10**digits))) > len(one):
            width = digits
            break
    if width is None or width > len(one) - suffix_length:
        return result
    prefix = one[: len(one) - suffix_length - width]
    checks = (1, 2, 12, start, scene.frame_end, -3, 10**width + 7)
    if "#" in suffix or prefix.endswith("#") or any(
        prefix + frame_format(frame, width) + suffix != os.path.basename(render.frame_path(frame=frame))
        for frame in checks
    ):
        return result
    result["pattern"] = prefix + "#" * width + suffix
    return result


def load_split_rules():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "split_rules.py")
    spec = importlib.util.spec_from_file_location("skyfarm_split_rules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_info(scene):
    """Whether this scene's frames can be split across machines (split_rules.py): the samples a frame
    renders, whether this Blender splits it into bands of its rows (how many) rather than runs of
    samples, and the reasons it cannot, each with its error code."""
    try:
        rules = load_split_rules()
        problems = rules.refusals(scene)
        layers = rules.rendered_view_layers(scene)
        samples = rules.effective_samples(scene, layers[0]) if scene.render.engine == "CYCLES" and layers else 0
        bands = scene.render.engine == "CYCLES" and rules.splits_by_rows(scene)
        rows = rules.frame_rows(scene.render)
    except Exception as error:  # noqa: BLE001 - reported as the reason it cannot split
        return {"samples": 0, "problems": [{"code": "SPLIT_COMPOSITOR", "message": "skyfarm could not check it: %s" % error}]}
    return {"samples": samples, "bands": bool(bands), "rows": rows, "problems": [{"code": code, "message": message} for code, message in problems]}


def scene_info(scene):
    render = scene.render
    has_marker_camera = any(marker.camera is not None for marker in scene.timeline_markers)
    return {
        "name": scene.name,
        "frameStart": scene.frame_start,
        "frameEnd": scene.frame_end,
        "frameStep": scene.frame_step,
        "frameCurrent": scene.frame_current,
        "hasCamera": scene.camera is not None or has_marker_camera,
        "camera": scene.camera.name if scene.camera is not None else None,
        "engine": render.engine,
        "resolutionX": render.resolution_x,
        "resolutionY": render.resolution_y,
        "resolutionPercentage": render.resolution_percentage,
        "outputPath": render.filepath,
        "outputPathAbsolute": normalized_abspath(render.filepath),
        "fileFormat": render.image_settings.file_format,
        "fileExtension": render.file_extension,
        "useFileExtension": render.use_file_extension,
        "isMovie": render.is_movie_format,
        "output": output_names(scene),
        "split": split_info(scene),
    }


def dependency_list():
    """Every external file: path (absolute), kind, missing, and relative (stored as `//…` in the
    .blend or library that uses it, so it must keep its place relative to that file)."""
    # A saved file: unused datablocks count too. The other options keep the probe's own behaviour
    # from before the list was shared with the add-on (see _Collector in dependencies.py).
    found = dependencies.entries(
        include_unused=True,
        scanned_dirs=SCANNED_DIRS,
        keep_trailing_separator=True,
    )
    return [
        {"path": path, "kind": kind, "missing": not os.path.exists(path), "relative": relative}
        for path, kind, relative in found
    ]


def main():
    args = script_args()
    requested = args.get("scene") or None
    scenes = [scene.name for scene in bpy.data.scenes]
    # Without a name, the scene the file was saved with active (what `blender -b FILE -a` renders).
    scene = bpy.data.scenes.get(requested) if requested else bpy.context.scene
    version = list(bpy.app.version)
    result = {
        "blenderVersion": version,
        "blendFile": bpy.data.filepath,
        "scenes": scenes,
        "sceneFound": scene is not None,
        "requestedScene": requested,
        "scene": scene_info(scene) if scene is not None else None,
        "dependencies": dependency_list(),
    }
    result["scannedDirs"] = sorted(d for d in SCANNED_DIRS if d)
    sys.stdout.write(MARKER + " " + json.dumps(result, ensure_ascii=True) + "\n")
    sys.stdout.flush()


main()
