"""The main-thread half of the daemon link: drains the session from a bpy.app.timers callback.

Each tick applies queued network messages for about 2 ms, then mirrors whatever changed into
WindowManager.skyfarm, reports finished jobs and errors, and tags the Properties editors for
redraw. It comes back quickly while messages are waiting and idles at 10 Hz otherwise.
"""

import collections
import contextlib
import time

import bpy
from bpy.app.handlers import persistent

from . import connection, farm_props, paths, session as session_module

CLIENT_NAME = "blender-addon"
TICK_BUDGET_SECONDS = 0.002
BUSY_INTERVAL = 0.01
IDLE_INTERVAL = 0.1

session = None  # DaemonSession while the add-on is enabled
# The last reports, newest last, for scripts and tests to read back.
reported = collections.deque(maxlen=50)
_mirrored = {"revision": None, "index": {}, "jobs": {}, "uploads": {}, "select": None}
# Longest tick so far, reported by the GUI test (and handy when profiling).
slowest_tick_seconds = 0.0


def state_dir():
    return paths.state_dir()


def start(addon_version):
    global session
    if session is not None:
        return
    from . import preferences

    def stack_name():
        prefs = preferences.addon_preferences()
        return prefs.aws_stack_name.strip() if prefs else ""

    link = connection.DaemonConnection(CLIENT_NAME, addon_version, state_dir=paths.state_dir)
    session = session_module.DaemonSession(link, stack_name=stack_name, stack_target=preferences.stack_target)
    session.start()
    _mirrored.update(revision=None, index={}, jobs={}, uploads={}, select=None)
    bpy.app.timers.register(tick, first_interval=0.0, persistent=True)
    if _on_load_post not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load_post)


def stop():
    global session
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if session is not None:
        session.stop()
        session = None


def tick():
    """bpy.app.timers callback; returns the delay until the next call."""
    global slowest_tick_seconds
    if session is None:
        return None
    started = time.perf_counter()
    more = session.tick(TICK_BUDGET_SECONDS)
    more = mirror_into_blender() or more
    for notice in session.take_notices():
        notify(notice.level, notice.text)
    elapsed = time.perf_counter() - started
    slowest_tick_seconds = max(slowest_tick_seconds, elapsed)
    return BUSY_INTERVAL if more else IDLE_INTERVAL


def _window_manager():
    managers = bpy.data.window_managers
    return managers[0] if len(managers) else None


def mirror_into_blender(force=False, budget_seconds=TICK_BUDGET_SECONDS):
    """Copies the session's state into WindowManager.skyfarm, touching only what changed.

    The collection is append-only in arrival order (the list sorts newest first when drawn), so a
    new job costs one add() instead of a rebuild. At most budget_seconds are spent per call; returns
    True when jobs are left to write, which the next tick continues.
    """
    wm = _window_manager()
    if wm is None or session is None:
        return False
    revision = session.revision
    if revision == _mirrored["revision"] and not force:
        return False
    deadline = time.perf_counter() + budget_seconds
    live = wm.skyfarm
    status = session.status
    _assign(live, "connection_state", status.state)
    _assign(live, "connection_detail", status.detail)
    _assign(live, "daemon_version", status.daemon_version)
    _assign(live, "aws_available", session.aws.available)
    _assign(live, "aws_reason", session.aws.reason)
    farm_props.mirror(live.farm, session.farm, force)

    index = _mirrored["index"]
    if force or len(index) != len(live.jobs):
        # Another window manager (a loaded file) or a first run: adopt what is there.
        index.clear()
        index.update({item.job_id: position for position, item in enumerate(live.jobs)})
        _mirrored["jobs"] = {}
        _mirrored["uploads"] = {}
    gone = [job_id for job_id in index if job_id not in session.jobs]
    if gone:
        for position in sorted((index[job_id] for job_id in gone), reverse=True):
            live.jobs.remove(position)
        index.clear()
        index.update({item.job_id: position for position, item in enumerate(live.jobs)})
        for job_id in gone:
            _mirrored["jobs"].pop(job_id, None)
            _mirrored["uploads"].pop(job_id, None)
        live.active_job_index = min(live.active_job_index, max(0, len(live.jobs) - 1))

    unfinished = False
    mirrored = _mirrored["jobs"]
    changed = [job for job in session.jobs.snapshots() if mirrored.get(job["id"]) is not job]
    # New jobs join the list in creation order.
    changed.sort(key=lambda job: (job["id"] in index, job.get("createdAt", ""), job["id"]))
    for job in changed:
        if time.perf_counter() > deadline:
            unfinished = True
            break
        position = index.get(job["id"])
        if position is None:
            live.jobs.add()
            position = index[job["id"]] = len(live.jobs) - 1
        _write_job(live.jobs[position], job)
        mirrored[job["id"]] = job
    # Upload progress arrives several times a second per uploading job: only those fields are written.
    mirrored_uploads = _mirrored["uploads"]
    for job_id, progress in session.uploads.items():
        position = index.get(job_id)
        if position is None or mirrored_uploads.get(job_id) is progress:
            continue
        _write_upload(live.jobs[position], session_module.describe_upload(progress))
        mirrored_uploads[job_id] = progress
    if _mirrored["select"] in index:
        live.active_job_index = index[_mirrored["select"]]
        _mirrored["select"] = None
    if not unfinished:
        _mirrored["revision"] = revision
    request_redraw()
    return unfinished


