"""Turns what Blender knows about the scene into a render.submit request.

The operator gathers plain facts from bpy (SceneFacts, SubmitSettings); everything decided from
them lives here without bpy: which frames, which output folder, why Render is not possible yet,
where the temporary copy goes, and the exact params the daemon gets.
"""

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from . import framespec


@dataclass(frozen=True)
class SceneFacts:
    blend_path: str  # the user's .blend, "" while the file was never saved
    scene_name: str
    frame_start: int
    frame_end: int
    frame_step: int
    render_filepath: str  # scene.render.filepath as stored, e.g. //render/frame_####
    has_camera: bool
    is_movie: bool = False


@dataclass(frozen=True)
class SubmitSettings:
    backend: str  # local or aws
    frame_mode: str  # SCENE or CUSTOM
    frame_spec: str
    chunk_size: int
    output_folder: str  # "" uses the scene's output path
    aws_device: str = "cpu"
    aws_market: str = "spot"
    aws_blender_version: str = ""
    aws_notify_email: str = ""
    aws_stack_name: str = ""
    # Budget in USD (0: none): the daemon stops the job when its spend reaches it.
    aws_max_cost: float = 0.0
    # Split each frame across this many machines (render.submit `split`; AWS only, 1 = whole frames).
    aws_split: int = 1
    # Refuse to submit while any file the scene needs is missing (render.submit `strict`).
    strict: bool = False


class SubmitProblem(ValueError):
    """Something the user has to fix before Render can work; the text says what."""


def frames(facts: SceneFacts, settings: SubmitSettings) -> str:
    if settings.frame_mode == "CUSTOM":
        try:
            return framespec.parse(settings.frame_spec).text
        except framespec.FrameSpecError as error:
            raise SubmitProblem(f"Frames: {error}") from None
    try:
        return framespec.scene_range(facts.frame_start, facts.frame_end, facts.frame_step)
    except framespec.FrameSpecError as error:
        raise SubmitProblem(f"Frames: {error}") from None


def _resolve_blender_path(raw: str, blend_path: str, what: str) -> str:
    """Resolves a Blender path (// means the .blend's folder) the way the daemon does."""
    path = raw
    if path.startswith("//"):
        if not blend_path:
            raise SubmitProblem(
                f"The {what} ({raw}) is relative to the .blend file, which is not saved yet: "
                "save the file or choose an absolute output folder"
            )
        path = os.path.join(os.path.dirname(blend_path), path[2:])
    elif not os.path.isabs(path):
        if not blend_path:
            raise SubmitProblem(f"The {what} ({raw}) is relative: choose an absolute output folder")
        path = os.path.join(os.path.dirname(blend_path), path)
    return path


def output_folder(facts: SceneFacts, settings: SubmitSettings) -> str:
    """The folder the frames land in: the chosen folder, else the folder of the scene's output path."""
    if settings.output_folder.strip():
        path = _resolve_blender_path(settings.output_folder.strip(), facts.blend_path, "output folder")
        return os.path.normpath(path)
    path = _resolve_blender_path(facts.render_filepath or "//", facts.blend_path, "scene's output path")
    if path.endswith(("/", "\\")):
        return os.path.normpath(path.rstrip("/\\") or "/")
    return os.path.normpath(os.path.dirname(path))


def blocking_problem(facts: SceneFacts, settings: SubmitSettings) -> Optional[str]:
    """Why this scene cannot be submitted as configured, or None. Shown by the Render button's poll."""
    if not facts.has_camera:
        return f"Scene \"{facts.scene_name}\" has no camera: add one or set Scene > Camera"
    if facts.is_movie:
        return "The scene writes a movie file: choose an image format (PNG, EXR) in Output > File Format"
    try:
        frames(facts, settings)
        output_folder(facts, settings)
    except SubmitProblem as problem:
        return str(problem)
    return None


MISSING_LISTED = 3


def display_path(path: str, blend_path: str) -> str:
    """A dependency's path as the artist reads it: relative to the .blend's folder when near it."""
    if not blend_path:
        return path
    try:
        relative = os.path.relpath(path, os.path.dirname(blend_path))
    except ValueError:  # another drive on Windows
        return path
    ups = 0
    for part in relative.replace("\\", "/").split("/"):
        if part != "..":
            break
        ups += 1
    return relative if ups <= 2 else path


def missing_summary(
    missing_paths: List[str], blend_path: str, limit: int = MISSING_LISTED, total: Optional[int] = None
) -> str:
    """"2 files missing: textures/wood.png, textures/metal.png" (the first few, then "…").

    total counts them all when missing_paths holds only the first ones (the daemon's missingCount).
    """
    count = max(total or 0, len(missing_paths))
    shown = [display_path(path, blend_path) for path in missing_paths[:limit]]
    if count > len(shown):
        shown.append("…")
    return f"{count} file{'s' if count != 1 else ''} missing: {', '.join(shown)}"


