"""GUI test, run in real Blender under Xvfb with a scene open:

enables the add-on (installed from the built zip, or as an extension before Blender started),
waits for the daemon connection, presses Render on skyfarm in the maximised Properties editor's
Output tab, follows window_manager.skyfarm.jobs through bpy.app.timers until the job is done with
every frame, has the screen photographed mid-render and at the end (support.capture, checked by
screen.ts), checks the frames on disk, presses Show Last Frame, and disables the add-on again.
"""

import os
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402

ARGS = support.arguments()


def scroll_to_bottom():
    """The jobs panel is the Output tab's last: scroll the maximised editor down until it stops."""
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        for _ in range(80):
            bpy.ops.view2d.scroll_down(page=False)


def scenario():
    support.enable_addon(ARGS)
    sync = support.addon("sync")

    live = bpy.context.window_manager.skyfarm
    scene = bpy.context.scene
    support.check(bpy.data.filepath == ARGS["blendFile"], f"expected {ARGS['blendFile']} open, got {bpy.data.filepath!r}")

    # An unsaved change made just before pressing Render must reach the render: the daemon renders
    # a copy of the current state, not the file on disk.
    scene.render.resolution_x = ARGS["resolution"][0]
    scene.render.resolution_y = ARGS["resolution"][1]
    scene.skyfarm.chunk_size = 2
    scene.skyfarm.output_folder = ARGS["outputDir"]

    window, area = support.properties_area()
    area.spaces.active.context = "OUTPUT"
    # Maximised, so the panels are legible in the screenshots.
    with support.override(window=window, area=area):
        bpy.ops.screen.screen_full_area()
    yield 0.5
    window, area = support.properties_area()
    yield from support.wait_until(lambda: live.connection_state == "connected", 30, "the daemon connection")
    yield from support.wait_until(lambda: sync.session.local.available, 15, "the local backend to be ready")
    support.check(not live.aws_available, "AWS cannot be available without a deployed stack")
    support.log(f"connected: {live.connection_detail}")

    known_ids = {item.job_id for item in live.jobs}
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(bpy.ops.skyfarm.render.poll(), "Render is disabled although the daemon is connected")
        result = bpy.ops.skyfarm.render()
    support.check(result == {"FINISHED"}, f"bpy.ops.skyfarm.render() returned {result}")
    support.check(bpy.data.filepath == ARGS["blendFile"], "Render changed the file the user has open")

    def new_jobs():
        return [item for item in live.jobs if item.job_id not in known_ids]

    yield from support.wait_until(lambda: new_jobs(), 60, "the submitted job to appear")
    job_id = new_jobs()[0].job_id
    support.check(len(new_jobs()) == 1, f"one Render press made {len(new_jobs())} jobs")
    yield from support.wait_until(
        lambda: live.jobs[live.active_job_index].job_id == job_id, 10, "the new job to become the selected row"
    )
    scroll_to_bottom()
    seen = []
    last_seen = None
    mid_render_shot = None
    deadline = time.monotonic() + ARGS["renderTimeout"]
    while True:
        item = next((candidate for candidate in live.jobs if candidate.job_id == job_id), None)
        support.check(item is not None, f"job {job_id} vanished from window_manager.skyfarm.jobs")
        snapshot = (item.state, item.frames_done, round(item.progress, 3))
        if snapshot != last_seen:
            seen.append(snapshot)
            last_seen = snapshot
            support.log(f"job {job_id}: {item.state} {item.frames_done}/{item.frames_total} {item.message!r}")
        if item.state in ("done", "failed", "canceled"):
            break
        if mid_render_shot is None and item.state == "rendering" and 0.2 <= item.progress <= 0.8:
            # A part-filled bar: the picture must show the share the job has, not just "a bar".
            scroll_to_bottom()
            mid_render_shot = yield from support.capture_properties(ARGS, "addon-job-rendering", job=item)
        support.check(time.monotonic() < deadline, f"job still {item.state} after {ARGS['renderTimeout']} s")
        yield 0.05
    support.check(mid_render_shot is not None, f"the job never showed a part-filled bar to photograph: {seen}")

    item = next(candidate for candidate in live.jobs if candidate.job_id == job_id)
    support.check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")
    support.check(item.frames_total == ARGS["frames"], f"frames_total {item.frames_total} != {ARGS['frames']}")
    support.check(item.frames_done == item.frames_total, f"frames_done {item.frames_done}/{item.frames_total}")
    support.check(abs(item.progress - 1.0) < 1e-6, f"progress {item.progress} at done")
    support.check(len({state for state, _, _ in seen}) >= 2, f"the panel never saw the job move: {seen}")
    support.check(os.path.normpath(item.output) == os.path.normpath(ARGS["outputDir"]), f"output {item.output}")
    support.check(item.last_frame and os.path.isfile(item.last_frame), f"last frame {item.last_frame!r} is not on disk")

    frames = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    support.check(len(frames) == ARGS["frames"], f"expected {ARGS['frames']} frames on disk, found {frames}")
    support.log(f"frames on disk: {frames}")
    finished = [text for level, text in sync.reported if level == "INFO" and "finished" in text]
    support.check(finished, f"no 'finished' report was shown; reports: {list(sync.reported)}")

    # The finished job's box, then the submit panel with its Render button.
    scroll_to_bottom()
    item = next(candidate for candidate in live.jobs if candidate.job_id == job_id)
    yield from support.capture_properties(ARGS, "addon-job-done", job=item)
    window, area = support.properties_area()
    region = support.main_region(area)
    with support.override(window=window, area=area, region=region):
        for _ in range(80):
            bpy.ops.view2d.scroll_up(page=False)
        # Blender's own Output panels come first; scroll to the skyfarm ones (40 px per step,
        # the operator ignores deltay and scrolls like one mouse-wheel notch).
        for _ in range(ARGS.get("scrollPixels", 0) // 40):
            bpy.ops.view2d.scroll_down(page=False)
    yield from support.capture_properties(ARGS, "addon-output-panels")
    # The same maximised area as Preferences > Add-ons with skyfarm expanded: connection state,
    # command path and Start Daemon.
    import addon_utils

    # The add-ons list draws the module objects addon_utils.modules() returns, not sys.modules.
    for listed in addon_utils.modules(refresh=False):
        if listed.__name__ == support.package:
            addon_utils.module_bl_info(listed)["show_expanded"] = True
    area.type = "PREFERENCES"
    bpy.context.preferences.active_section = "ADDONS"
    bpy.context.window_manager.addon_search = "skyfarm"
    yield 0.5
    yield from support.capture(ARGS, "addon-preferences", area=area)
    area.type = "PROPERTIES"
    with support.override(window=window, area=area):
        bpy.ops.screen.back_to_previous()
    yield 0.3

    # Show Last Frame puts the newest frame into an Image Editor.
    window, area = support.properties_area()
    with support.override(window=window, area=area):
        result = bpy.ops.skyfarm.show_last_frame(job_id=job_id)
    support.check(result == {"FINISHED"}, f"show_last_frame returned {result}")
    yield 0.5
    _, image_area = support.area_of_type("IMAGE_EDITOR")
    support.check(image_area is not None, "no Image Editor shows the last frame")
    shown = image_area.spaces.active.image
    support.check(
        shown is not None and os.path.normpath(bpy.path.abspath(shown.filepath)) == os.path.normpath(item.last_frame),
        f"the Image Editor shows {shown.filepath if shown else None}, expected {item.last_frame}",
    )
    support.check(tuple(shown.size) == tuple(ARGS["resolution"]), f"frame size {tuple(shown.size)}: the unsaved resolution change did not reach the render")

    support.log(f"slowest timer tick: {sync.slowest_tick_seconds * 1000:.2f} ms")

    support.disable_addon()
    support.check(not hasattr(bpy.types.WindowManager, "skyfarm"), "unregister left WindowManager.skyfarm behind")
    yield 0.2


support.drive_with_timers(scenario, timeout=ARGS["timeout"])
