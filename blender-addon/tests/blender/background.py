"""`blender -b` tests of the add-on, one scenario per run (ARGS["scenario"]).

Timers do not run in background mode, so these scenarios drive the add-on's timer callback by
hand (support.pump); the GUI test covers the real timer loop.
"""

import json
import os
import signal
import sys
import threading
import time

import addon_utils
import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()
JOB_FIELDS = (
    "job_id", "state", "progress", "frames_done", "frames_total", "message",
    "name", "eta", "output", "last_frame",
)


def live():
    return bpy.context.window_manager.skyfarm


def operator_error(operator):
    """The message Blender raises when an operator is disabled by its poll or reports an error."""
    try:
        operator()
    except RuntimeError as error:
        return str(error)
    raise AssertionError("the operator ran although it should have been disabled")


def connection_threads():
    return [thread for thread in threading.enumerate() if thread.name == "skyfarm-daemon-connection" and thread.is_alive()]


def wait_connected():
    from skyfarm import sync

    support.pump(30, lambda: live().connection_state == "connected", "the daemon connection")
    support.pump(15, lambda: sync.session.local.available, "the local backend")


def wait_for_job_end(job_id, seconds):
    from skyfarm import sync

    support.pump(
        seconds,
        lambda: (sync.job_view(job_id) or {}).get("state") in ("done", "failed", "canceled"),
        f"job {job_id} to end",
    )
    return next(item for item in live().jobs if item.job_id == job_id)


def submit_and_get_job_id():
    from skyfarm import sync

    before = sync.session.jobs.ids()
    errors_before = len([level for level, _ in sync.reported if level == "ERROR"])
    result = bpy.ops.skyfarm.render()
    check(result == {"FINISHED"}, f"render returned {result}")

    def refused():
        errors = [text for level, text in sync.reported if level == "ERROR"]
        return errors[errors_before:]

    # A refusal is reported at once: fail with it rather than wait out the timeout.
    support.pump(90, lambda: sync.session.jobs.ids() - before or refused(), "the daemon to accept the job")
    check(not refused(), f"the daemon refused the job: {refused()}")
    (job_id,) = sync.session.jobs.ids() - before
    return job_id


def png_size(path):
    image = bpy.data.images.load(path, check_existing=False)
    size = tuple(image.size)
    bpy.data.images.remove(image)
    return size


# ----- scenarios --------------------------------------------------------------------------------


def scenario_register():
    """Register and unregister twice; properties, preferences, operators and panels exist only while
    enabled. A Blender older than bl_info["blender"] is refused with a clear message."""
    for round_number in (1, 2):
        support.enable_addon(ARGS)
        from skyfarm import sync

        scene = bpy.context.scene
        settings = scene.skyfarm
        check(settings.backend == "LOCAL" and settings.frame_mode == "SCENE", "scene defaults")
        check(settings.chunk_size == 10 and settings.output_folder == "", "chunk/output defaults")
        check(settings.aws_device == "CPU" and settings.aws_market == "SPOT", "AWS defaults")
        for name in ("aws_blender_version", "aws_notify_email", "frame_spec"):
            check(name in settings.bl_rna.properties, f"Scene.skyfarm.{name} missing")
        prefs = bpy.context.preferences.addons["skyfarm"].preferences
        check(prefs.skyfarm_command == "skyfarm", f"default command {prefs.skyfarm_command!r}")
        job_properties = live().bl_rna.properties["jobs"].fixed_type.properties
        for field in JOB_FIELDS:
            check(field in job_properties, f"window_manager.skyfarm.jobs items lack {field}")
        for operator in ("render", "cancel", "open_output", "show_last_frame", "start_daemon", "reconnect"):
            check(hasattr(bpy.types, f"SKYFARM_OT_{operator}"), f"operator skyfarm.{operator} not registered")
        check("job_id" in bpy.ops.skyfarm.cancel.get_rna_type().properties, "cancel has no job_id")
        for panel in ("SKYFARM_PT_submit", "SKYFARM_PT_submit_aws", "SKYFARM_PT_submit_files", "SKYFARM_PT_jobs"):
            check(hasattr(bpy.types, panel), f"panel {panel} not registered")
            check(getattr(bpy.types, panel).bl_context == "output", f"{panel} is not in the Output tab")
        check(bpy.app.timers.is_registered(sync.tick), "the drain timer is not registered")
        check(len(connection_threads()) == 1, f"expected one network thread, found {connection_threads()}")

        # No daemon in this SKYFARM_HOME: a clear state, and Render says why it is disabled.
        support.pump(10, lambda: live().connection_state == "not_running", "the not-running state")
        message = operator_error(bpy.ops.skyfarm.render)
        check("not running" in message, f"render poll message: {message}")
        check("daemon.json" in live().connection_detail, f"detail: {live().connection_detail}")

        addon_utils.disable("skyfarm", default_set=True, handle_error=support._raise)
        check(not hasattr(bpy.types.Scene, "skyfarm"), "Scene.skyfarm left behind")
        check(not hasattr(bpy.types.WindowManager, "skyfarm"), "WindowManager.skyfarm left behind")
        for leftover in ("SKYFARM_PT_submit", "SKYFARM_PT_jobs", "SKYFARM_OT_render", "SkyfarmPreferences"):
            check(not hasattr(bpy.types, leftover), f"{leftover} still registered")
        check(not bpy.app.timers.is_registered(sync.tick), "the drain timer is still registered")
        check(not connection_threads(), "the network thread is still running")
        check(sync.session is None, "the session was not dropped")
        log(f"round {round_number}: registered and unregistered cleanly")

    # An older Blender is refused with a clear message, before anything is registered.
    import types

    import skyfarm

    real_bpy = skyfarm.bpy
    skyfarm.bpy = types.SimpleNamespace(app=types.SimpleNamespace(version=(3, 3, 1), version_string="3.3.1"))
    try:
        skyfarm.register()
        message = None
    except RuntimeError as error:
        message = str(error)
    finally:
        skyfarm.bpy = real_bpy
    check(message == "skyfarm needs Blender 3.4 or newer; this is Blender 3.3.1", f"an old Blender got: {message!r}")
    check(not hasattr(bpy.types.Scene, "skyfarm"), "Scene.skyfarm was registered on a refused Blender")


