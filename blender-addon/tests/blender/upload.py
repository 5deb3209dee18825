"""`blender -b` tests of the scene upload as the add-on shows it, one scenario per run (ARGS["scenario"]).

missing-strict: missing files are named in the panels before submit and in the submit report; with
    Strict on, Render refuses (poll message and the line under the button) and so does the daemon
    when it gets a strict submit with missing files; with Strict off the job renders without them.
upload-cancel: a project of a few hundred MB uploads with a live bar and "files · MB · MB/s · ETA"
    in window_manager.skyfarm.jobs; Cancel ends the job canceled during its upload, no byte more is
    written and the local store keeps no partial blob.

Timers do not run in background mode, so the add-on's timer callback is driven by hand
(support.pump); panels are drawn into a recording layout (layout_recorder) to check their content.
"""

import json
import os
import re
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layout_recorder  # noqa: E402
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()
UPLOAD_LINE = re.compile(r"^(\d+)/(\d+) files · ([\d.]+)/([\d.]+) (MB|GB) · [\d.]+ (KB|MB|GB)/s · ETA .+$")


def live():
    return bpy.context.window_manager.skyfarm


def operator_error(operator):
    try:
        operator()
    except RuntimeError as error:
        return str(error)
    raise AssertionError("the operator ran although it should have been disabled")


def wait_connected():
    from skyfarm import sync

    support.pump(30, lambda: live().connection_state == "connected", "the daemon connection")
    support.pump(15, lambda: sync.session.local.available, "the local backend")


def job_item(job_id):
    return next((item for item in live().jobs if item.job_id == job_id), None)


def submit():
    from skyfarm import sync

    before = sync.session.jobs.ids()
    result = bpy.ops.skyfarm.render()
    check(result == {"FINISHED"}, f"render returned {result}")
    support.pump(90, lambda: sync.session.jobs.ids() - before, "the daemon to accept the job")
    (job_id,) = sync.session.jobs.ids() - before
    return job_id


def submit_panel():
    from skyfarm import panels

    return layout_recorder.draw_panel(panels.SKYFARM_PT_submit, bpy.context)


def files_panel():
    from skyfarm import panels

    return layout_recorder.draw_panel(panels.SKYFARM_PT_submit_files, bpy.context)


def job_detail(item):
    from skyfarm import panels

    return layout_recorder.draw(panels.draw_job, item, True)


# ----- scenarios --------------------------------------------------------------------------------


