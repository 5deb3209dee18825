# Runs inside Blender; reads a .blend without rendering and prints what skyfarm needs to plan a job.
#
#   blender -b --python-exit-code 3 FILE.blend --python probe.py -- '{"scene": "Scene"}'
#
# Prints exactly one line `SKYFARM_PROBE <json>` on stdout. An unknown scene is not an error here:
# the JSON says `sceneFound: false` and lists the scenes, so the caller can tell the user which exist.
import glob
import json
import os
import re
import sys

import bpy

MARKER = "SKYFARM_PROBE"


def script_args():
    argv = sys.argv
    if "--" not in argv:
        return {}
    rest = argv[argv.index("--") + 1 :]
    return json.loads(rest[0]) if rest else {}


def normalized_abspath(path, library=None):
    """Blender's own resolution of `//` (relative to the .blend, or to the library it comes from)."""
    if not path:
        return ""
    absolute = bpy.path.abspath(path, library=library)
    keep_trailing_separator = absolute.endswith(("/", "\\"))
    absolute = os.path.normpath(absolute)
    return absolute + os.sep if keep_trailing_separator and not absolute.endswith(os.sep) else absolute


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
    }


def kinds_by_path():
    """blend_paths() says where files are but not what they are; name them from the ID collections."""
    kinds = {}

    def add(collection, kind):
        for datablock in collection:
            path = getattr(datablock, "filepath", "")
            if not path or getattr(datablock, "packed_file", None) is not None:
                continue
            kinds.setdefault(normalized_abspath(path, datablock.library), kind)

    add(bpy.data.libraries, "library")
    add(bpy.data.images, "image")
    add(bpy.data.movieclips, "movieclip")
    add(bpy.data.sounds, "sound")
    add(bpy.data.fonts, "font")
    add(bpy.data.volumes, "volume")
    add(bpy.data.cache_files, "cache")
    add(bpy.data.texts, "text")
    return kinds


def expanded_image_files():
    """Image sequences and UDIM sets are one path in Blender but several files on disk."""
    expanded = {}
    for image in bpy.data.images:
        if image.packed_file is not None or not image.filepath:
            continue
        path = normalized_abspath(image.filepath, image.library)
        if image.source == "TILED" and "<UDIM>" in path:
            expanded[path] = [path.replace("<UDIM>", str(tile.number)) for tile in image.tiles]
        elif image.source == "SEQUENCE":
            directory, name = os.path.split(path)
            match = re.match(r"^(.*?)(\d+)(\.[^.]*)?$", name)
            if match:
                prefix, digits, extension = match.group(1), match.group(2), match.group(3) or ""
                pattern = glob.escape(prefix) + "[0-9]" * len(digits) + "*" + glob.escape(extension)
                expanded[path] = sorted(glob.glob(os.path.join(glob.escape(directory), pattern))) or [path]
    return expanded


def dependencies():
    kinds = kinds_by_path()
    expanded = expanded_image_files()
    paths = [normalized_abspath(p) for p in bpy.utils.blend_paths(absolute=True, packed=False, local=False)]
    # blend_paths() lists libraries too, but be explicit: a linked library is always a dependency.
    paths += [normalized_abspath(lib.filepath, lib.library) for lib in bpy.data.libraries]
    result = []
    seen = set()
    for path in paths:
        if not path or path.startswith("<"):
            continue  # "<builtin>" font and other virtual paths
        kind = kinds.get(path, "file")
        for file_path in expanded.get(path, [path]):
            if file_path in seen:
                continue
            seen.add(file_path)
            result.append({"path": file_path, "kind": kind, "missing": not os.path.exists(file_path)})
    return result


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
        "dependencies": dependencies(),
    }
    sys.stdout.write(MARKER + " " + json.dumps(result, ensure_ascii=True) + "\n")
    sys.stdout.flush()


main()
