"""`blender -b` tests of an AWS render from the add-on, against a daemon wired to the AWS fakes.

ARGS["scenario"]: "follow" (a render the panel follows frame by frame to the frames on disk) or
"failure" (a Blender version without a worker image is refused with the versions there are; then a
chunk fails: the panel shows `failed` with the daemon's message). Timers do not run in
background mode, so the scenario drives the add-on's timer callback (sync.tick) itself and samples,
on this main thread after every tick, what the add-on shows: window_manager.skyfarm.jobs and
sync.job_view. Prints AWS_RESULT {json} for the TypeScript side.
"""

import json
import os
import sys
import time

import bpy

sys.dont_write_bytecode = True  # Blender ignores PYTHONDONTWRITEBYTECODE: no __pycache__ in the tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()
FINAL = ("done", "failed", "canceled")


def live():
    return bpy.context.window_manager.skyfarm


def item_for(job_id):
    return next((item for item in live().jobs if item.job_id == job_id), None)


class Layout:
    """A stand-in for a panel layout that records the text draw_job() shows (background Blender draws no UI)."""

    def __init__(self, lines):
        self.lines = lines
        self.alert = False
        self.active = True
        self.enabled = True
        self.alignment = "EXPAND"
        self.use_property_split = False
        self.use_property_decorate = False

    def _child(self, *args, **kwargs):
        return Layout(self.lines)

    row = column = box = split = _child

    def label(self, text="", **kwargs):
        self.lines.append(text)

    def prop(self, data, name, text="", **kwargs):
        self.lines.append(text)

    def operator(self, idname, text="", **kwargs):
        self.lines.append(f"[{text}]")
        return type("OperatorProperties", (), {})()


def panel_lines(item):
    from skyfarm import panels

    lines = []
    panels.draw_job(Layout(lines), item, connected=True)
    return lines


def connect_with_aws():
    from skyfarm import operators, sync

    support.pump(30, lambda: live().connection_state == "connected", "the daemon connection")
    support.pump(30, lambda: sync.session.local.available, "daemon.info")
    support.pump(30, lambda: live().aws_available, "the AWS backend (the daemon's deployed stack)")
    log(f"AWS available: {live().aws_reason}")
    check("CREATE_COMPLETE" in sync.session.aws.reason, f"AWS reason: {sync.session.aws.reason!r}")
    scene = bpy.context.scene
    scene.skyfarm.backend = "AWS"
    scene.skyfarm.chunk_size = ARGS["chunkSize"]
    scene.skyfarm.output_folder = ARGS["outputDir"]
    check(operators.render_blocker(bpy.context) is None, f"Render with AWS: {operators.render_blocker(bpy.context)!r}")


def submit():
    from skyfarm import sync

    before = sync.session.jobs.ids()
    sent = []
    submit_request = sync.session.submit
    sync.session.submit = lambda params, on_done=None: sent.append(params) or submit_request(params, on_done)
    try:
        result = bpy.ops.skyfarm.render()
    finally:
        del sync.session.submit
    check(result == {"FINISHED"}, f"render returned {result}")
    check(len(sent) == 1, f"{len(sent)} render.submit requests")
    aws = sent[0].get("aws") or {}
    log(f"render.submit aws options: {aws}")
    # The farm the panel showed ready, and this Blender's version (the stack has an image for it).
    check(aws.get("stackName") == sync.session.stack["stackName"] == "skyfarm", f"stack {aws.get('stackName')!r}")
    check(aws.get("blenderVersion") == ARGS["blenderVersion"], f"Blender version {aws.get('blenderVersion')!r}")

    def refused():
        return [text for level, text in sync.reported if level == "ERROR" and "refused" in text]

    support.pump(120, lambda: sync.session.jobs.ids() - before or refused(), "the daemon to accept the job")
    check(not refused(), f"the daemon refused the render: {refused()}")
    (job_id,) = sync.session.jobs.ids() - before
    job = sync.job_view(job_id)
    check(job["backend"] == "aws", f"backend {job['backend']}")
    return job_id


def image_size(path):
    image = bpy.data.images.load(path, check_existing=False)
    try:
        return tuple(image.size)
    finally:
        bpy.data.images.remove(image)


