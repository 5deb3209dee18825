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

# Folders whose listing decided the dependency list (sequences, tiles, caches): the daemon's probe
# cache re-checks their mtime, so a file added to one of them is noticed.
SCANNED_DIRS = set()


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


def sequence_files(path):
    """Every frame of a numbered sequence (`shot_0001.exr` → all `shot_####*.exr` beside it)."""
    directory, name = os.path.split(path)
    match = re.match(r"^(.*?)(\d+)(\.[^.]*)?$", name)
    if not match:
        return [path]
    prefix, digits, extension = match.group(1), match.group(2), match.group(3) or ""
    pattern = glob.escape(prefix) + "[0-9]" * len(digits) + "*" + glob.escape(extension)
    SCANNED_DIRS.add(directory)
    return sorted(glob.glob(os.path.join(glob.escape(directory), pattern))) or [path]


def tile_files(path, defined_tiles):
    """A UDIM (`<UDIM>`, 1001…) or UV-tile (`<UVTILE>`, u1_v1…) set: every tile on disk plus every
    tile the image defines (a defined tile that is not on disk is reported missing)."""
    directory, name = os.path.split(path)
    files = set()
    for token, digits in (("<UDIM>", r"\d{4}"), ("<UVTILE>", r"u\d+_v\d+")):
        if token not in name:
            continue
        head, tail = name.split(token, 1)
        pattern = re.compile("^" + re.escape(head) + digits + re.escape(tail) + "$")
        SCANNED_DIRS.add(directory)
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        files.update(os.path.join(directory, n) for n in names if pattern.match(n))
        if token == "<UDIM>":
            files.update(path.replace(token, str(number)) for number in defined_tiles)
        else:
            for number in defined_tiles:
                u, v = (number - 1001) % 10 + 1, (number - 1001) // 10 + 1
                files.add(path.replace(token, "u%d_v%d" % (u, v)))
    return sorted(files) or [path]


def expanded_files():
    """Image sequences, UDIM sets and cache sequences are one path in Blender but several files on disk."""
    expanded = {}
    for image in bpy.data.images:
        if image.packed_file is not None or not image.filepath:
            continue
        path = normalized_abspath(image.filepath, image.library)
        if image.source == "TILED" and ("<UDIM>" in path or "<UVTILE>" in path):
            expanded[path] = tile_files(path, [tile.number for tile in image.tiles])
        elif image.source == "SEQUENCE":
            expanded[path] = sequence_files(path)
    for clip in bpy.data.movieclips:
        if clip.filepath and clip.source == "SEQUENCE":
            path = normalized_abspath(clip.filepath, clip.library)
            expanded[path] = sequence_files(path)
    for collection in (bpy.data.volumes, bpy.data.cache_files):
        for datablock in collection:
            if datablock.filepath and getattr(datablock, "is_sequence", False):
                path = normalized_abspath(datablock.filepath, datablock.library)
                expanded[path] = sequence_files(path)
    return expanded


def point_caches(ob):
    """The point caches of an object (cloth, soft body, particles, dynamic paint)."""
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


def point_cache_entries():
    """Disk caches (`//blendcache_<file>/` or an external folder) are not in blend_paths()."""
    entries = []
    base = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
    for ob in bpy.data.objects:
        for cache in point_caches(ob):
            if not cache.use_disk_cache and not cache.use_external:
                continue
            folder = cache.filepath if cache.use_external and cache.filepath else "//blendcache_%s" % base
            directory = normalized_abspath(folder, ob.library)
            hexname = "".join("%02X" % byte for byte in ob.name.encode("utf-8"))
            prefixes = tuple(p + "_" for p in {cache.name, hexname} if p)
            SCANNED_DIRS.add(directory)
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                entries.append((directory, folder.startswith("//"), "cache"))
                continue
            for name in names:
                if name.startswith(prefixes) and not name.startswith("."):
                    entries.append((os.path.join(directory, name), folder.startswith("//"), "cache"))
    return entries


def strip_entries():
    """Image strips name a folder and one file per element."""
    entries = []
    for scene in bpy.data.scenes:
        if scene.sequence_editor is None:
            continue
        for strip in scene.sequence_editor.sequences_all:
            if strip.type != "IMAGE" or not strip.directory:
                continue
            directory = normalized_abspath(strip.directory, scene.library)
            for element in strip.elements:
                entries.append((os.path.join(directory, element.filename), strip.directory.startswith("//"), "image"))
    return entries


def dependencies():
    """Every external file: path (absolute), kind, missing, and relative (stored as `//…` in the
    .blend or library that uses it, so it must keep its place relative to that file)."""
    kinds = kinds_by_path()
    expanded = expanded_files()
    stored = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
    resolved = bpy.utils.blend_paths(absolute=True, packed=False, local=False)
    aligned = len(stored) == len(resolved)
    entries = []
    for index, path in enumerate(resolved):
        relative = stored[index].startswith("//") if aligned else True
        entries.append((normalized_abspath(path), relative, None))
    # blend_paths() lists libraries too, but be explicit: a linked library is always a dependency.
    entries += [(normalized_abspath(lib.filepath, lib.library), lib.filepath.startswith("//"), "library") for lib in bpy.data.libraries]
    entries += point_cache_entries()
    entries += strip_entries()
    result = []
    index_by_path = {}
    for path, relative, kind in entries:
        if not path or path.startswith("<"):
            continue  # "<builtin>" font and other virtual paths
        kind = kind or kinds.get(path, "file")
        for file_path in expanded.get(path, [path]):
            if file_path in index_by_path:
                if relative:  # referenced both ways: the relative reference decides the layout
                    result[index_by_path[file_path]]["relative"] = True
                continue
            index_by_path[file_path] = len(result)
            result.append(
                {"path": file_path, "kind": kind, "missing": not os.path.exists(file_path), "relative": relative}
            )
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
    result["scannedDirs"] = sorted(d for d in SCANNED_DIRS if d)
    sys.stdout.write(MARKER + " " + json.dumps(result, ensure_ascii=True) + "\n")
    sys.stdout.flush()


main()
