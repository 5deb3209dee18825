"""GUI test of the scene upload, run in real Blender under Xvfb with a big scene open:

with Strict on, the Output tab names the missing files and Render is refused (screenshot); with
Strict off, Render starts an upload of a few hundred MB whose bar and "files · MB · MB/s · ETA"
line move in window_manager.skyfarm.jobs through the add-on's own bpy.app.timers callback (nothing
here ticks it); a screenshot is taken mid-upload, then Cancel (the panel's button operator) ends
the job canceled and the panel says where the upload was canceled (screenshot).
"""

import os
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402

ARGS = support.arguments()


def scroll(pixels):
    """Scrolls the maximised Properties editor (40 px per step, like one mouse-wheel notch)."""
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        for _ in range(abs(pixels) // 40):
            if pixels > 0:
                bpy.ops.view2d.scroll_down(page=False)
            else:
                bpy.ops.view2d.scroll_up(page=False)


def scenario():
    support.enable_addon(ARGS)
    sync = support.addon("sync")

    live = bpy.context.window_manager.skyfarm
    scene = bpy.context.scene
    scene.skyfarm.output_folder = ARGS["outputDir"]
    os.makedirs(ARGS["artifactsDir"], exist_ok=True)

    window, area = support.properties_area()
    area.spaces.active.context = "OUTPUT"
    with support.override(window=window, area=area):
        bpy.ops.screen.screen_full_area()
    yield from support.wait_until(lambda: live.connection_state == "connected", 30, "the daemon connection")
    yield from support.wait_until(lambda: sync.session.local.available, 15, "the local backend to be ready")

    # Strict on: the panel names the missing files and Render is refused with the reason.
    scene.skyfarm.strict = True
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(not bpy.ops.skyfarm.render.poll(), "Render is enabled with Strict on and files missing")
    scroll(ARGS["scrollToSubmit"])
    yield from support.capture_properties(ARGS, "upload-strict")

    # Strict off: Render, then follow the upload as the add-on's timer mirrors it.
    scene.skyfarm.strict = False
    known = {item.job_id for item in live.jobs}
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(bpy.ops.skyfarm.render.poll(), "Render stays disabled with Strict off")
        support.check(bpy.ops.skyfarm.render() == {"FINISHED"}, "render did not run")
    yield from support.wait_until(lambda: [i for i in live.jobs if i.job_id not in known], 60, "the job to appear")
    job_id = next(item.job_id for item in live.jobs if item.job_id not in known)
    live.active_job_index = next(index for index, item in enumerate(live.jobs) if item.job_id == job_id)
    # Show the jobs panel: scroll to the bottom of the editor (scrolling stops there).
    scroll(4000)

    def item():
        return next(candidate for candidate in live.jobs if candidate.job_id == job_id)

    seen = []
    deadline = time.monotonic() + 120
    # A tenth uploaded at least, so the picture's bar has a part to measure.
    while not [s for s in seen if s[0] >= 0.1 and "ETA" in s[1]]:
        current = item()
        support.check(current.state in ("queued", "uploading"), f"the job left the upload before it was seen moving: {seen}")
        if current.upload_files_total:
            snapshot = (round(current.upload_progress, 4), current.upload_text)
            if not seen or seen[-1] != snapshot:
                seen.append(snapshot)
                support.log(f"timer mirrored: {current.upload_progress:.3f} {current.upload_text}")
        support.check(time.monotonic() < deadline, f"the upload did not move: {seen}")
        yield 0.02
    current = item()
    support.check(current.state == "uploading", f"the upload ended before the screenshot ({current.state}): retake with more data")
    # The picture holds the add-on's timer, so the panel shows exactly this state.
    shot = yield from support.capture_properties(ARGS, "upload-progress", job=current)
    support.log(f"panel at the screenshot: {current.upload_progress:.3f} {current.upload_text}")

    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(bpy.ops.skyfarm.cancel(job_id=job_id) == {"FINISHED"}, "cancel did not run")
    yield from support.wait_until(lambda: item().state in ("done", "failed", "canceled"), 60, "the job to end")
    support.check(item().state == "canceled", f"the job ended {item().state}")
    support.check(sync.job_view(job_id)["stages"]["upload"] == "canceled", "the cancel did not land in the upload")
    support.check(item().upload_progress < 1.0, "the upload finished although it was canceled")
    yield from support.capture_properties(ARGS, "upload-canceled", job=item())
    support.log(f"canceled: upload canceled at {item().upload_files_done}/{item().upload_files_total} files · {item().upload_short}")
    support.log(f"slowest timer tick: {sync.slowest_tick_seconds * 1000:.2f} ms; mid-upload screenshot {shot}")

    window, area = support.properties_area()
    with support.override(window=window, area=area):
        bpy.ops.screen.back_to_previous()
    yield 0.2


support.drive_with_timers(scenario, timeout=ARGS["timeout"])