def follow(job_id, seconds, on_sample=None):
    """Ticks the add-on until the job ends; returns every distinct (state, frames_done, last_frame) shown."""
    from skyfarm import sync

    samples = []
    deadline = time.monotonic() + seconds
    while True:
        check(time.monotonic() < deadline, f"the job did not end within {seconds} s: {samples[-3:]}")
        sync.tick()
        item = item_for(job_id)
        if item is not None:
            sample = (item.state, item.frames_done, item.last_frame)
            if not samples or samples[-1] != sample:
                samples.append(sample)
                log(f"shown: {item.state} {item.frames_done}/{item.frames_total} {os.path.basename(item.last_frame)!r} · {item.message}")
                if on_sample is not None:
                    on_sample(item)
            if item.state in FINAL and sync.job_view(job_id)["state"] in FINAL:
                return item, samples
        time.sleep(0.02)


def ordered_subsequence(wanted, seen):
    position = 0
    for state in seen:
        if position < len(wanted) and state == wanted[position]:
            position += 1
    return position == len(wanted)


def scenario_follow():
    support.enable_addon(ARGS)
    from skyfarm import sync

    connect_with_aws()
    scene = bpy.context.scene
    scene.skyfarm.aws_notify_email = ARGS["notifyEmail"]
    scene.render.resolution_x, scene.render.resolution_y = ARGS["resolution"]  # unsaved on purpose
    scene.render.resolution_percentage = 100
    check(scene.skyfarm.aws_blender_version == "", "the Blender version starts empty (this Blender's own)")

    job_id = submit()
    job = sync.job_view(job_id)
    log(f"submitted {job_id}: {job['framesTotal']} frames, state {job['state']}")
    check(job["framesTotal"] == len(ARGS["expectedFrames"]), f"framesTotal {job['framesTotal']}")

    previews = []  # (frames_done, path, size) of every preview shown while the job still ran

    def on_sample(item):
        if item.state in FINAL or not item.last_frame:
            return
        path = item.last_frame
        if previews and previews[-1][1] == path:
            return
        # The preview must be on disk while the job runs, and Show Last Frame loads it.
        check(os.path.isfile(path), f"last_frame {path} is not on disk while the job is {item.state}")
        check(bpy.ops.skyfarm.show_last_frame(job_id=job_id) == {"FINISHED"}, "Show Last Frame did not run")
        image = next((image for image in bpy.data.images if bpy.path.abspath(image.filepath) == path), None)
        check(image is not None, f"Show Last Frame loaded no image from {path}: {[i.filepath for i in bpy.data.images]}")
        size = tuple(image.size)
        previews.append((item.frames_done, path, size))
        log(f"Show Last Frame while {item.state} at {item.frames_done} frames: {path} {size}")

    item, samples = follow(job_id, ARGS["renderTimeout"], on_sample)
    states = [state for state, _, _ in samples]
    distinct_states = [state for index, state in enumerate(states) if index == 0 or states[index - 1] != state]
    frames_done = sorted({done for _, done, _ in samples})
    result = {"jobId": job_id, "states": distinct_states, "framesDone": frames_done, "previews": previews}
    print("AWS_RESULT " + json.dumps(result), flush=True)

    check(item.state == "done", f"job ended {item.state}: {item.error_message or item.message}")
    check(
        ordered_subsequence(["uploading", "copying", "rendering", "publishing", "done"], distinct_states),
        f"the panel did not show upload → copy → render → publish → done: {distinct_states}",
    )
    total = len(ARGS["expectedFrames"])
    intermediate = [done for done in frames_done if 0 < done < total]
    check(len(intermediate) >= 2, f"frames done did not move frame by frame: {frames_done}")
    check(
        all(a[1] <= b[1] for a, b in zip(samples, samples[1:])),
        f"frames done went backwards: {[done for _, done, _ in samples]}",
    )
    # While it renders, last_frame is the newest frame's preview (longest side 256) from the farm; once
    # publish downloads frames, it is the full frame in the output folder.
    small = [entry for entry in previews if os.path.dirname(entry[1]) != ARGS["outputDir"]]
    for done, path, size in previews:
        expected = tuple(ARGS["resolution"]) if os.path.dirname(path) == ARGS["outputDir"] else tuple(ARGS["previewSize"])
        check(size == expected, f"Show Last Frame loaded {path} as {size}, expected {expected}")
    check(len({done for done, _, _ in small}) >= 2, f"the preview did not follow the frames while rendering: {previews}")

    # At the end: every frame in the output folder, last_frame the newest full frame, Open Output works.
    check(item.frames_done == item.frames_total == total, f"{item.frames_done}/{item.frames_total}")
    on_disk = sorted(name for name in os.listdir(ARGS["outputDir"]) if name.endswith(".png"))
    check(on_disk == ARGS["expectedFrames"], f"frames on disk {on_disk}")
    check(os.path.dirname(item.last_frame) == ARGS["outputDir"], f"last_frame {item.last_frame}")
    check(os.path.isfile(item.last_frame), f"{item.last_frame} is not on disk")
    check(bpy.ops.skyfarm.show_last_frame(job_id=job_id) == {"FINISHED"}, "Show Last Frame after the end")
    check(image_size(item.last_frame) == tuple(ARGS["resolution"]), f"{item.last_frame} is not {ARGS['resolution']}")
    check(item.output == ARGS["outputDir"], f"output {item.output}")
    check(bpy.ops.skyfarm.open_output(job_id=job_id) == {"FINISHED"}, "Open Output")
    lines = panel_lines(item)
    log(f"job detail: {lines}")
    check(f"{total}/{total} frames" in lines, f"the detail shows no {total}/{total} frames: {lines}")
    check(f"{total} frames in {ARGS['outputDir']}" in " ".join(lines), f"the detail does not say where the frames are: {lines}")
    finished = [text for level, text in sync.reported if level == "INFO" and "finished" in text]
    check(any(ARGS["outputDir"] in text for text in finished), f"no finished report naming the folder: {list(sync.reported)}")


