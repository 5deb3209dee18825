"""Every file the open scene depends on, as the render.submit `dependencies` list.

The daemon renders a saved copy that lives in a temporary folder, so it cannot find the scene's
files by itself: this list is what it uploads. It follows Blender's own rules for what it reads
while rendering (checked against Blender 3.4, 4.x and 5.x and against what Blender opens under
strace, see test/dependencies-*.test.ts):

- bpy.utils.blend_paths (stored and resolved, to know which paths are `//` relative) for images,
  libraries, sounds, fonts, movie clips, volumes, Alembic/USD caches, strips and node files, minus
  what Blender lists there but does not read: text blocks (saved inside the .blend), brush icons,
  Blender's own asset files, and the paths objects store for caches, which follow their own rules:
- point caches on disk (cloth, soft body, particles, dynamic paint): `blendcache_<file name>/`
  beside the .blend, or beside the *library* of a linked object (unless "Library Path" is off), with
  file names from the cache name or the object name in hex; an external cache reads its folder.
  The folder a non-external cache stores is ignored by Blender, and so here.
- fluid, ocean and geometry-nodes bakes: the files on disk; an unbaked modifier reads nothing.
- sequences: images and movie clips take the frame from the last group of digits in the file name
  (render_0002_beauty.png), volumes and Alembic from the digits right before the extension; UDIM
  and UV-tile sets are the tiles the image defines.

A path is resolved against the library its datablock comes from, so every kind works through
linked libraries, indirect ones included. The panel shows the missing ones before the user submits.

The daemon's probe (daemon/blender/probe.py, in headless Blender) and render_chunk.py load this file
by its path and call entries() with their own options, so the lists cannot drift apart. Keep it
standalone: stdlib and bpy only, no imports from the rest of the add-on.
"""

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
)
# Blender's point cache file extension (PTCACHE_EXT) and the ocean bake's map names.
_PTCACHE_EXT = ".bphys"
_OCEAN_MAPS = ("disp", "foam", "normal", "spray", "spray_inverse")
# The folders of a fluid domain's cache that a render reads (FLUID_DOMAIN_DIR_*; not `script`).
_FLUID_DIRS = ("config", "data", "noise", "mesh", "particles", "guiding")

# How a numbered file name names its frame.
LAST_DIGITS = "last digit group"  # images, movie clips: BLI_path_sequence_decode
DIGITS_BEFORE_EXTENSION = "digits before extension"  # volumes, Alembic: BLI_path_frame_get


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


def sequence_parts(name: str, rule: str) -> Optional[Tuple[str, int, str]]:
    """(head, digits, tail) of a numbered file name, as Blender splits it, or None when it has no
    frame number. The extension is what os.path.splitext says (Blender's BLI_path_extension_or_end)."""
    stem, extension = os.path.splitext(name)
    if rule == DIGITS_BEFORE_EXTENSION:
        match = re.search(r"(\d+)$", stem)
    else:
        match = None
        for match in re.finditer(r"\d+", stem):
            pass
    if match is None:
        return None
    return name[: match.start()], match.end() - match.start(), name[match.end() :]


def sequence_frame_pattern(head: str, digits: int, tail: str) -> "re.Pattern":
    """Names Blender gives frame N: head + N zero-padded to `digits` + tail (more digits, never padded,
    for larger numbers)."""
    return re.compile(
        "^" + re.escape(head) + r"(\d{%d}|[1-9]\d{%d,})" % (digits, digits) + re.escape(tail) + "$"
    )


def point_cache_base(blend_path: str) -> str:
    """`blendcache_<this>`: the file name without `.blend`. Blender 3.x cut 6 characters off any
    name longer than 6, 4.0 on strip the extension; the same for every `.blend`."""
    name = os.path.basename(blend_path)
    if bpy.app.version < (4, 0, 0):
        return name[:-6] if len(name) > 6 else name
    return os.path.splitext(name)[0]


def point_cache_folder(cache, ob) -> Tuple[str, bool]:
    """The folder Blender reads a disk point cache from (ptcache_path), and whether it is relative to a
    .blend: an external cache's own folder, else `//blendcache_<file>/` beside the .blend, where a
    linked object's .blend is its library unless the cache's "Library Path" is off. ("", False) when
    the cache has no folder on disk (a local cache of a file never saved)."""
    library = ob.library if ob.library is not None and cache.use_library_path else None
    if cache.use_external:
        if not cache.filepath:
            return "", False
        return normalized_abspath(cache.filepath, library), cache.filepath.startswith("//")
    owner = normalized_abspath(library.filepath) if library is not None else bpy.data.filepath
    if not owner:
        return "", False
    return os.path.join(os.path.dirname(owner), "blendcache_" + point_cache_base(owner)), True