def scenario_missing_strict():
    support.enable_addon(ARGS)
    from skyfarm import dependencies, submission, sync

    wait_connected()
    scene = bpy.context.scene
    scene.skyfarm.output_folder = ARGS["outputDir"]
    dependencies.recent(max_age=0.0)
    expected = f"{len(ARGS['missing'])} files missing: {', '.join(ARGS['missing'])}"

    # Before submit: the submit panel says what is missing, in red, under the settings…
    drawn = submit_panel()
    red = layout_recorder.text_of(drawn, alert=True)
    check(expected in red, f"the submit panel's red text {red!r} lacks {expected!r}")
    check(any(item["kind"] == "prop" and item["name"] == "strict" for item in drawn), "no Strict option in the panel")
    # …and the Files sub-panel lists each missing file (relative to the .blend) in its red box.
    drawn = files_panel()
    red = layout_recorder.text_of(drawn, alert=True)
    for name in ARGS["missing"]:
        check(name in red.split(" "), f"Files panel's missing box {red!r} lacks {name}")
    check("textures/oak.png" in layout_recorder.text_of(drawn, alert=False), "the present texture is not listed")
    log(f"panel: {expected}")

    # Strict on: Render is disabled and says why, in the tooltip and under the button.
    scene.skyfarm.strict = True
    message = operator_error(bpy.ops.skyfarm.render)
    check(message.startswith(f"Strict: {expected}") or f"Strict: {expected}" in message, f"poll message {message!r}")
    check("turn Strict off" in message, f"the message does not say how to go on: {message!r}")
    under_button = layout_recorder.text_of(submit_panel())
    check(f"Strict: {expected}" in under_button, f"the panel does not show the Strict refusal: {under_button!r}")
    log(f"strict poll message: {message}")

    # The daemon refuses a strict submit with missing files too (the add-on's list may be stale).
    from skyfarm import operators

    facts = operators.scene_facts(scene)
    settings = operators.submit_settings(scene)
    loose = submission.SubmitSettings(**{**settings.__dict__, "strict": False})
    found = dependencies.collect(use_cache=False)
    params = submission.build_params(facts, loose, bpy.data.filepath, [d.to_message() for d in found])
    params.update(strict=True, temporaryBlend=False)
    before = sync.session.jobs.ids()
    answers = []
    sync.session.submit(params, lambda job, error: answers.append((job, error)))
    support.pump(60, lambda: answers, "the daemon's answer to a strict submit")
    job, error = answers[0]
    check(job is None and error.code == "MISSING_DEPENDENCIES", f"daemon answer {job}, {error}")
    check("wood.png" in error.message and "metal.png" in error.message, f"daemon message {error.message!r}")
    reported = [text for level, text in sync.reported if level == "ERROR" and "MISSING_DEPENDENCIES" in text]
    check(reported, f"the refusal was not reported: {list(sync.reported)}")
    check(sync.session.jobs.ids() == before, "a refused submit made a job")
    log(f"daemon refusal: {reported[-1]}")

    # Strict off: the render goes ahead without them, and the submit report names them.
    scene.skyfarm.strict = False
    check(bpy.ops.skyfarm.render.poll(), "Render stays disabled with Strict off")
    job_id = submit()

    def warnings():
        return [text for level, text in sync.reported if level == "WARNING" and expected in text]

    support.pump(30, warnings, f"a report naming the missing files (reports: {list(sync.reported)})")
    log(f"submit report: {warnings()[0]}")
    support.pump(
        ARGS["renderTimeout"], lambda: sync.job_view(job_id)["state"] in ("done", "failed", "canceled"), "the job to end"
    )
    item = job_item(job_id)
    check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")


def _store_listing(store):
    """{relative path: size} of every file under the local store's cas/ folder."""
    listing = {}
    root = os.path.join(store, "cas")
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            listing[os.path.relpath(path, root)] = os.path.getsize(path)
    return listing


