"""Operators: Render, Cancel, open the output, show the last frame, start and reach the daemon."""

import os
import subprocess
import tempfile
import time

import bpy
from bpy.props import EnumProperty, StringProperty

from . import dependencies, preferences, submission, sync


def scene_facts(scene):
    image_settings = scene.render.image_settings
    return submission.SceneFacts(
        blend_path=bpy.data.filepath,
        scene_name=scene.name,
        frame_start=scene.frame_start,
        frame_end=scene.frame_end,
        frame_step=scene.frame_step,
        render_filepath=output_path(scene),
        # Timeline markers can bind cameras per frame; the daemon counts those too.
        has_camera=scene.camera is not None or any(marker.camera is not None for marker in scene.timeline_markers),
        is_movie=image_settings.file_format in {"FFMPEG", "AVI_JPEG", "AVI_RAW"},
    )


def output_path(scene):
    """The scene's output path; for a saved file, Blender's own path of its first frame, so the output
    folder is the one Blender writes to (`//`, `#` in folder names, 4.5+ path templates)."""
    if not bpy.data.filepath:
        return scene.render.filepath  # `//` cannot resolve yet: submission says so
    return scene.render.frame_path(frame=scene.frame_start)


def submit_settings(scene, context=None):
    settings = scene.skyfarm
    prefs = preferences.addon_preferences(context)
    return submission.SubmitSettings(
        backend=settings.backend.lower(),
        frame_mode=settings.frame_mode,
        frame_spec=settings.frame_spec,
        chunk_size=settings.chunk_size,
        output_folder=settings.output_folder,
        aws_device=settings.aws_device.lower(),
        aws_market=settings.aws_market.lower().replace("_", "-"),
        aws_blender_version=settings.aws_blender_version.strip() or bpy.app.version_string.split(" ")[0],
        aws_notify_email=settings.aws_notify_email,
        aws_max_cost=settings.aws_max_cost,
        aws_stack_name=stack_name(prefs),
        aws_split=settings.aws_split,
        strict=settings.strict,
    )


def stack_name(prefs):
    """The stack to render on: the preferences' one, else the one the daemon reported (the AWS backend's)."""
    name = prefs.aws_stack_name.strip() if prefs else ""
    session = sync.session
    if not name and session is not None and session.stack:
        name = session.stack.get("stackName", "")
    return name


def render_blocker(context):
    """Why Render cannot run right now, or None. Shared by poll and the panel."""
    session = sync.session
    if session is None:
        return "The skyfarm add-on is not running"
    status = session.status
    if not status.connected:
        headline = preferences.connection_headline(status)
        return f"{headline}: {status.detail}" if status.detail else headline
    if session.submitting:
        return "Submitting the previous render…"
    scene = context.scene
    if scene is None:
        return "No scene"
    facts = scene_facts(scene)
    problem = submission.blocking_problem(facts, submit_settings(scene, context))
    if problem:
        return problem
    if scene.skyfarm.strict:
        problem = submission.strict_problem([d.path for d in dependencies.missing(dependencies.recent())], facts.blend_path)
        if problem:
            return problem
    backend = scene.skyfarm.backend.lower()
    availability = session.backend(backend)
    if not availability.available:
        label = "AWS" if backend == "aws" else "Local rendering"
        return f"{label} is not available: {availability.reason}"
    return None


class SKYFARM_OT_render(bpy.types.Operator):
    """Render the scene as it is now (unsaved changes included) through the skyfarm daemon"""

    bl_idname = "skyfarm.render"
    bl_label = "Render on skyfarm"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        blocker = render_blocker(context)
        if blocker:
            cls.poll_message_set(blocker)
            return False
        return True

    def execute(self, context):
        scene = context.scene
        facts = scene_facts(scene)
        settings = submit_settings(scene, context)
        found = dependencies.collect(use_cache=False)
        copy = submission.copy_path(facts)
        try:
            # copy=True writes the current state without touching the user's file or its path;
            # relative_remap=False keeps // paths pointing into the user's project folder.
            bpy.ops.wm.save_as_mainfile(filepath=copy, copy=True, relative_remap=False, check_existing=False)
            params = submission.build_params(facts, settings, copy, [d.to_message() for d in found])
        except (RuntimeError, submission.SubmitProblem) as error:
            _discard_copy(copy)
            self.report({"ERROR"}, f"skyfarm: cannot submit: {error}")
            return {"CANCELLED"}

        def answered(job, error):
            if job is None and error.code != "DAEMON_UNREACHABLE":
                # Refused: the daemon will never delete the copy. (If the link dropped, it may own it.)
                _discard_copy(copy)
            elif job is not None:
                sync.select_job(job["id"])

        try:
            sync.session.submit(params, answered)
        except ValueError as error:
            _discard_copy(copy)
            self.report({"ERROR"}, f"skyfarm: cannot submit: {error}")
            return {"CANCELLED"}
        submission.remove_empty_copy_folders()
        missing = [d.path for d in found if d.missing]
        frames = params["frames"]
        if missing:
            summary = submission.missing_summary(missing, facts.blend_path)
            self.report({"WARNING"}, f"skyfarm: submitting frames {frames}; {summary} (rendered without them)")
        else:
            self.report({"INFO"}, f"skyfarm: submitting frames {frames} ({len(found)} files)")
        sync.request_redraw()
        return {"FINISHED"}