def point_cache_pattern(cache, ob) -> Optional["re.Pattern"]:
    """The file names of one point cache (ptcache_filepath): the cache name, or for a non-external
    cache without one the object name in hex, then `_<frame 6 digits>_<index 2 digits>.bphys`; an
    external cache with index -1 has no index."""
    if cache.name or cache.use_external:
        prefix = cache.name
    else:
        prefix = "".join("%02X" % byte for byte in ob.name.encode("utf-8"))
    if cache.index >= 0:
        suffix = "_%02d" % cache.index + _PTCACHE_EXT
    elif cache.use_external:
        suffix = _PTCACHE_EXT
    else:
        return None  # never written: Blender gives a cache its index when it first writes it
    return re.compile("^" + re.escape(prefix) + r"_-?\d+" + re.escape(suffix) + "$")


class _Collector:
    """One pass over bpy.data. The options are where the add-on and the daemon's probe differ:

    include_unused: the probe reads a saved .blend, where every datablock counts; the add-on reads
        the live session and skips datablocks without users (they are not saved in the copy).
    scanned_dirs: the probe records the folders whose listing decided the list (sequences, tiles,
        caches, also ones that do not exist yet) for the daemon's probe cache, which re-checks them.
    keep_trailing_separator: the probe has always kept a folder's trailing separator (`//frames/`).
    """

    def __init__(self, include_unused, scanned_dirs, keep_trailing_separator):
        self.include_unused = include_unused
        self.scanned_dirs = scanned_dirs
        self.keep_trailing_separator = keep_trailing_separator
        self.listings: Dict[str, List[str]] = {}

    def abspath(self, path: str, library=None) -> str:
        return normalized_abspath(path, library, self.keep_trailing_separator)

    def listdir(self, directory: str) -> List[str]:
        """Names in a folder (none when it is missing), each folder listed once."""
        directory = os.path.normpath(directory)
        if directory not in self.listings:
            if self.scanned_dirs is not None:
                self.scanned_dirs.add(directory)
            try:
                self.listings[directory] = sorted(os.listdir(directory))
            except OSError:
                self.listings[directory] = []
        return self.listings[directory]

    def used(self, datablock) -> bool:
        return self.include_unused or datablock.users > 0 or datablock.use_fake_user

    # Paths Blender lists but that need no file, or that are handled by their own rules below.

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
            if kind == "library" or self.used(datablock):
                used.add(absolute)
        return kinds, seen - used

    def not_read(self) -> Set[str]:
        """Paths in blend_paths() that a render does not read as they are listed: a text block's file
        (its text is saved in the .blend), a brush's icon, and what objects store for their caches
        (cache folders, stored point cache paths, baked or not), which the cache rules handle."""
        paths = set()
        for text in getattr(bpy.data, "texts", ()):
            paths.add(self.abspath(text.filepath, text.library))
        for brush in getattr(bpy.data, "brushes", ()):
            paths.add(self.abspath(getattr(brush, "icon_filepath", ""), brush.library))
        for ob in bpy.data.objects:
            for modifier in ob.modifiers:
                domain = getattr(modifier, "domain_settings", None)
                if domain is not None:
                    paths.add(self.abspath(domain.cache_directory, ob.library))
                if modifier.type in ("OCEAN", "MESH_CACHE"):
                    paths.add(self.abspath(modifier.filepath, ob.library))
                if modifier.type == "NODES":
                    paths.add(self.abspath(getattr(modifier, "bake_directory", ""), ob.library))
                    paths.add(self.abspath(getattr(modifier, "simulation_bake_directory", ""), ob.library))
                for bake in getattr(modifier, "bakes", ()):
                    paths.add(self.abspath(bake.directory, ob.library))
            for cache in _point_caches(ob, every=True):
                paths.add(self.abspath(cache.filepath, ob.library))
                # 5.x lists the folder a cache is read from.
                paths.add(point_cache_folder(cache, ob)[0])
        return {os.path.normpath(path) for path in paths if path}

    @staticmethod
    def blender_assets() -> str:
        """Blender's bundled asset library (brushes and the like that 4.3+ name in blend_paths()
        though a render reads none of them; every Blender brings its own)."""
        try:
            folder = bpy.utils.system_resource("DATAFILES", path="assets")
        except (TypeError, ValueError):
            return ""
        return os.path.normpath(folder) if folder else ""

    # Files one path stands for.

    def sequence_files(self, path: str, rule: str) -> List[str]:
        """Every frame of a numbered sequence on disk (render_0001_beauty.png gives every
        render_####_beauty.png), or the path itself when there is none."""
        directory, name = os.path.split(path)
        parts = sequence_parts(name, rule)
        if parts is None:
            return [path]
        pattern = sequence_frame_pattern(*parts)
        files = [os.path.join(directory, entry) for entry in self.listdir(directory) if pattern.match(entry)]
        return files or [path]

    def tile_files(self, path: str, defined_tiles: List[int]) -> List[str]:
        """A UDIM (<UDIM>, 1001…) or UV-tile (<UVTILE>, u1_v1…) set: the tiles the image defines, which
        are the ones Blender loads (a defined tile that is not on disk is missing; a file on disk that
        is no tile of the image is never read)."""
        files = set()
        for number in defined_tiles:
            u, v = (number - 1001) % 10 + 1, (number - 1001) // 10 + 1
            files.add(path.replace("<UDIM>", str(number)).replace("<UVTILE>", "u%d_v%d" % (u, v)))
        if files:
            self.listdir(os.path.dirname(path))  # a tile added on disk may be defined on reload
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
                expanded[path] = self.sequence_files(path, LAST_DIGITS)
        for clip in bpy.data.movieclips:
            if clip.filepath and clip.source == "SEQUENCE":
                path = self.abspath(clip.filepath, clip.library)
                expanded[path] = self.sequence_files(path, LAST_DIGITS)
        for collection in (bpy.data.volumes, bpy.data.cache_files):
            for datablock in collection:
                if datablock.filepath and getattr(datablock, "is_sequence", False):
                    path = self.abspath(datablock.filepath, datablock.library)
                    expanded[path] = self.sequence_files(path, DIGITS_BEFORE_EXTENSION)
        return expanded

    # Dependencies blend_paths() does not list (or lists as something else).

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

    def objects(self) -> Iterable:
        return (ob for ob in bpy.data.objects if self.used(ob))

    def point_cache_entries(self) -> List[Tuple[str, bool, str]]:
        """Disk point caches: the cache's files in the folder Blender reads. A baked or external cache
        without a file is missing (its first frame is named); an unbaked one simulates instead."""
        entries = []
        for ob in self.objects():
            for cache in _point_caches(ob):
                if not cache.use_disk_cache and not cache.use_external:
                    continue  # kept in the .blend
                folder, relative = point_cache_folder(cache, ob)
                pattern = point_cache_pattern(cache, ob)
                if not folder:
                    continue
                names = [name for name in self.listdir(folder) if pattern and pattern.match(name)]
                for name in names:
                    entries.append((os.path.join(folder, name), relative, "cache"))
                if not names and (cache.is_baked or cache.use_external):
                    entries.append((os.path.join(folder, _first_point_cache_file(cache, ob)), relative, "cache"))
        return entries

    def modifier_entries(self) -> List[Tuple[str, bool, str]]:
        """Fluid, ocean, mesh cache and geometry-nodes bakes: what a baked modifier reads."""
        entries = []
        for ob in self.objects():
            for modifier in ob.modifiers:
                domain = getattr(modifier, "domain_settings", None)
                if modifier.type == "FLUID" and getattr(modifier, "fluid_type", "") == "DOMAIN" and domain:
                    entries += self.fluid_entries(domain, ob)
                elif modifier.type == "OCEAN":
                    entries += self.ocean_entries(modifier, ob)
                elif modifier.type == "MESH_CACHE" and modifier.filepath:
                    path = self.abspath(modifier.filepath, ob.library)
                    entries.append((path, modifier.filepath.startswith("//"), "cache"))
                elif modifier.type == "NODES":
                    entries += self.bake_entries(modifier, ob)
        return entries

    def fluid_entries(self, domain, ob) -> List[Tuple[str, bool, str]]:
        """Every file of the domain's cache folders. A domain reads what is there (a replay cache
        simulates what is not); a bake (modular or all) without files is missing."""
        if not domain.cache_directory:
            return []
        folder = normalized_abspath(domain.cache_directory, ob.library)
        relative = domain.cache_directory.startswith("//")
        self.listdir(folder)
        entries = [
            (os.path.join(folder, sub, name), relative, "cache")
            for sub in _FLUID_DIRS
            for name in self.listdir(os.path.join(folder, sub))
            if not name.startswith(".") and os.path.isfile(os.path.join(folder, sub, name))
        ]
        baked = getattr(domain, "has_cache_baked_any", False) and domain.cache_type != "REPLAY"
        if not entries and baked:
            entries.append((folder + os.sep, relative, "cache"))
        return entries

    def ocean_entries(self, modifier, ob) -> List[Tuple[str, bool, str]]:
        """A baked ocean reads `<map>_<frame>.exr` for its frames (disp always; foam, normal and spray
        when they were baked). Unbaked, it simulates and reads nothing."""
        if not modifier.is_cached or not modifier.filepath:
            return []
        folder = normalized_abspath(modifier.filepath, ob.library)
        relative = modifier.filepath.startswith("//")
        names = set(self.listdir(folder))
        entries = []
        for frame in range(modifier.frame_start, modifier.frame_end + 1):
            for index, kind in enumerate(_OCEAN_MAPS):
                name = "%s_%04d.exr" % (kind, frame)
                if name in names or index == 0:  # a displacement map that is not there is missing
                    entries.append((os.path.join(folder, name), relative, "cache"))
        return entries

    def bake_entries(self, modifier, ob) -> List[Tuple[str, bool, str]]:
        """Geometry-nodes bakes on disk: `<bake folder>/<bake id>/meta|blobs` (4.1+), or a bake's own
        folder; 3.6 and 4.0 keep simulation bakes in one folder (meta/, bdata/ or blobs/). A bake
        packed into the .blend needs no file."""
        entries = []
        stored = getattr(modifier, "simulation_bake_directory", "")
        if stored:
            folder = normalized_abspath(stored, ob.library)
            for sub in ("meta", "bdata", "blobs"):
                for name in self.listdir(os.path.join(folder, sub)):
                    path = os.path.join(folder, sub, name)
                    if not name.startswith(".") and os.path.isfile(path):
                        entries.append((path, stored.startswith("//"), "cache"))
        for bake in getattr(modifier, "bakes", ()):
            target = getattr(bake, "bake_target", "INHERIT")
            if target == "INHERIT":
                target = getattr(modifier, "bake_target", "DISK")
            if target == "PACKED":
                continue
            if bake.use_custom_path:
                stored = bake.directory
                folder = normalized_abspath(bake.directory, ob.library)
            else:
                stored = getattr(modifier, "bake_directory", "")
                folder = normalized_abspath(stored, ob.library)
                folder = os.path.join(folder, str(bake.bake_id)) if folder else ""
            if not folder:
                continue
            for sub in ("meta", "blobs"):
                for name in self.listdir(os.path.join(folder, sub)):
                    path = os.path.join(folder, sub, name)
                    if not name.startswith(".") and os.path.isfile(path):
                        entries.append((path, stored.startswith("//"), "cache"))
        return entries

    def cache_layer_entries(self) -> List[Tuple[str, bool, str]]:
        """Alembic layers (3.0+) override a cache file's data; blend_paths() does not list them."""
        entries = []
        for cache_file in bpy.data.cache_files:
            if not self.used(cache_file):
                continue
            for layer in getattr(cache_file, "layers", ()):
                if layer.filepath:
                    path = self.abspath(layer.filepath, cache_file.library)
                    entries.append((path, layer.filepath.startswith("//"), "cache"))
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
        skipped = self.not_read() - {os.path.normpath(path) for path in kinds}
        assets = self.blender_assets()
        expanded = self.expanded_files()
        stored = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
        resolved = bpy.utils.blend_paths(absolute=True, packed=False, local=False)
        aligned = len(stored) == len(resolved)
        found: List[Tuple[str, bool, Optional[str]]] = []
        for index, path in enumerate(resolved):
            path = _normalized(path, self.keep_trailing_separator)
            if os.path.normpath(path) in skipped or (path not in kinds and assets and _inside(path, assets)):
                continue
            # Already absolute: Blender strips `//` even when there is no folder to resolve it against.
            relative = stored[index].startswith("//") if aligned else True
            found.append((path, relative, None))
        found += self.library_entries()
        found += self.point_cache_entries()
        found += self.modifier_entries()
        found += self.cache_layer_entries()
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


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _first_point_cache_file(cache, ob) -> str:
    """The name a baked cache's first frame has (what is reported missing when none is there)."""
    if cache.name or cache.use_external:
        prefix = cache.name
    else:
        prefix = "".join("%02X" % byte for byte in ob.name.encode("utf-8"))
    index = "_%02d" % cache.index if cache.index >= 0 else ""
    return "%s_%06d%s%s" % (prefix, cache.frame_start, index, _PTCACHE_EXT)


def _datablocks() -> Iterable[Tuple[object, str]]:
    for attribute, kind in _ID_COLLECTIONS:
        for datablock in getattr(bpy.data, attribute, ()):
            yield datablock, kind


def _point_caches(ob, every: bool = False) -> list:
    """The point caches of an object (cloth, soft body, particles incl. hair dynamics, dynamic paint):
    the active one of each owner, which Blender reads, or with `every` all of each owner's list."""
    owners = []
    for modifier in ob.modifiers:
        for owner in (modifier, getattr(modifier, "settings", None)):
            cache = getattr(owner, "point_cache", None) if owner is not None else None
            if cache is not None:
                owners.append(cache)
        canvas = getattr(modifier, "canvas_settings", None)
        if canvas is not None:
            owners.extend(surface.point_cache for surface in canvas.canvas_surfaces)
    owners.extend(system.point_cache for system in ob.particle_systems)
    if not every:
        return owners
    return [cache for owner in owners for cache in owner.point_caches]


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