def scenario_submit():
    """Submit from a script: unsaved changes, custom frames, dependency list, frames on disk."""
    support.enable_addon(ARGS)
    from skyfarm import dependencies, sync

    wait_connected()
    blend = bpy.data.filepath
    check(blend == ARGS["blendFile"], f"opened {blend!r}")
    stat_before = os.stat(blend)

    found = {os.path.normpath(d.path): d for d in dependencies.collect(use_cache=False)}
    for expected in ARGS["expectedDependencies"]:
        path = os.path.normpath(expected["path"])
        check(path in found, f"dependency {path} not found in {sorted(found)}")
        check(found[path].kind == expected["kind"], f"{path}: kind {found[path].kind} != {expected['kind']}")
        check(found[path].missing == expected["missing"], f"{path}: missing={found[path].missing}")
    log(f"dependencies: {[(d.kind, d.path, d.missing) for d in found.values()]}")
    # The wrapper compares this list with what the daemon's own probe finds in the same file.
    with open(ARGS["dependenciesOut"], "w", encoding="utf-8") as handle:
        json.dump([d.to_message() for d in found.values()], handle)

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = ARGS["resolution"]  # unsaved on purpose
    scene.skyfarm.frame_mode = "CUSTOM"
    scene.skyfarm.frame_spec = ARGS["frameSpec"]
    scene.skyfarm.chunk_size = 1
    scene.skyfarm.output_folder = ARGS["outputDir"]

    job_id = submit_and_get_job_id()
    check(bpy.data.filepath == blend, "submitting changed the open file's path")
    stat_after = os.stat(blend)
    check(stat_after.st_mtime_ns == stat_before.st_mtime_ns and stat_after.st_size == stat_before.st_size, "the user's .blend was rewritten")
    job = sync.job_view(job_id)
    check(job["frames"] == ARGS["frameSpec"], f"frames {job['frames']}")
    check(job["framesTotal"] == len(ARGS["expectedFrames"]), f"framesTotal {job['framesTotal']}")
    check(job["blendFile"] != blend, "the daemon got the user's file instead of a copy")

    def warnings():
        return [text for level, text in sync.reported if level == "WARNING" and "missing" in text]

    # The job can show up (job.update) a tick before the daemon's reply, whose report names the files.
    support.pump(30, warnings, "the submit report")
    for missing in ARGS["missingNames"]:
        check(any(missing in text for text in warnings()), f"no warning names the missing {missing}: {list(sync.reported)}")

    item = wait_for_job_end(job_id, ARGS["renderTimeout"])
    check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")
    check(item.frames_done == item.frames_total == len(ARGS["expectedFrames"]), f"{item.frames_done}/{item.frames_total}")
    on_disk = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    check(on_disk == ARGS["expectedFrames"], f"frames on disk {on_disk}")
    size = png_size(os.path.join(ARGS["outputDir"], on_disk[0]))
    check(size == tuple(ARGS["resolution"]), f"rendered {size}: the unsaved resolution change was not rendered")
    check(not os.path.exists(job["blendFile"]), "the daemon did not remove the temporary copy")
    check(any(level == "INFO" and "finished" in text for level, text in sync.reported), "no finished report")