def strict_problem(missing_paths: List[str], blend_path: str) -> Optional[str]:
    """Why Strict refuses to submit, or None when nothing is missing."""
    if not missing_paths:
        return None
    return (
        f"Strict: {missing_summary(missing_paths, blend_path)}. "
        "Find them (File > External Data > Find Missing Files) or turn Strict off"
    )


def job_name(facts: SceneFacts) -> str:
    stem = os.path.splitext(os.path.basename(facts.blend_path))[0] if facts.blend_path else "untitled"
    return f"{stem} · {facts.scene_name}"


def submissions_root() -> str:
    """Where temporary copies wait for the daemon. Not Blender's temp dir: that one is removed on quit."""
    return os.path.join(tempfile.gettempdir(), f"skyfarm-submissions-{os.getuid() if hasattr(os, 'getuid') else 'user'}")


def copy_path(facts: SceneFacts, root: Optional[str] = None) -> str:
    """A fresh path for the saved copy, keeping the user's file name (the daemon names the job after it)."""
    root = root or submissions_root()
    os.makedirs(root, mode=0o700, exist_ok=True)
    folder = os.path.join(root, uuid.uuid4().hex)
    os.mkdir(folder, 0o700)
    name = os.path.basename(facts.blend_path) if facts.blend_path else "untitled.blend"
    return os.path.join(folder, name)


def discard_finished_copy(job: Dict[str, Any], root: Optional[str] = None) -> bool:
    """Removes the temporary copy of a job that ended before its upload took it (canceled or failed).

    The daemon deletes a copy once it is in the store; a job stopped during its upload leaves it
    behind, and a scene copy can be hundreds of MB. Only our own copies (under the submissions
    folder) of finished jobs are touched: nothing reads them any more.
    """
    if job.get("state") not in ("done", "failed", "canceled"):
        return False
    path = job.get("blendFile") or ""
    root = os.path.realpath(root or submissions_root())
    folder = os.path.dirname(os.path.realpath(path)) if path else ""
    if not folder or os.path.dirname(folder) != root:
        return False
    try:
        os.remove(os.path.join(folder, os.path.basename(path)))
    except OSError:
        return False
    try:
        os.rmdir(folder)
    except OSError:
        pass
    return True


def remove_empty_copy_folders(root: Optional[str] = None) -> int:
    """The daemon deletes finished copies but not their folders; tidy the empty ones."""
    root = root or submissions_root()
    removed = 0
    try:
        entries = os.listdir(root)
    except OSError:
        return 0
    for entry in entries:
        try:
            os.rmdir(os.path.join(root, entry))  # Only succeeds when empty.
            removed += 1
        except OSError:
            pass
    return removed


def build_params(
    facts: SceneFacts, settings: SubmitSettings, blend_copy: str, dependencies: List[Dict[str, Any]]
) -> Dict[str, Any]:
    """The render.submit params. Raises SubmitProblem when the scene cannot be submitted."""
    problem = blocking_problem(facts, settings)
    if problem:
        raise SubmitProblem(problem)
    if settings.strict:
        problem = strict_problem([d["path"] for d in dependencies if d.get("missing")], facts.blend_path)
        if problem:
            raise SubmitProblem(problem)
    params: Dict[str, Any] = {
        "blendFile": blend_copy,
        "temporaryBlend": True,
        "name": job_name(facts),
        "scene": facts.scene_name,
        "frames": frames(facts, settings),
        "chunkSize": settings.chunk_size,
        "backend": settings.backend,
        "output": output_folder(facts, settings),
        "dependencies": dependencies,
    }
    if settings.strict:
        # The daemon checks again (MISSING_DEPENDENCIES): the list may be stale by the time it reads it.
        params["strict"] = True
    if facts.blend_path:
        # The copy keeps the user's relative paths (saved without remapping), so they still hang
        # off the user's folder; the daemon places the scene in the project tree by this path.
        params["sourceBlendFile"] = facts.blend_path
        params["projectRoot"] = os.path.dirname(facts.blend_path)
    else:
        params["projectRoot"] = os.path.dirname(blend_copy)
    if settings.backend == "aws":
        aws: Dict[str, Any] = {"device": settings.aws_device, "market": settings.aws_market}
        if settings.aws_blender_version.strip():
            aws["blenderVersion"] = settings.aws_blender_version.strip()
        if settings.aws_notify_email.strip():
            aws["notifyEmail"] = settings.aws_notify_email.strip()
        if settings.aws_stack_name.strip():
            aws["stackName"] = settings.aws_stack_name.strip()
        if round(float(settings.aws_max_cost), 2) >= 0.01:
            aws["maxCostUsd"] = round(float(settings.aws_max_cost), 2)
        params["aws"] = aws
        if settings.aws_split > 1:
            params["split"] = settings.aws_split
    return params
