"""Blender properties: render settings on the Scene, live daemon status on the WindowManager.

Scene.skyfarm is saved with the .blend, so every shot keeps its own farm settings.
WindowManager.skyfarm mirrors what the daemon pushes (sync.py writes it on the main thread); it is
the public, scriptable view of the live status: window_manager.skyfarm.jobs[i].state etc.
"""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import farm_props, framespec


def _frame_mode_changed(settings, context):
    # Switching to a custom spec starts from the scene's own range rather than an empty field.
    if settings.frame_mode == "CUSTOM" and not settings.frame_spec.strip():
        scene = settings.id_data
        try:
            settings.frame_spec = framespec.scene_range(scene.frame_start, scene.frame_end, scene.frame_step)
        except framespec.FrameSpecError:
            settings.frame_spec = f"{max(0, scene.frame_start)}"


class SkyfarmSceneSettings(bpy.types.PropertyGroup):
    backend: EnumProperty(
        name="Backend",
        description="Where the frames are rendered",
        items=[
            ("LOCAL", "Local", "Render with Blender on this machine, through the skyfarm daemon", "DESKTOP", 0),
            ("AWS", "AWS", "Render on AWS Batch in your deployed skyfarm stack", "WORLD", 1),
        ],
        default="LOCAL",
    )
    frame_mode: EnumProperty(
        name="Frames",
        description="Which frames to render",
        items=[
            ("SCENE", "Scene Range", "The scene's frame range, start to end with its frame step"),
            ("CUSTOM", "Custom", "A frame specification such as 1-250, 1-10,20 or 1-100x5"),
        ],
        default="SCENE",
        update=_frame_mode_changed,
    )
    frame_spec: StringProperty(
        name="Frame Spec",
        description="Frames to render: ranges and single frames separated by commas; xN renders every Nth frame",
        default="",
    )
    chunk_size: IntProperty(
        name="Chunk Size",
        description="Frames per render task: larger chunks load the scene less often, smaller ones spread wider",
        default=10,
        min=1,
        max=100000,
        soft_max=500,
    )
    output_folder: StringProperty(
        name="Output Folder",
        description="Folder the rendered frames are written to; empty uses the scene's output path",
        default="",
        subtype="DIR_PATH",
    )
    strict: BoolProperty(
        name="Strict",
        description="Refuse to submit while any file the scene needs is missing (they would render pink or empty)",
        default=False,
    )
    aws_device: EnumProperty(
        name="Device",
        description="Render on CPU or GPU instances",
        items=[("CPU", "CPU", "CPU instances"), ("GPU", "GPU", "GPU instances (Cycles renders on the GPU)")],
        default="CPU",
    )
    aws_market: EnumProperty(
        name="Instances",
        description="Spot instances are cheaper but can be interrupted (interrupted frames are retried)",
        items=[("SPOT", "Spot", "Cheaper, interruptible"), ("ON_DEMAND", "On-Demand", "Never interrupted")],
        default="SPOT",
    )
    aws_blender_version: StringProperty(
        name="Blender Version",
        description="Blender version on the workers; empty uses the version of this Blender",
        default="",
    )
    aws_split: IntProperty(
        name="Split Each Frame",
        description=(
            "Split each frame across N machines: each renders its share of the frame's samples (in Blender "
            "4.2/4.3, a band of its rows) and the farm merges them into one frame (Cycles only; 1 renders "
            "every frame whole)"
        ),
        default=1,
        min=1,
        max=10000,
        soft_max=64,
    )
    aws_notify_email: StringProperty(
        name="Notify Email",
        description="Address that gets a mail when the job finishes or fails; empty sends none",
        default="",
    )
    aws_max_cost: FloatProperty(
        name="Max Cost (USD)",
        description="Budget: warn when the projected cost exceeds it, stop the job and publish the finished "
        "frames when the spend reaches it (estimated from AWS's own prices); 0 sets none",
        default=0.0,
        min=0.0,
        max=1_000_000.0,
        precision=2,
        step=100,
    )


def _progress_percent(job):
    return job.progress * 100.0


def _upload_percent(job):
    return job.upload_progress * 100.0


def _ignore_write(job, value):
    # The daemon decides progress; dragging the bar must not pretend otherwise.
    pass


class SkyfarmJob(bpy.types.PropertyGroup):
    # `name` (inherited from PropertyGroup) holds the job's display name.
    job_id: StringProperty(name="Job ID")
    state: StringProperty(name="State", description="queued, uploading, copying, rendering, publishing, done, failed or canceled")
    backend: StringProperty(name="Backend")
    progress: FloatProperty(name="Progress", description="Share of the job's frames finished, 0 to 1", min=0.0, max=1.0, subtype="FACTOR")
    # Blender 3.x has no progress-bar widget: a read-only percentage slider draws as one.
    progress_percent: FloatProperty(
        name="Progress",
        description="Share of the job's frames finished",
        subtype="PERCENTAGE",
        min=0.0,
        max=100.0,
        precision=0,
        get=_progress_percent,
        set=_ignore_write,
    )
    frames_done: IntProperty(name="Frames Done")
    frames_total: IntProperty(name="Frames Total")
    frames_failed: IntProperty(name="Frames Failed")
    eta: FloatProperty(name="ETA", description="Seconds until the job is expected to finish; -1 when unknown", default=-1.0)
    message: StringProperty(name="Message")
    error_code: StringProperty(name="Error Code")
    error_message: StringProperty(name="Error")
    output: StringProperty(name="Output Folder", subtype="DIR_PATH")
    last_frame: StringProperty(name="Last Frame", description="The latest finished frame on disk", subtype="FILE_PATH")
    frames: StringProperty(name="Frames")
    created_at: StringProperty(name="Created")
    # The scene upload, from upload.progress: live while state is "uploading", then where it ended.
    upload_progress: FloatProperty(
        name="Upload", description="Share of the project's bytes uploaded, 0 to 1", min=0.0, max=1.0, subtype="FACTOR"
    )
    upload_percent: FloatProperty(
        name="Upload",
        description="Share of the project's bytes uploaded",
        subtype="PERCENTAGE",
        min=0.0,
        max=100.0,
        precision=0,
        get=_upload_percent,
        set=_ignore_write,
    )
    upload_files_done: IntProperty(name="Files Uploaded")
    upload_files_total: IntProperty(name="Files to Upload")
    upload_text: StringProperty(name="Upload Status", description="Files, bytes, rate and ETA of the upload")
    upload_short: StringProperty(name="Upload Size", description="Bytes uploaded of the total, e.g. 120/400 MB")


class SkyfarmLiveStatus(bpy.types.PropertyGroup):
    jobs: CollectionProperty(type=SkyfarmJob)
    active_job_index: IntProperty(name="Active Job", default=0)
    connection_state: StringProperty(
        name="Connection",
        description="not_running, connecting, connected, disconnected, unauthorized, incompatible or stopped",
        default="stopped",
    )
    connection_detail: StringProperty(name="Connection Detail")
    daemon_version: StringProperty(name="Daemon Version")
    aws_available: BoolProperty(name="AWS Available")
    aws_reason: StringProperty(name="AWS Status")
    farm: PointerProperty(type=farm_props.SkyfarmFarmStatus)


classes = (SkyfarmSceneSettings, SkyfarmJob, *farm_props.classes, SkyfarmLiveStatus)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.skyfarm = PointerProperty(type=SkyfarmSceneSettings)
    bpy.types.WindowManager.skyfarm = PointerProperty(type=SkyfarmLiveStatus)


def unregister():
    del bpy.types.WindowManager.skyfarm
    del bpy.types.Scene.skyfarm
    _unregister_classes()
