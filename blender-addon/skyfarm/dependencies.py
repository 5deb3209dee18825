"""Every file the open scene depends on, as the render.submit `dependencies` list.

The daemon renders a saved copy that lives in a temporary folder, so it cannot find the scene's
files by itself: this list is what it uploads. The rules: bpy.utils.blend_paths (stored and
resolved, to know which paths are `//` relative), linked libraries, disk point caches and image
strips, with image sequences, UDIM/UV tiles and cache sequences expanded to the files on disk.
The panel shows the missing ones before the user submits.

The daemon's probe (daemon/blender/probe.py, in headless Blender) loads this file by its path and
calls entries() with its own options, so the two lists cannot drift apart. Keep it standalone:
stdlib and bpy only, no imports from the rest of the add-on.
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


def _normalized(path: str, keep_trailing_separator: bool = False) -> str:
    if not path:
        return ""  # blend_paths() lists a disk point cache without a folder as "" (not ".")
    normal = os.path.normpath(path)
    if keep_trailing_separator and path.endswith(("/", "\\")) and not normal.endswith(os.sep):
        return normal + os.sep
    return normal


def normalized_abspath(path: str, library=None, keep_trailing_separator: bool = False) -> str:
    """Blender's own resolution of `//` (relative to the .blend, or to the library it comes from)."""
    return _normalized(bpy.path.abspath(path, library=library), keep_trailing_separator) if path else ""


