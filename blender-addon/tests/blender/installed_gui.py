"""GUI test under Xvfb with the add-on as `skyfarm addon install` left it (test/addon-install.test.ts):
enabled at startup from the user folders, nothing set in its preferences, no skyfarm on PATH.
In the maximised Properties editor's Output tab: Start Daemon (it runs the CLI that installed the
add-on), then Render; bpy.app.timers follow the job to done; the frames are on disk and the finished
job's panel is photographed (checked by screen.ts).
"""

import os
import shutil
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402

ARGS = support.arguments()


def scroll_to_bottom():
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        for _ in range(80):
            bpy.ops.view2d.scroll_down(page=False)


def scenario():
    support.enable_addon({"installed": True})
    sync = support.addon("sync")
    preferences = support.addon("preferences")
    live = bpy.context.window_manager.skyfarm
    prefs = preferences.addon_preferences()
    support.check(prefs.skyfarm_command == preferences.DEFAULT_COMMAND, f"preferences were set: {prefs.skyfarm_command!r}")
    support.check(shutil.which("skyfarm") is None, "skyfarm is on this Blender's PATH; the test needs it absent")

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 36, 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.filepath = "//render/frame_####"
    scene.skyfarm.output_folder = ARGS["outputDir"]

    window, area = support.properties_area()
    area.spaces.active.context = "OUTPUT"
    with support.override(window=window, area=area):
        bpy.ops.screen.screen_full_area()
    yield 0.5
    window, area = support.properties_area()
    yield from support.wait_until(lambda: live.connection_state == "not_running", 30, "the add-on to see no daemon")
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(bpy.ops.skyfarm.start_daemon() == {"FINISHED"}, "Start Daemon did not run")

    def connected():
        failures = [text for level, text in sync.reported if level == "ERROR"]
        support.check(not failures, f"Start Daemon reported a failure: {failures}")
        return live.connection_state == "connected"

    yield from support.wait_until(connected, 90, "Start Daemon and the connection")
    yield from support.wait_until(lambda: sync.session.local.available, 15, "the local backend")
    support.check(not sync.session.status.update_hint, f"versions disagree: {sync.session.status.update_hint}")
    support.log(f"connected: {live.connection_detail}")

    known = {item.job_id for item in live.jobs}
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(bpy.ops.skyfarm.render() == {"FINISHED"}, "Render did not run")
    yield from support.wait_until(lambda: [i for i in live.jobs if i.job_id not in known], 60, "the job to appear")
    job_id = next(i.job_id for i in live.jobs if i.job_id not in known)

    def ended():
        item = next(i for i in live.jobs if i.job_id == job_id)
        return item.state in ("done", "failed", "canceled")

    yield from support.wait_until(ended, ARGS["renderTimeout"], f"job {job_id} to end")
    item = next(i for i in live.jobs if i.job_id == job_id)
    support.check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")
    frames = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    support.check(frames == ["frame_0001.png", "frame_0002.png"], f"frames on disk {frames}")
    support.log(f"job {job_id} done: {frames}")
    scroll_to_bottom()
    item = next(i for i in live.jobs if i.job_id == job_id)
    yield from support.capture_properties(ARGS, "addon-installed-done", job=item)


support.drive_with_timers(scenario, timeout=ARGS["timeout"])
