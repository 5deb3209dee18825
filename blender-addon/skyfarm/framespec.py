"""Frame specifications such as "1-250", "1-10,20" or "1-100x5".

The panel validates the spec while the user types, so the grammar here matches what the daemon
accepts: comma-separated items, each a frame N, a range A-B (A <= B) or a stepped range A-BxS.
No bpy here.
"""

import functools
import re
from dataclasses import dataclass
from typing import Optional, Tuple

# Blender's own upper limit for frame numbers (MAXFRAME).
MAX_FRAME = 1048574

_ITEM = re.compile(r"^(\d+)(?:\s*-\s*(\d+)(?:\s*x\s*(\d+))?)?$")
HINT = "use frames like 1-250, 1-10,20 or 1-100x5"


@dataclass(frozen=True)
class FrameSpec:
    text: str
    frames: Tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.frames)


class FrameSpecError(ValueError):
    pass


@functools.lru_cache(maxsize=64)
def parse(text: str) -> FrameSpec:
    """Parses a spec into its sorted, unique frames. Raises FrameSpecError with a user message.

    Cached because the panel calls it on every redraw.
    """
    stripped = text.strip()
    if not stripped:
        raise FrameSpecError(f"no frames given: {HINT}")
    frames = set()
    for raw_item in stripped.split(","):
        item = raw_item.strip()
        if not item:
            raise FrameSpecError(f"empty item between commas in \"{stripped}\"")
        match = _ITEM.match(item)
        if not match:
            raise FrameSpecError(f"\"{item}\" is not a frame or range: {HINT}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if last > MAX_FRAME or first > MAX_FRAME:
            raise FrameSpecError(f"\"{item}\": frames go up to {MAX_FRAME}")
        if last < first:
            raise FrameSpecError(f"\"{item}\": the range ends before it starts")
        if step < 1:
            raise FrameSpecError(f"\"{item}\": the step must be at least 1")
        frames.update(range(first, last + 1, step))
    return FrameSpec(text=stripped, frames=tuple(sorted(frames)))


def validate(text: str) -> Optional[str]:
    """Returns None when the spec is valid, else the message to show beside the field."""
    try:
        parse(text)
    except FrameSpecError as error:
        return str(error)
    return None


def scene_range(frame_start: int, frame_end: int, frame_step: int = 1) -> str:
    """The spec for a scene's own frame range, as Blender would render it with Render Animation."""
    if frame_end < frame_start:
        raise FrameSpecError(f"the scene's frame range {frame_start}-{frame_end} ends before it starts")
    if frame_start < 0:
        raise FrameSpecError("the scene's frame range starts below 0, which skyfarm cannot render")
    spec = f"{frame_start}-{frame_end}" if frame_end != frame_start else f"{frame_start}"
    if frame_step > 1 and frame_end != frame_start:
        spec += f"x{frame_step}"
    return spec