def _assign(target, name, value):
    # Writing an unchanged value still sends update notifications; skip those.
    if getattr(target, name) != value:
        setattr(target, name, value)


def _write_job(item, job):
    item.job_id = job["id"]
    item.name = job["name"]
    item.state = job["state"]
    item.backend = job["backend"]
    item.progress = min(1.0, max(0.0, float(job["progress"])))
    item.frames_done = job["framesDone"]
    item.frames_total = job["framesTotal"]
    item.frames_failed = job["framesFailed"]
    item.eta = -1.0 if job["etaSeconds"] is None else float(job["etaSeconds"])
    item.message = job["message"]
    error = job.get("error") or {}
    item.error_code = error.get("code", "")
    item.error_message = error.get("message", "")
    item.output = job["output"]
    item.last_frame = job["lastFrame"] or ""
    item.frames = job["frames"]
    item.created_at = job["createdAt"]


def _write_upload(item, view):
    _assign(item, "upload_progress", view.fraction)
    _assign(item, "upload_files_done", view.files_done)
    _assign(item, "upload_files_total", view.files_total)
    _assign(item, "upload_text", view.text)
    _assign(item, "upload_short", view.short)


def select_job(job_id):
    """Makes job_id the active row of the jobs list on the next mirror (e.g. a job just submitted)."""
    _mirrored["select"] = job_id
    _mirrored["revision"] = None  # Forces the next mirror to run even if nothing else changed.


def request_redraw(all_areas=False):
    """Tags the editors that show skyfarm state; Blender redraws them on its next loop."""
    wm = _window_manager()
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if all_areas or area.type in {"PROPERTIES", "PREFERENCES"}:
                area.tag_redraw()


@contextlib.contextmanager
def operator_context(**overrides):
    """bpy.context.temp_override for running bpy.ops, with the network thread parked meanwhile.

    Blender 3.4 reads the override without the GIL while another thread holds it, which crashed
    Blender when the daemon connection was busy (see DaemonConnection.paused).
    """
    parking = session.connection.paused() if session is not None else contextlib.nullcontext()
    with parking, bpy.context.temp_override(**overrides):
        yield


def notify(level, text):
    """Reports a message in the status bar and Info log (stdout when there is no window)."""
    reported.append((level, text))
    wm = _window_manager()
    window = wm.windows[0] if wm is not None and len(wm.windows) else None
    if window is None:
        print(f"{level}: {text}", flush=True)
        return
    with operator_context(window=window):
        try:
            bpy.ops.skyfarm.report(level=level, message=text)
        except RuntimeError:
            pass  # bpy.ops raises for ERROR reports after showing them, which is all we wanted.


def job_view(job_id):
    """The session's snapshot for a job id, or None."""
    return session.jobs.get(job_id) if session is not None else None


def upload_view(job_id):
    """The job's upload (session.UploadView) or None, for the panel."""
    return session.upload_view(job_id) if session is not None else None


@persistent
def _on_load_post(_dummy):
    # A loaded file may bring its own window manager: fill it from the session again.
    _mirrored.update(revision=None, index={}, jobs={}, uploads={})
    mirror_into_blender(force=True)

