"""`blender -b` with the add-on as `skyfarm addon install` left it (test/addon-install.test.ts):
enabled at startup from the user folders, nothing set in its preferences, no skyfarm on PATH.
Start Daemon runs the CLI that installed the add-on; Render renders the scene; the frames land.
Then, as an add-on older than the daemon, it shows the version mismatch with the fix in the panel.
Timers do not run in background mode: the add-on's timer callbacks are driven by hand (support.pump).
"""

import json
import os
import shutil
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()


def live():
    return bpy.context.window_manager.skyfarm


def scenario():
    module = support.enable_addon({"installed": True})
    operators = support.addon("operators")
    preferences = support.addon("preferences")
    sync = support.addon("sync")

    prefs = preferences.addon_preferences()
    check(prefs.skyfarm_command == preferences.DEFAULT_COMMAND, f"preferences were set: {prefs.skyfarm_command!r}")
    check(shutil.which("skyfarm") is None, "skyfarm is on this Blender's PATH; the test needs it absent")
    stamp_path = os.path.join(os.path.dirname(module.__file__), "cli_command.json")
    with open(stamp_path, encoding="utf-8") as handle:
        stamp = json.load(handle)
    check(stamp["argv"] == ARGS["cliCommand"], f"cli_command.json names {stamp['argv']}, not {ARGS['cliCommand']}")
    check(preferences.start_command() == ARGS["cliCommand"], f"Start Daemon would run {preferences.start_command()}")
    log(f"Start Daemon runs {stamp['argv']}")

    support.pump(15, lambda: live().connection_state == "not_running", "the add-on to see no daemon")
    check(bpy.ops.skyfarm.start_daemon() == {"FINISHED"}, "Start Daemon did not run")

    def started():
        if operators._starting:
            operators._poll_start_processes()  # its timer does not fire in background mode
        failures = [text for level, text in sync.reported if level == "ERROR"]
        check(not failures, f"Start Daemon reported a failure: {failures}")
        return not operators._starting and live().connection_state == "connected"

    support.pump(90, started, "Start Daemon to finish and the add-on to connect")
    support.pump(15, lambda: sync.session.local.available, "the local backend")
    status = sync.session.status
    check(not status.update_hint, f"the add-on and the daemon disagree: {status.update_hint}")
    log(f"connected: {live().connection_detail}")

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 48, 27, 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.filepath = "//render/frame_####"
    scene.skyfarm.output_folder = ARGS["outputDir"]

    before = sync.session.jobs.ids()
    check(bpy.ops.skyfarm.render() == {"FINISHED"}, "Render did not run")

    def refused():
        return [text for level, text in sync.reported if level == "ERROR"]

    support.pump(90, lambda: sync.session.jobs.ids() - before or refused(), "the daemon to accept the job")
    check(not refused(), f"the daemon refused the job: {refused()}")
    (job_id,) = sync.session.jobs.ids() - before
    support.pump(
        ARGS["renderTimeout"],
        lambda: (sync.job_view(job_id) or {}).get("state") in ("done", "failed", "canceled"),
        f"job {job_id} to end",
    )
    item = next(item for item in live().jobs if item.job_id == job_id)
    check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")
    on_disk = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    check(on_disk == ["frame_0001.png", "frame_0002.png"], f"frames on disk {on_disk}")
    log(f"job {job_id} done: {on_disk}")

    # The version handshake: an add-on older than the daemon (as after upgrading the npm package)
    # connects, and the panel shows the mismatch with the command that fixes it.
    import layout_recorder

    panels = support.addon("panels")
    sync.stop()
    sync.start("0.0.1")
    support.pump(30, lambda: live().connection_state == "connected", "the reconnection as add-on 0.0.1")
    hint = sync.session.status.update_hint
    check("skyfarm addon install" in hint, f"no fix named for add-on 0.0.1 and the daemon: {hint!r}")
    drawn = layout_recorder.text_of(layout_recorder.draw_panel(panels.SKYFARM_PT_submit, bpy.context))
    check("run `skyfarm addon install`" in drawn, f"the panel does not show the fix: {drawn!r}")
    warnings = [text for level, text in sync.reported if level == "WARNING"]
    check(any("skyfarm addon install" in text for text in warnings), f"no warning shown: {warnings}")
    log(f"version mismatch shown in the panel: {hint}")


support.run_in_background(scenario)