def _discard_copy(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


def _job(job_id):
    return sync.session.jobs.get(job_id) if sync.session is not None and job_id else None


class SKYFARM_OT_cancel(bpy.types.Operator):
    """Cancel this skyfarm job"""

    bl_idname = "skyfarm.cancel"
    bl_label = "Cancel Job"
    bl_options = {"REGISTER"}

    job_id: StringProperty(name="Job ID", description="The id of the job to cancel")

    @classmethod
    def poll(cls, context):
        if sync.session is None or not sync.session.status.connected:
            cls.poll_message_set("Not connected to the skyfarm daemon")
            return False
        return True

    def execute(self, context):
        job = _job(self.job_id)
        if job is None:
            self.report({"ERROR"}, f"skyfarm: no job {self.job_id!r}")
            return {"CANCELLED"}
        if job["state"] in ("done", "failed", "canceled"):
            self.report({"WARNING"}, f"skyfarm: \"{job['name']}\" already ended ({job['state']})")
            return {"CANCELLED"}
        sync.session.cancel(self.job_id)
        self.report({"INFO"}, f"skyfarm: canceling \"{job['name']}\"")
        return {"FINISHED"}


class SKYFARM_OT_open_output(bpy.types.Operator):
    """Open the job's output folder in the file browser"""

    bl_idname = "skyfarm.open_output"
    bl_label = "Open Output Folder"

    job_id: StringProperty(name="Job ID")

    def execute(self, context):
        job = _job(self.job_id)
        if job is None:
            self.report({"ERROR"}, f"skyfarm: no job {self.job_id!r}")
            return {"CANCELLED"}
        folder = job["output"]
        if not os.path.isdir(folder):
            self.report({"ERROR"}, f"skyfarm: the output folder {folder} does not exist (yet)")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=folder)
        return {"FINISHED"}