def scenario_cancel():
    """Cancel from Blender stops a running job and reports it."""
    support.enable_addon(ARGS)
    from skyfarm import sync

    wait_connected()
    scene = bpy.context.scene
    scene.skyfarm.output_folder = ARGS["outputDir"]
    scene.skyfarm.chunk_size = 1
    job_id = submit_and_get_job_id()
    support.pump(60, lambda: sync.job_view(job_id)["state"] == "rendering", "rendering to start")
    check(bpy.ops.skyfarm.cancel(job_id=job_id) == {"FINISHED"}, "cancel did not run")
    item = wait_for_job_end(job_id, 60)
    check(item.state == "canceled", f"job ended {item.state}")
    check(item.frames_done < item.frames_total, "the job finished before the cancel took effect; use more frames")
    check(any("canceled" in text for _, text in sync.reported), f"no cancel report: {list(sync.reported)}")
    message = operator_error(lambda: bpy.ops.skyfarm.cancel(job_id="j_unknown"))
    check("no job 'j_unknown'" in message, f"cancel of an unknown job: {message}")
    check(bpy.ops.skyfarm.cancel(job_id=job_id) == {"CANCELLED"}, "canceling a finished job claimed success")


def scenario_bad_inputs():
    """Each thing Render cannot do yet is explained by the poll message."""
    support.enable_addon(ARGS)
    wait_connected()
    scene = bpy.context.scene
    settings = scene.skyfarm
    cases = []

    camera = scene.camera
    scene.camera = None
    cases.append(("no camera", operator_error(bpy.ops.skyfarm.render), "has no camera"))
    scene.camera = camera

    settings.frame_mode = "CUSTOM"
    check(settings.frame_spec == f"{scene.frame_start}-{scene.frame_end}", f"custom spec starts from the scene range, got {settings.frame_spec!r}")
    for spec, expected in (("1-", "is not a frame or range"), ("10-1", "ends before it starts"), ("", "no frames")):
        settings.frame_spec = spec
        cases.append((f"frame spec {spec!r}", operator_error(bpy.ops.skyfarm.render), expected))
    settings.frame_mode = "SCENE"

    settings.backend = "AWS"
    cases.append(("AWS without a stack", operator_error(bpy.ops.skyfarm.render), "AWS is not available"))
    settings.backend = "LOCAL"

    image_settings = scene.render.image_settings
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "VIDEO"  # 5.x lists FFMPEG only among video formats
    image_settings.file_format = "FFMPEG"
    cases.append(("movie output", operator_error(bpy.ops.skyfarm.render), "movie"))
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "IMAGE"
    image_settings.file_format = "PNG"

    settings.output_folder = "relative/folder"
    if not bpy.data.filepath:
        cases.append(("relative output, unsaved file", operator_error(bpy.ops.skyfarm.render), "relative"))
    settings.output_folder = ""

    for name, message, expected in cases:
        log(f"{name}: {message}")
        check(expected in message, f"{name}: expected {expected!r} in {message!r}")
    check(bpy.ops.skyfarm.render.poll(), "Render stays disabled after every problem was fixed")


def scenario_untitled():
    """A file that was never saved renders too; its relative output path is refused first."""
    support.enable_addon(ARGS)
    from skyfarm import sync

    check(bpy.data.filepath == "", "this scenario needs an untitled file")
    wait_connected()
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 48, 27, 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.filepath = "//render/frame_####"
    message = operator_error(bpy.ops.skyfarm.render)
    check("not saved yet" in message, f"relative output on an untitled file: {message}")
    scene.skyfarm.output_folder = ARGS["outputDir"]
    job_id = submit_and_get_job_id()
    check(sync.job_view(job_id)["name"].startswith("untitled"), f"name {sync.job_view(job_id)['name']}")
    item = wait_for_job_end(job_id, ARGS["renderTimeout"])
    check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")
    on_disk = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    check(on_disk == ["frame_0001.png", "frame_0002.png"], f"frames on disk {on_disk}")
    check(bpy.data.filepath == "", "submitting gave the untitled file a path")


