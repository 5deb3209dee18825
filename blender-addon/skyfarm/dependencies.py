"""Every file the open scene depends on, as the render.submit `dependencies` list.

The daemon renders a saved copy that lives in a temporary folder, so it cannot find the scene's
files by itself: this list is what it uploads. It follows the daemon's own probe
(daemon/blender/probe.py) rule for rule: bpy.utils.blend_paths (stored and resolved, to know which
paths are `//` relative), linked libraries, disk point caches and image strips, with image
sequences, UDIM/UV tiles and cache sequences expanded to the files on disk. Unlike the probe it
runs on the live session, so it skips datablocks without users: those are not saved in the copy.
The panel shows the missing ones before the user submits.
"""

import glob
import os
import re
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set, Tuple

import bpy

_CACHE_SECONDS = 3.0
_ID_COLLECTIONS = (
    ("libraries", "library"),
    ("images", "image"),
    ("movieclips", "movieclip"),
    ("sounds", "sound"),
    ("fonts", "font"),
    ("volumes", "volume"),
    ("cache_files", "cache"),
    ("texts", "text"),
)


@dataclass(frozen=True)
class Dependency:
    path: str  # absolute
    kind: str
    missing: bool
    # Stored as `//…` in the .blend or library using it: it keeps its place relative to that file.
    relative: bool

    def to_message(self) -> Dict:
        return {"path": self.path, "kind": self.kind, "missing": self.missing, "relative": self.relative}


def normalized_abspath(path: str, library=None) -> str:
    if not path:
        return ""
    return os.path.normpath(bpy.path.abspath(path, library=library))


def _is_saved(datablock) -> bool:
    return datablock.users > 0 or datablock.use_fake_user


def _datablocks() -> Iterable[Tuple[object, str]]:
    for attribute, kind in _ID_COLLECTIONS:
        for datablock in getattr(bpy.data, attribute, ()):
            yield datablock, kind


def _kinds_and_orphans() -> Tuple[Dict[str, str], Set[str]]:
    """blend_paths() says where files are, not what they are or whether they will be saved."""
    kinds: Dict[str, str] = {}
    used: Set[str] = set()
    seen: Set[str] = set()
    for datablock, kind in _datablocks():
        path = getattr(datablock, "filepath", "")
        if not path or getattr(datablock, "packed_file", None) is not None:
            continue
        absolute = normalized_abspath(path, getattr(datablock, "library", None))
        seen.add(absolute)
        kinds.setdefault(absolute, kind)
        if kind == "library" or _is_saved(datablock):
            used.add(absolute)
    return kinds, seen - used


def sequence_files(path: str) -> List[str]:
    """Every frame of a numbered sequence (shot_0001.exr gives all shot_####*.exr beside it)."""
    directory, name = os.path.split(path)
    match = re.match(r"^(.*?)(\d+)(\.[^.]*)?$", name)
    if not match:
        return [path]
    prefix, digits, extension = match.group(1), match.group(2), match.group(3) or ""
    pattern = glob.escape(prefix) + "[0-9]" * len(digits) + "*" + glob.escape(extension)
    return sorted(glob.glob(os.path.join(glob.escape(directory), pattern))) or [path]


def tile_files(path: str, defined_tiles: List[int]) -> List[str]:
    """A UDIM (<UDIM>, 1001…) or UV-tile (<UVTILE>, u1_v1…) set: tiles on disk plus tiles the image defines."""
    directory, name = os.path.split(path)
    files = set()
    for token, digits in (("<UDIM>", r"\d{4}"), ("<UVTILE>", r"u\d+_v\d+")):
        if token not in name:
            continue
        head, tail = name.split(token, 1)
        pattern = re.compile("^" + re.escape(head) + digits + re.escape(tail) + "$")
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        files.update(os.path.join(directory, entry) for entry in names if pattern.match(entry))
        for number in defined_tiles:
            if token == "<UDIM>":
                files.add(path.replace(token, str(number)))
            else:
                u, v = (number - 1001) % 10 + 1, (number - 1001) // 10 + 1
                files.add(path.replace(token, f"u{u}_v{v}"))
    return sorted(files) or [path]


def _expanded_files() -> Dict[str, List[str]]:
    """Sequences and tile sets are one path in Blender but several files on disk."""
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