def _image_editor_space(context):
    """An Image Editor to show the frame in: an open one, else a new window turned into one."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                return area.spaces.active
    window = context.window or (context.window_manager.windows[0] if context.window_manager.windows else None)
    if window is None:
        return None
    before = set(context.window_manager.windows[:])
    try:
        with sync.operator_context(window=window, area=window.screen.areas[0]):
            bpy.ops.wm.window_new()
    except RuntimeError:  # No window can be opened here (background mode): the image is loaded anyway.
        return None
    created = [w for w in context.window_manager.windows if w not in before]
    if not created:
        return None
    area = max(created[0].screen.areas, key=lambda a: a.width * a.height)
    area.type = "IMAGE_EDITOR"
    return area.spaces.active


class SKYFARM_OT_show_last_frame(bpy.types.Operator):
    """Load the latest finished frame of this job into an Image Editor"""

    bl_idname = "skyfarm.show_last_frame"
    bl_label = "Show Last Frame"

    job_id: StringProperty(name="Job ID")

    def execute(self, context):
        job = _job(self.job_id)
        path = job.get("lastFrame") if job else None
        if not path:
            self.report({"WARNING"}, "skyfarm: this job has no finished frame yet")
            return {"CANCELLED"}
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"skyfarm: {path} is not on disk")
            return {"CANCELLED"}
        image = bpy.data.images.load(path, check_existing=True)
        image.reload()  # The same file name may hold a newer render than the loaded one.
        space = _image_editor_space(context)
        if space is None:
            self.report({"INFO"}, f"skyfarm: loaded {os.path.basename(path)} as image \"{image.name}\"")
            return {"FINISHED"}
        space.image = image
        sync.request_redraw(all_areas=True)
        return {"FINISHED"}


# Start-daemon processes we launched and are waiting on, polled by a timer so Blender never blocks.
_starting = []


class SKYFARM_OT_start_daemon(bpy.types.Operator):
    """Start the skyfarm daemon in the background (runs `skyfarm daemon start`)"""

    bl_idname = "skyfarm.start_daemon"
    bl_label = "Start Daemon"

    @classmethod
    def poll(cls, context):
        if any(process.poll() is None for process, _output, _started in _starting):
            cls.poll_message_set("The daemon is being started")
            return False
        return True

    def execute(self, context):
        try:
            argv = preferences.start_command(context) + ["daemon", "start"]
        except ValueError as error:
            self.report({"ERROR"}, f"skyfarm: {error}")
            return {"CANCELLED"}
        output = tempfile.TemporaryFile()
        env = dict(os.environ)
        # Jobs render in the Blender the artist works in (a newer Blender's files do not open in an
        # older one), unless SKYFARM_BLENDER already names one.
        if not env.get("SKYFARM_BLENDER", "").strip() and bpy.app.binary_path:
            env["SKYFARM_BLENDER"] = bpy.app.binary_path
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env)
        except OSError as error:
            output.close()
            self.report({"ERROR"}, f"skyfarm: cannot run {argv[0]}: {error.strerror}")
            return {"CANCELLED"}
        _starting.append((process, output, time.monotonic()))
        if not bpy.app.timers.is_registered(_poll_start_processes):
            bpy.app.timers.register(_poll_start_processes, first_interval=0.2)
        self.report({"INFO"}, "skyfarm: starting the daemon…")
        return {"FINISHED"}


def _poll_start_processes():
    for entry in list(_starting):
        process, output, started = entry
        code = process.poll()
        if code is None and time.monotonic() - started < 60:
            continue
        _starting.remove(entry)
        if code is None:
            process.kill()
            process.wait()
        output.seek(0)
        text = output.read().decode("utf-8", "replace").strip()
        output.close()
        if code == 0:
            sync.notify("INFO", f"skyfarm: {text.splitlines()[-1] if text else 'daemon started'}")
            if sync.session is not None:
                sync.session.connection.reconnect_now()
        else:
            tail = " ".join(text.splitlines()[-3:]) if text else "no output"
            sync.notify("ERROR", f"skyfarm: starting the daemon failed (exit {code}): {tail}")
    sync.request_redraw()
    return 0.2 if _starting else None


class SKYFARM_OT_reconnect(bpy.types.Operator):
    """Try to reach the skyfarm daemon again now"""

    bl_idname = "skyfarm.reconnect"
    bl_label = "Reconnect"

    def execute(self, context):
        if sync.session is None:
            return {"CANCELLED"}
        sync.session.connection.reconnect_now()
        return {"FINISHED"}


class SKYFARM_OT_refresh_backends(bpy.types.Operator):
    """Ask the daemon again which backends can render (e.g. after deploying the AWS stack)"""

    bl_idname = "skyfarm.refresh_backends"
    bl_label = "Check Again"

    @classmethod
    def poll(cls, context):
        return sync.session is not None and sync.session.status.connected

    def execute(self, context):
        sync.session.refresh_backends(check_stack=True)
        return {"FINISHED"}


class SKYFARM_OT_refresh_dependencies(bpy.types.Operator):
    """Look for the scene's files on disk again"""

    bl_idname = "skyfarm.refresh_dependencies"
    bl_label = "Check Files Again"

    def execute(self, context):
        dependencies.recent(max_age=0.0)
        sync.request_redraw()
        return {"FINISHED"}


class SKYFARM_OT_report(bpy.types.Operator):
    """Shows a skyfarm message in Blender's status bar and Info log"""

    bl_idname = "skyfarm.report"
    bl_label = "skyfarm Report"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")])
    message: StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


classes = (
    SKYFARM_OT_render,
    SKYFARM_OT_cancel,
    SKYFARM_OT_open_output,
    SKYFARM_OT_show_last_frame,
    SKYFARM_OT_start_daemon,
    SKYFARM_OT_reconnect,
    SKYFARM_OT_refresh_backends,
    SKYFARM_OT_refresh_dependencies,
    SKYFARM_OT_report,
)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()


def unregister():
    if bpy.app.timers.is_registered(_poll_start_processes):
        bpy.app.timers.unregister(_poll_start_processes)
    for process, output, _started in _starting:
        # `daemon start` exits by itself once the daemon answers; only stop watching it.
        process.poll()
        output.close()
    _starting.clear()
    _unregister()