class _Collector:
    """One pass over bpy.data. The options are where the add-on and the daemon's probe differ:

    include_unused: the probe reads a saved .blend, where every datablock counts; the add-on reads
        the live session and skips datablocks without users (they are not saved in the copy).
    scanned_dirs: the probe records the folders whose listing decided the list (sequences, tiles,
        caches) for the daemon's probe cache, which re-checks their mtime.
    keep_trailing_separator: the probe has always kept a folder's trailing separator (`//frames/`).
    """

    def __init__(self, include_unused, scanned_dirs, keep_trailing_separator):
        self.include_unused = include_unused
        self.scanned_dirs = scanned_dirs
        self.keep_trailing_separator = keep_trailing_separator

    def abspath(self, path: str, library=None) -> str:
        return normalized_abspath(path, library, self.keep_trailing_separator)

    def scanned(self, directory: str) -> None:
        if self.scanned_dirs is not None:
            self.scanned_dirs.add(directory)

    def kinds_and_orphans(self) -> Tuple[Dict[str, str], Set[str]]:
        """blend_paths() says where files are, not what they are or whether they will be saved."""
        kinds: Dict[str, str] = {}
        used: Set[str] = set()
        seen: Set[str] = set()
        for datablock, kind in _datablocks():
            path = getattr(datablock, "filepath", "")
            if not path or getattr(datablock, "packed_file", None) is not None:
                continue
            absolute = self.abspath(path, getattr(datablock, "library", None))
            seen.add(absolute)
            kinds.setdefault(absolute, kind)
            if self.include_unused or kind == "library" or _is_saved(datablock):
                used.add(absolute)
        return kinds, seen - used

    def sequence_files(self, path: str) -> List[str]:
        """Every frame of a numbered sequence (shot_0001.exr gives all shot_####*.exr beside it)."""
        directory, name = os.path.split(path)
        match = re.match(r"^(.*?)(\d+)(\.[^.]*)?$", name)
        if not match:
            return [path]
        prefix, digits, extension = match.group(1), match.group(2), match.group(3) or ""
        pattern = glob.escape(prefix) + "[0-9]" * len(digits) + "*" + glob.escape(extension)
        self.scanned(directory)
        return sorted(glob.glob(os.path.join(glob.escape(directory), pattern))) or [path]

    def tile_files(self, path: str, defined_tiles: List[int]) -> List[str]:
        """A UDIM (<UDIM>, 1001…) or UV-tile (<UVTILE>, u1_v1…) set: tiles on disk plus tiles the
        image defines (a defined tile that is not on disk is reported missing)."""
        directory, name = os.path.split(path)
        files = set()
        for token, digits in (("<UDIM>", r"\d{4}"), ("<UVTILE>", r"u\d+_v\d+")):
            if token not in name:
                continue
            head, tail = name.split(token, 1)
            pattern = re.compile("^" + re.escape(head) + digits + re.escape(tail) + "$")
            self.scanned(directory)
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

    def expanded_files(self) -> Dict[str, List[str]]:
        """Sequences and tile sets are one path in Blender but several files on disk."""
        expanded = {}
        for image in bpy.data.images:
            if image.packed_file is not None or not image.filepath:
                continue
            path = self.abspath(image.filepath, image.library)
            if image.source == "TILED" and ("<UDIM>" in path or "<UVTILE>" in path):
                expanded[path] = self.tile_files(path, [tile.number for tile in image.tiles])
            elif image.source == "SEQUENCE":
                expanded[path] = self.sequence_files(path)
        for clip in bpy.data.movieclips:
            if clip.filepath and clip.source == "SEQUENCE":
                path = self.abspath(clip.filepath, clip.library)
                expanded[path] = self.sequence_files(path)
        for collection in (bpy.data.volumes, bpy.data.cache_files):
            for datablock in collection:
                if datablock.filepath and getattr(datablock, "is_sequence", False):
                    path = self.abspath(datablock.filepath, datablock.library)
                    expanded[path] = self.sequence_files(path)
        return expanded

    def library_entries(self) -> List[Tuple[str, bool, str]]:
        # blend_paths() lists libraries too, but be explicit: a linked library is always a dependency.
        # An indirectly linked library's `//` path is relative to the main .blend, not to the library
        # that links it (resolving it against library.parent named a file that does not exist, and
        # Strict refused the submit). A packed library needs no file.
        return [
            (self.abspath(library.filepath), library.filepath.startswith("//"), "library")
            for library in bpy.data.libraries
            if library.packed_file is None
        ]

    def point_cache_entries(self) -> List[Tuple[str, bool, str]]:
        """Disk caches (//blendcache_<file>/ or an external folder) are not in blend_paths()."""
        entries = []
        base = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
        for ob in bpy.data.objects:
            for cache in _point_caches(ob):
                if not cache.use_disk_cache and not cache.use_external:
                    continue
                folder = cache.filepath if cache.use_external and cache.filepath else f"//blendcache_{base}"
                directory = self.abspath(folder, ob.library)
                hexname = "".join(f"{byte:02X}" for byte in ob.name.encode("utf-8"))
                prefixes = tuple(prefix + "_" for prefix in {cache.name, hexname} if prefix)
                self.scanned(directory)
                try:
                    names = sorted(os.listdir(directory))
                except OSError:
                    entries.append((directory, folder.startswith("//"), "cache"))
                    continue
                for name in names:
                    if name.startswith(prefixes) and not name.startswith("."):
                        entries.append((os.path.join(directory, name), folder.startswith("//"), "cache"))
        return entries

    def strip_entries(self) -> List[Tuple[str, bool, str]]:
        """Image strips name a folder and one file per element."""
        entries = []
        for scene in bpy.data.scenes:
            if scene.sequence_editor is None:
                continue
            editor = scene.sequence_editor
            # Blender 4.4 renamed sequences_all to strips_all (the old name goes away in 5.0).
            strips = getattr(editor, "strips_all", None)
            for strip in editor.sequences_all if strips is None else strips:
                if strip.type != "IMAGE" or not strip.directory:
                    continue
                directory = self.abspath(strip.directory, scene.library)
                for element in strip.elements:
                    entries.append((os.path.join(directory, element.filename), strip.directory.startswith("//"), "image"))
        return entries

    def entries(self) -> List[Tuple[str, str, bool]]:
        kinds, orphans = self.kinds_and_orphans()
        expanded = self.expanded_files()
        stored = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
        resolved = bpy.utils.blend_paths(absolute=True, packed=False, local=False)
        aligned = len(stored) == len(resolved)
        found: List[Tuple[str, bool, Optional[str]]] = []
        for index, path in enumerate(resolved):
            # Already absolute: Blender strips `//` even when there is no folder to resolve it against.
            relative = stored[index].startswith("//") if aligned else True
            found.append((_normalized(path, self.keep_trailing_separator), relative, None))
        found += self.library_entries()
        found += self.point_cache_entries()
        found += self.strip_entries()

        by_path: Dict[str, List] = {}
        for path, relative, kind in found:
            if not path or path.startswith("<") or path in orphans:
                continue  # "<builtin>" fonts; data without users is not saved with the copy.
            kind = kind or kinds.get(path, "file")
            for file_path in expanded.get(path, [path]):
                known = by_path.get(file_path)
                if known is not None:
                    # Referenced both ways: the relative reference decides the layout.
                    known[1] = known[1] or relative
                    continue
                by_path[file_path] = [kind, relative]
        return [(path, kind, relative) for path, (kind, relative) in by_path.items()]


def _is_saved(datablock) -> bool:
    return datablock.users > 0 or datablock.use_fake_user


def _datablocks() -> Iterable[Tuple[object, str]]:
    for attribute, kind in _ID_COLLECTIONS:
        for datablock in getattr(bpy.data, attribute, ()):
            yield datablock, kind


def _point_caches(ob) -> list:
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


def entries(
    include_unused: bool = False,
    scanned_dirs: Optional[Set[str]] = None,
    keep_trailing_separator: bool = False,
) -> List[Tuple[str, str, bool]]:
    """Every external file once, as (absolute path, kind, relative), in the order first found.
    The defaults are the add-on's; the options are described in _Collector."""
    return _Collector(include_unused, scanned_dirs, keep_trailing_separator).entries()


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
    return [
        Dependency(path=path, kind=kind, missing=not _exists(path), relative=relative)
        for path, kind, relative in sorted(entries())
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