def scenario_failure():
    support.enable_addon(ARGS)
    from skyfarm import sync

    connect_with_aws()
    # A Blender version the farm has no worker image for is refused before anything is uploaded, and
    # the report lists the versions it has.
    scene = bpy.context.scene
    scene.skyfarm.aws_blender_version = "9.9"
    before = sync.session.jobs.ids()
    check(bpy.ops.skyfarm.render() == {"FINISHED"}, "render with Blender 9.9")

    def refusals():
        return [text for level, text in sync.reported if level == "ERROR" and "refused" in text]

    support.pump(60, refusals, "the refusal of Blender 9.9")
    log(f"refused: {refusals()[-1]}")
    check("no worker image for Blender 9.9" in refusals()[-1] and "[IMAGE_MISSING]" in refusals()[-1], refusals()[-1])
    check(ARGS["blenderVersion"] in refusals()[-1].split("available:")[1], f"the available versions are not listed: {refusals()[-1]}")
    check(sync.session.jobs.ids() == before, "a refused render left a job")
    scene.skyfarm.aws_blender_version = ""
    sync.reported.clear()

    job_id = submit()
    item, samples = follow(job_id, ARGS["renderTimeout"])
    lines = panel_lines(item)
    result = {"jobId": job_id, "state": item.state, "errorMessage": item.error_message, "lines": lines}
    print("AWS_RESULT " + json.dumps(result), flush=True)
    check(item.state == "failed", f"job ended {item.state}, expected failed")
    check(item.error_message.startswith("1 of 4 frames failed (1)"), f"error message {item.error_message!r}")
    check(item.frames_failed == 1 and item.frames_done == 3, f"{item.frames_done} done, {item.frames_failed} failed")
    check(f"{item.error_message} [{item.error_code}]" in " ".join(lines), f"the job detail does not show the error: {lines}")
    errors = [text for level, text in sync.reported if level == "ERROR"]
    check(any(item.error_message[:60] in text for text in errors), f"no error report with the daemon's message: {errors}")
    log(f"failure shown: {item.error_message} [{item.error_code}]")


SCENARIOS = {"follow": scenario_follow, "failure": scenario_failure}

support.run_in_background(SCENARIOS[ARGS["scenario"]])
