"""Every file the open scene depends on, found with Blender's own knowledge of the data.

Textures, linked libraries, movie clips, sounds, fonts, volumes, caches and scripts come from
their datablocks (so the kind is known and orphaned data that is not saved is skipped);
bpy.utils.blend_paths catches anything else, such as sequencer strips. UDIM tiles and image
sequences expand to the files on disk. The list goes into render.submit and missing files are
shown in the panel before the user submits.
"""

import glob
import os
import re
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import bpy

_TILE_TOKENS = ("<UDIM>", "<UVTILE>")
_CACHE_SECONDS = 3.0


@dataclass(frozen=True)
class Dependency:
    path: str  # absolute
    kind: str
    missing: bool

    def to_message(self) -> Dict:
        return {"path": self.path, "kind": self.kind, "missing": self.missing}


def _absolute(path: str, library=None) -> str:
    return os.path.normpath(bpy.path.abspath(path, library=library))


def _is_saved(datablock) -> bool:
    # Datablocks without users (and no fake user) are not written to the file, so not needed.
    return datablock.users > 0 or datablock.use_fake_user


def _tile_files(path: str) -> List[str]:
    pattern = path
    for token in _TILE_TOKENS:
        pattern = pattern.replace(token, "*")
    return sorted(glob.glob(glob.escape(os.path.dirname(pattern)) + os.sep + os.path.basename(pattern)))


def _sequence_files(path: str) -> List[str]:
    """All frames of an image sequence, from the one frame Blender stores."""
    directory, name = os.path.split(path)
    match = re.search(r"(\d+)(\D*)$", name)
    if not match:
        return [path]
    prefix, suffix = name[: match.start(1)], match.group(2)
    pattern = re.compile(re.escape(prefix) + r"\d+" + re.escape(suffix) + "$")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return [path]
    found = sorted(os.path.join(directory, entry) for entry in names if pattern.match(entry))
    return found or [path]


def _datablock_paths(orphans: set) -> Iterable[Tuple[str, str]]:
    """(absolute path, kind) for every file-backed datablock that is saved with the scene.

    Paths of datablocks that are not saved go into `orphans`, so the blend_paths pass skips them.
    """
    data = bpy.data
    for library in data.libraries:
        if library.packed_file is None:
            yield _absolute(library.filepath, library.parent), "library"
    for image in data.images:
        if image.source not in {"FILE", "SEQUENCE", "TILED", "MOVIE"} or image.packed_file is not None:
            continue
        if not image.filepath:
            continue
        path = _absolute(image.filepath, image.library)
        if not _is_saved(image):
            orphans.add(path)
            continue
        if image.source == "TILED" or any(token in path for token in _TILE_TOKENS):
            tiles = _tile_files(path)
            if not tiles:
                yield path, "image"
            for tile in tiles:
                yield tile, "image"
        elif image.source == "SEQUENCE":
            for frame in _sequence_files(path):
                yield frame, "image"
        else:
            yield path, "image"
    simple_kinds = (
        (data.movieclips, "movieclip"),
        (data.sounds, "sound"),
        (data.fonts, "font"),
        (data.volumes, "volume"),
        (data.cache_files, "cache"),
        (data.texts, "text"),
    )
    for collection, kind in simple_kinds:
        for datablock in collection:
            if not datablock.filepath or datablock.filepath == "<builtin>":
                continue
            if getattr(datablock, "packed_file", None) is not None or getattr(datablock, "is_in_memory", False):
                continue
            path = _absolute(datablock.filepath, datablock.library)
            if _is_saved(datablock):
                yield path, kind
            else:
                orphans.add(path)


_exists_cache: Dict[str, Tuple[float, bool]] = {}


def _exists(path: str) -> bool:
    """os.path.isfile with a short cache: the panel asks on every redraw, files may be on a slow share."""
    now = time.monotonic()
    cached = _exists_cache.get(path)
    if cached is not None and now - cached[0] < _CACHE_SECONDS:
        return cached[1]
    exists = os.path.isfile(path)
    _exists_cache[path] = (now, exists)
    return exists


def collect(use_cache: bool = True) -> List[Dependency]:
    """The scene's dependencies, each once, in a stable order."""
    if not use_cache:
        _exists_cache.clear()
    kinds: Dict[str, str] = {}
    orphans: set = set()
    for path, kind in _datablock_paths(orphans):
        kinds.setdefault(path, kind)
    # blend_paths also reports paths no datablock loop above knows about (sequencer strips, ...).
    for path in bpy.utils.blend_paths(absolute=True, packed=False, local=False):
        path = os.path.normpath(path)
        if any(token in path for token in _TILE_TOKENS):
            continue  # Tiles were expanded above.
        if path not in orphans and not os.path.isdir(path):
            kinds.setdefault(path, "file")
    return [Dependency(path=path, kind=kind, missing=not _exists(path)) for path, kind in sorted(kinds.items())]


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
