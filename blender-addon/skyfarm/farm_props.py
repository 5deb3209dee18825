"""WindowManager.skyfarm.farm: the AWS stack's live status, mirrored from session.farm on the main thread.

Scripts read the same the Farm panel shows:

    farm = bpy.context.window_manager.skyfarm.farm
    farm.status, farm.status_text, farm.busy, [(o.name, o.value) for o in farm.outputs]
    [(e.resource, e.status, e.reason) for e in farm.events]   # oldest first, the latest MAX_EVENTS
"""

import bpy
from bpy.props import BoolProperty, CollectionProperty, IntProperty, StringProperty

from . import farm


class SkyfarmStackEvent(bpy.types.PropertyGroup):
    # `name` (inherited) holds the logical resource id, so the list can filter by it.
    resource_type: StringProperty(name="Resource Type", description="e.g. AWS::S3::Bucket")
    status: StringProperty(name="Status", description="e.g. CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED")
    reason: StringProperty(name="Reason", description="CloudFormation's status reason")
    timestamp: StringProperty(name="Time", description="When CloudFormation recorded the event (UTC, ISO 8601)")
    failed: BoolProperty(name="Failed", description="The resource's operation failed")

    @property
    def resource(self):
        return self.name


class SkyfarmStackOutput(bpy.types.PropertyGroup):
    # `name` (inherited) holds the output key, e.g. BucketName.
    value: StringProperty(name="Value")


class SkyfarmFarmStatus(bpy.types.PropertyGroup):
    stack_name: StringProperty(name="Stack", description="The CloudFormation stack the Farm panel follows")
    region: StringProperty(name="Region")
    status: StringProperty(
        name="Stack Status",
        description="CloudFormation status (CREATE_COMPLETE, UPDATE_IN_PROGRESS, ROLLBACK_COMPLETE, …); empty when there is no stack or it is unknown",
    )
    status_text: StringProperty(name="Status", description="The status in words: Ready, Creating…, Not deployed, No AWS credentials, …")
    status_detail: StringProperty(name="Status Detail", description="The CloudFormation status and reason, or the daemon's message")
    status_icon: StringProperty(name="Status Icon", default="QUESTION")
    status_alert: BoolProperty(name="Status Is a Problem")
    error_code: StringProperty(name="Error Code", description="The daemon's error code for the last stack check (STACK_NOT_FOUND, AWS_NO_CREDENTIALS, …)")
    error_message: StringProperty(name="Error")
    busy: BoolProperty(name="Busy", description="A deploy or destroy pressed in Blender is running")
    operation: StringProperty(name="Operation", description="deploy or destroy while busy")
    ready: BoolProperty(name="Ready", description="The stack exists and can take render jobs")
    events: CollectionProperty(type=SkyfarmStackEvent)
    active_event_index: IntProperty(name="Active Event", default=-1)
    outputs: CollectionProperty(type=SkyfarmStackOutput)
    outcome_level: StringProperty(name="Outcome Level", description="INFO, WARNING or ERROR")
    outcome: StringProperty(name="Outcome", description="How the last deploy or destroy pressed in Blender ended")


classes = (SkyfarmStackEvent, SkyfarmStackOutput, SkyfarmFarmStatus)

_mirrored = {"revision": None, "generation": None, "seen": 0, "outputs": None}


def _assign(target, name, value):
    if getattr(target, name) != value:
        setattr(target, name, value)


def mirror(target, state, force=False):
    """Copies session.farm into WindowManager.skyfarm.farm, appending only the events that are new."""
    if state.revision == _mirrored["revision"] and not force:
        return
    view = state.status_view()
    _assign(target, "stack_name", state.stack_name)
    _assign(target, "region", state.region)
    _assign(target, "status", state.status)
    _assign(target, "status_text", view.headline)
    _assign(target, "status_detail", view.detail)
    _assign(target, "status_icon", view.icon)
    _assign(target, "status_alert", view.alert)
    code, message = state.error or ("", "")
    _assign(target, "error_code", code)
    _assign(target, "error_message", message)
    _assign(target, "busy", state.busy)
    _assign(target, "operation", state.operation or "")
    _assign(target, "ready", state.status in farm.READY_STATUSES)
    outcome = state.outcome
    _assign(target, "outcome_level", outcome.level if outcome else "")
    _assign(target, "outcome", outcome.text if outcome else "")

    outputs = (state.stack or {}).get("outputs") or {}
    if force or outputs is not _mirrored["outputs"] or len(target.outputs) != len(outputs):
        target.outputs.clear()
        for key in sorted(outputs):
            item = target.outputs.add()
            item.name = key
            item.value = outputs[key]
        _mirrored["outputs"] = outputs

    events = target.events
    fresh = state.events_seen - _mirrored["seen"]
    if force or state.events_generation != _mirrored["generation"] or fresh < 0 or len(events) > len(state.events):
        events.clear()
        fresh = len(state.events)
    fresh = min(fresh, len(state.events))
    if fresh:
        # Follow the newest event unless the user picked an older one to read.
        follow = target.active_event_index < 0 or target.active_event_index >= len(events) - 1
        for event in list(state.events)[-fresh:]:
            item = events.add()
            item.name = event["resource"]
            item.resource_type = event["resourceType"]
            item.status = event["status"]
            item.reason = event["reason"]
            item.timestamp = event["timestamp"]
            item.failed = farm.is_failure(event["status"])
        removed = 0
        while len(events) > farm.MAX_EVENTS:
            events.remove(0)
            removed += 1
        target.active_event_index = len(events) - 1 if follow else max(0, target.active_event_index - removed)
    if not events:
        target.active_event_index = -1
    _mirrored.update(revision=state.revision, generation=state.events_generation, seen=state.events_seen)


def reset():
    """The next mirror starts from scratch (add-on restart, or a file brought its own window manager)."""
    _mirrored.update(revision=None, generation=None, seen=0, outputs=None)