def scenario_failure():
    """A job that fails shows the daemon's own message."""
    support.enable_addon(ARGS)
    from skyfarm import sync

    wait_connected()
    bpy.context.scene.skyfarm.output_folder = ARGS["outputDir"]
    job_id = submit_and_get_job_id()
    item = wait_for_job_end(job_id, ARGS["renderTimeout"])
    check(item.state == "failed", f"job ended {item.state}, expected failed")
    check(item.error_message, "the failed job carries no error message")
    errors = [text for level, text in sync.reported if level == "ERROR"]
    check(any(item.error_message[:60] in text for text in errors), f"no report with the daemon's message: {errors}")
    log(f"failure report: {errors[-1]}")


def _daemon_pid():
    with open(os.path.join(os.environ["SKYFARM_HOME"], "daemon.json"), encoding="utf-8") as handle:
        return json.load(handle)["pid"]


def _start_daemon_from_blender():
    from skyfarm import operators

    check(bpy.ops.skyfarm.start_daemon() == {"FINISHED"}, "Start Daemon did not run")

    def started():
        if operators._starting:
            operators._poll_start_processes()  # Its timer does not fire in background mode.
        return live().connection_state == "connected" and not operators._starting

    support.pump(60, started, "the daemon started from Blender and `daemon start` reported back")
    check(any("skyfarm daemon started" in text for _, text in __import__("skyfarm").sync.reported), "no started report")


def scenario_daemon_lifecycle():
    """No daemon: clear message and Start button; daemon stops mid-job: disconnected, then the true state."""
    support.enable_addon(ARGS)
    from skyfarm import sync

    support.pump(10, lambda: live().connection_state == "not_running", "not running")
    message = operator_error(bpy.ops.skyfarm.render)
    check("not running" in message, f"poll message without a daemon: {message}")
    started = time.monotonic()
    _start_daemon_from_blender()
    log(f"daemon started from Blender in {time.monotonic() - started:.1f} s: {live().connection_detail}")
    support.pump(15, lambda: sync.session.local.available, "the local backend")
    # Its jobs render in this Blender (the harness leaves SKYFARM_BLENDER unset, as users do).
    with open(f"/proc/{_daemon_pid()}/environ", "rb") as handle:
        environ = dict(entry.split(b"=", 1) for entry in handle.read().split(b"\0") if b"=" in entry)
    check(
        environ.get(b"SKYFARM_BLENDER") == os.fsencode(bpy.app.binary_path),
        f"the daemon renders with {environ.get(b'SKYFARM_BLENDER')!r}, not this Blender ({bpy.app.binary_path})",
    )

    scene = bpy.context.scene
    scene.skyfarm.output_folder = ARGS["outputDir"]
    scene.skyfarm.chunk_size = 1
    job_id = submit_and_get_job_id()
    support.pump(90, lambda: sync.job_view(job_id)["framesDone"] >= 1, "the first frame")

    pid = _daemon_pid()
    os.kill(pid, signal.SIGTERM)
    log(f"stopped daemon {pid} mid-job at {sync.job_view(job_id)['framesDone']} frames")
    support.pump(30, lambda: sync.session.status.lost and live().connection_state != "connected", "the disconnect")
    message = operator_error(bpy.ops.skyfarm.render)
    check("Disconnected" in message, f"poll message while disconnected: {message}")

    _start_daemon_from_blender()
    check(_daemon_pid() != pid, "a new daemon should be running")
    item = wait_for_job_end(job_id, ARGS["renderTimeout"])
    check(item.state == "done", f"after the restart the job ended {item.state}: {item.error_message or item.message}")
    check(item.frames_done == item.frames_total == ARGS["frames"], f"{item.frames_done}/{item.frames_total}")
    on_disk = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    check(len(on_disk) == ARGS["frames"], f"frames on disk {on_disk}")


SCENARIOS = {
    "register": scenario_register,
    "submit": scenario_submit,
    "cancel": scenario_cancel,
    "bad-inputs": scenario_bad_inputs,
    "untitled": scenario_untitled,
    "failure": scenario_failure,
    "daemon-lifecycle": scenario_daemon_lifecycle,
}

support.run_in_background(SCENARIOS[ARGS["scenario"]])