def scenario_upload_cancel():
    support.enable_addon(ARGS)
    from skyfarm import session as session_module, sync

    wait_connected()
    scene = bpy.context.scene
    scene.skyfarm.output_folder = ARGS["outputDir"]
    total_files = ARGS["bigFiles"] + 2  # the .blend and the small texture besides the big ones

    job_id = submit()
    seen = []  # (fraction, files done, line) as the add-on mirrored them, one entry per change
    deadline = time.monotonic() + 120
    while True:
        sync.tick()
        item = job_item(job_id)
        if item is not None and item.upload_files_total:
            snapshot = (round(item.upload_progress, 4), item.upload_files_done, item.upload_text)
            if not seen or seen[-1] != snapshot:
                seen.append(snapshot)
                log(f"{item.state}: {item.upload_progress:.3f} {item.upload_text}")
        # Bytes flow and the ETA shows (after 1 %): cancel now, while most of the upload is still ahead.
        moving = [s for s in seen if s[0] > 0 and "ETA" in s[2]]
        if moving:
            break
        check(item is None or item.state in ("queued", "uploading"), f"the job left the upload before it could be watched: {item.state}")
        check(time.monotonic() < deadline, f"the upload did not move: {seen}")
        time.sleep(0.01)

    item = job_item(job_id)
    check(item.state == "uploading", f"state {item.state} while bytes are sent")
    check(item.upload_files_total == total_files, f"upload_files_total {item.upload_files_total} != {total_files}")
    fractions = [fraction for fraction, _, _ in seen]
    check(fractions == sorted(fractions) and 0 < fractions[-1] < 1, f"the bar did not grow within 0-1: {fractions}")
    match = UPLOAD_LINE.match(item.upload_text)
    check(match, f"upload line {item.upload_text!r}")
    check(int(match.group(2)) == total_files, f"files total in {item.upload_text!r}")
    expected_total_mb = ARGS["bigBytes"] / 1e6
    check(abs(float(match.group(4)) - expected_total_mb) / expected_total_mb < 0.05, f"total size in {item.upload_text!r}")

    # The job's detail shows the bar (bytes fraction) and the line; the row's bar is the upload too.
    drawn = job_detail(item)
    bars = [entry for entry in drawn if entry["kind"] in ("prop", "progress") and "Uploading" in entry["text"]]
    check(bars, f"no upload bar in {drawn}")
    if bars[0]["kind"] == "prop":  # Blender 3.x: the read-only percentage slider
        check(bars[0]["name"] == "upload_percent" and bars[0]["slider"], f"upload bar {bars[0]}")
        check(abs(bars[0]["value"] - item.upload_progress * 100) < 1e-3, f"bar value {bars[0]['value']} != {item.upload_progress}")
    check(bars[0]["text"] == f"Uploading {item.upload_short}", f"bar text {bars[0]['text']!r}")
    check(item.upload_text in layout_recorder.text_of(drawn, kind="label"), f"no upload line in {drawn}")
    check(not [entry for entry in drawn if entry.get("name") == "progress_percent"], "the frames bar is drawn during the upload")
    log(f"panel while uploading: {bars[0]['text']} | {item.upload_text}")

    # Cancel, as the panel's button does, while bytes are on their way.
    at_cancel = item.upload_progress
    check(bpy.ops.skyfarm.cancel(job_id=job_id) == {"FINISHED"}, "cancel did not run")
    support.pump(60, lambda: sync.job_view(job_id)["state"] in ("done", "failed", "canceled"), "the job to end")
    item = job_item(job_id)
    job = sync.job_view(job_id)
    check(item.state == "canceled", f"the job ended {item.state}")
    check(job["stages"]["upload"] == "canceled", f"stages {job['stages']}: the cancel did not land in the upload")
    check(at_cancel <= item.upload_progress < 1.0, f"upload at cancel {at_cancel}, at the end {item.upload_progress}")
    check(item.upload_files_done < total_files, f"{item.upload_files_done}/{total_files} files uploaded")
    check(any("canceled" in text for _, text in sync.reported), f"no cancel report: {list(sync.reported)}")
    drawn = job_detail(item)
    stopped = layout_recorder.text_of(drawn, kind="label")
    check(f"Upload canceled at {item.upload_files_done}/{total_files} files · {item.upload_short}" in stopped, f"panel: {stopped!r}")
    check(not [entry for entry in drawn if "Uploading" in entry.get("text", "")], "the panel still shows an upload running")
    check(session_module.upload_stopped(job), "the job does not count as stopped in its upload")
    check(not os.path.exists(job["blendFile"]), f"the temporary scene copy {job['blendFile']} was left behind")
    log(f"canceled at {item.upload_progress:.3f}: {stopped}")

    # The store: no partial blob, not every blob, no manifest; and nothing more arrives.
    store = ARGS["storeDir"]
    listing = _store_listing(store)
    check(not [name for name in listing if ".part" in name], f"partial blobs left: {sorted(listing)}")
    check(len(listing) < total_files, f"{len(listing)} blobs stored: the upload completed")
    check(not os.path.exists(os.path.join(store, "jobs", job_id, "manifest.json")), "a manifest was written")
    last_event = sync.session.uploads.get(job_id)
    support.pump(1.5)
    check(_store_listing(store) == listing, "bytes were written to the store after the cancel")
    check(sync.session.uploads.get(job_id) is last_event, "upload progress arrived after the cancel")
    log(f"store after cancel: {len(listing)} blobs, {sum(listing.values()) / 1e6:.0f} MB of {ARGS['bigBytes'] / 1e6:.0f} MB")
    print("SKYFARM_UPLOAD_SEEN " + json.dumps(seen), flush=True)


SCENARIOS = {
    "missing-strict": scenario_missing_strict,
    "upload-cancel": scenario_upload_cancel,
}

support.run_in_background(SCENARIOS[ARGS["scenario"]])