def _point_caches(ob) -> list:
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


def _point_cache_entries() -> List[Tuple[str, bool, str]]:
    """Disk caches (//blendcache_<file>/ or an external folder) are not in blend_paths()."""
    entries = []
    base = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
    for ob in bpy.data.objects:
        for cache in _point_caches(ob):
            if not cache.use_disk_cache and not cache.use_external:
                continue
            folder = cache.filepath if cache.use_external and cache.filepath else f"//blendcache_{base}"
            directory = normalized_abspath(folder, ob.library)
            hexname = "".join(f"{byte:02X}" for byte in ob.name.encode("utf-8"))
            prefixes = tuple(prefix + "_" for prefix in {cache.name, hexname} if prefix)
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                entries.append((directory, folder.startswith("//"), "cache"))
                continue
            for name in names:
                if name.startswith(prefixes) and not name.startswith("."):
                    entries.append((os.path.join(directory, name), folder.startswith("//"), "cache"))
    return entries


def _strip_entries() -> List[Tuple[str, bool, str]]:
    """Image strips name a folder and one file per element."""
    entries = []
    for scene in bpy.data.scenes:
        if scene.sequence_editor is None:
            continue
        editor = scene.sequence_editor
        # Blender 4.4 renamed sequences_all to strips_all (the old name goes away in 5.0).
        for strip in getattr(editor, "strips_all", None) or editor.sequences_all:
            if strip.type != "IMAGE" or not strip.directory:
                continue
            directory = normalized_abspath(strip.directory, scene.library)
            for element in strip.elements:
                entries.append((os.path.join(directory, element.filename), strip.directory.startswith("//"), "image"))
    return entries


_exists_cache: Dict[str, Tuple[float, bool]] = {}


def _exists(path: str) -> bool:
    """os.path.exists with a short cache: the panel asks on redraws, files may be on a slow share."""
    now = time.monotonic()
    cached = _exists_cache.get(path)
    if cached is not None and now - cached[0] < _CACHE_SECONDS:
        return cached[1]
    exists = os.path.exists(path)
    _exists_cache[path] = (now, exists)
    return exists


def collect(use_cache: bool = True) -> List[Dependency]:
    """The scene's dependencies, each file once, in a stable order."""
    if not use_cache:
        _exists_cache.clear()
    kinds, orphans = _kinds_and_orphans()
    expanded = _expanded_files()
    stored = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
    resolved = bpy.utils.blend_paths(absolute=True, packed=False, local=False)
    aligned = len(stored) == len(resolved)
    entries: List[Tuple[str, bool, Optional[str]]] = []
    for index, path in enumerate(resolved):
        entries.append((os.path.normpath(path), stored[index].startswith("//") if aligned else True, None))
    entries += [
        (normalized_abspath(library.filepath, library.parent), library.filepath.startswith("//"), "library")
        for library in bpy.data.libraries
        if library.packed_file is None
    ]
    entries += _point_cache_entries()
    entries += _strip_entries()

    by_path: Dict[str, Dict] = {}
    for path, relative, kind in entries:
        if not path or path.startswith("<") or path in orphans:
            continue  # "<builtin>" fonts; data without users is not saved with the copy.
        kind = kind or kinds.get(path, "file")
        for file_path in expanded.get(path, [path]):
            known = by_path.get(file_path)
            if known is not None:
                # Referenced both ways: the relative reference decides the layout.
                known["relative"] = known["relative"] or relative
                continue
            by_path[file_path] = {"kind": kind, "relative": relative}
    return [
        Dependency(path=path, kind=info["kind"], missing=not _exists(path), relative=info["relative"])
        for path, info in sorted(by_path.items())
    ]


def missing(dependencies: Optional[List[Dependency]] = None) -> List[Dependency]:
    return [dependency for dependency in (dependencies if dependencies is not None else collect()) if dependency.missing]


_recent: Tuple[float, List[Dependency]] = (float("-inf"), [])


def recent(max_age: float = 2.0) -> List[Dependency]:
    """collect(), at most every max_age seconds: the panel draws far more often than files change."""
    global _recent
    now = time.monotonic()
    if now - _recent[0] > max_age:
        _recent = (now, collect(use_cache=max_age > 0))
    return _recent[1]
