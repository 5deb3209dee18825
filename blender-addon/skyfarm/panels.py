"""Panels in Properties > Output: submit settings with the Render button, and live job status."""

import bpy

from . import cost, dependencies, framespec, operators, preferences, state, submission, sync
from . import session as session_module

STATE_ICONS = {
    "queued": "SORTTIME",
    "uploading": "EXPORT",
    "copying": "COPYDOWN",
    "rendering": "RENDER_ANIMATION",
    "publishing": "IMPORT",
    "done": "CHECKMARK",
    "failed": "ERROR",
    "canceled": "X",
}
MAX_LISTED_FILES = 12


class OutputPropertiesPanel:
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "skyfarm")


def _label_lines(layout, text, icon="NONE", width=60):
    for index, line in enumerate(preferences.wrap(text, width)):
        layout.label(text=line, icon=icon if index == 0 else "BLANK1")


class SKYFARM_PT_submit(OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "skyfarm"

    def draw_header(self, context):
        self.layout.label(text="", icon="RENDER_ANIMATION")

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.skyfarm
        session = sync.session
        if session is None or not session.status.connected or session.status.update_hint:
            preferences.draw_connection(layout, context)

        layout.use_property_split = True
        layout.use_property_decorate = False

        row = layout.row(align=True)
        row.use_property_split = False
        split = row.split(factor=0.4, align=True)
        label_side = split.row()
        label_side.alignment = "RIGHT"
        label_side.label(text="Backend")
        buttons = split.row(align=True)
        buttons.prop_enum(settings, "backend", "LOCAL")
        aws_button = buttons.row(align=True)
        aws_ready = session is not None and session.aws.available
        aws_button.enabled = aws_ready or settings.backend == "AWS"
        aws_button.prop_enum(settings, "backend", "AWS")
        if not aws_ready:
            reason_row = layout.row()
            reason_split = reason_row.split(factor=0.4)
            reason_split.label(text="")
            reason = session.aws.reason if session is not None else "not connected"
            inner = reason_split.row()
            inner.active = False
            inner.label(text=f"AWS: {reason}", icon="INFO")
            if session is not None and session.status.connected:
                inner.operator("skyfarm.refresh_backends", text="", icon="FILE_REFRESH")

        facts = operators.scene_facts(scene)
        submit = operators.submit_settings(scene, context)

        layout.prop(settings, "frame_mode", expand=True)
        if settings.frame_mode == "CUSTOM":
            column = layout.column()
            problem = framespec.validate(settings.frame_spec)
            column.alert = problem is not None
            column.prop(settings, "frame_spec", text="Frame Spec")
            if problem:
                _hint(layout, problem, "ERROR", alert=True)
            else:
                _hint(layout, f"{framespec.parse(settings.frame_spec).count} frames")
        else:
            try:
                spec = submission.frames(facts, submit)
                _hint(layout, f"{spec} ({framespec.parse(spec).count} frames)")
            except submission.SubmitProblem as problem:
                _hint(layout, str(problem), "ERROR", alert=True)

        layout.prop(settings, "chunk_size")
        layout.prop(settings, "output_folder", text="Output")
        try:
            folder = submission.output_folder(facts, submit)
            if not settings.output_folder.strip():
                _hint(layout, f"Scene output: {folder}")
        except submission.SubmitProblem as problem:
            _hint(layout, str(problem), "ERROR", alert=True)

        layout.prop(settings, "strict")
        missing = dependencies.missing(dependencies.recent())
        if missing:
            summary = submission.missing_summary([d.path for d in missing], facts.blend_path)
            _hint(layout, f"{summary} (see Files below)", "ERROR", alert=True)

        layout.separator()
        row = layout.row()
        row.scale_y = 1.6
        row.operator("skyfarm.render", text="Render on skyfarm", icon="RENDER_ANIMATION")
        blocker = operators.render_blocker(context)
        if blocker and session is not None and session.status.connected:
            _label_lines(layout.column(align=True), blocker, icon="INFO")


def _hint(layout, text, icon="NONE", alert=False):
    """A note under a field, aligned with the field's value column like Blender's own hints."""
    row = layout.row()
    split = row.split(factor=0.4)
    split.label(text="")
    column = split.column(align=True)
    column.alert = alert
    if not alert:
        column.active = False
    _label_lines(column, text, icon=icon, width=48)


class SKYFARM_PT_submit_aws(OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "AWS"
    bl_parent_id = "SKYFARM_PT_submit"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.skyfarm
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.active = settings.backend == "AWS"
        layout.prop(settings, "aws_device")
        layout.prop(settings, "aws_market")
        layout.prop(settings, "aws_blender_version", text="Blender Version")
        layout.prop(settings, "aws_split", text="Split Each Frame Across")
        if settings.aws_split > 1:
            _hint(layout, f"{settings.aws_split} machines per frame, merged on the farm (Cycles)")
        if not settings.aws_blender_version.strip():
            _hint(layout, f"Same as this Blender ({bpy.app.version_string.split(' ')[0]})")
        layout.prop(settings, "aws_notify_email")
        layout.prop(settings, "aws_max_cost")
        if settings.aws_max_cost <= 0:
            _hint(layout, "No budget: the cost is shown while it runs")
        session = sync.session
        if settings.backend == "AWS" and session is not None and session.status.connected:
            # One cost.queue request per change of farm, device or market; the answer redraws the panel.
            session.queue_price.ask(
                operators.stack_name(preferences.addon_preferences(context)),
                settings.aws_device.lower(),
                settings.aws_market.lower().replace("_", "-"),
            )
            text, warn = session.queue_price.line()
            if text:
                _hint(layout, text, alert=warn)


class SKYFARM_PT_submit_files(OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "Files"
    bl_parent_id = "SKYFARM_PT_submit"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        found = dependencies.recent()
        missing = dependencies.missing(found)
        self.layout.label(text=f"{len(found)}", icon="ERROR" if missing else "FILE")

    def draw(self, context):
        layout = self.layout
        found = dependencies.recent()
        missing = dependencies.missing(found)
        blend_path = bpy.data.filepath
        row = layout.row()
        row.label(text=f"{len(found)} files besides the .blend, {len(missing)} missing")
        row.operator("skyfarm.refresh_dependencies", text="", icon="FILE_REFRESH")
        if missing:
            box = layout.box()
            box.alert = True
            if context.scene.skyfarm.strict:
                box.label(text="Missing (Strict is on: Render refuses until they are found):", icon="ERROR")
            else:
                box.label(text="Missing (the render goes ahead without them):", icon="ERROR")
            for dependency in missing[:MAX_LISTED_FILES]:
                box.label(text=submission.display_path(dependency.path, blend_path), icon="BLANK1")
            if len(missing) > MAX_LISTED_FILES:
                box.label(text=f"… and {len(missing) - MAX_LISTED_FILES} more", icon="BLANK1")
        present = [dependency for dependency in found if not dependency.missing]
        if present:
            column = layout.column(align=True)
            column.active = False
            for dependency in present[:MAX_LISTED_FILES]:
                column.label(text=submission.display_path(dependency.path, blend_path), icon=_kind_icon(dependency.kind))
            if len(present) > MAX_LISTED_FILES:
                column.label(text=f"… and {len(present) - MAX_LISTED_FILES} more")


def _kind_icon(kind):
    return {
        "image": "IMAGE_DATA",
        "library": "LINK_BLEND",
        "movieclip": "FILE_MOVIE",
        "sound": "FILE_SOUND",
        "font": "FILE_FONT",
        "volume": "VOLUME_DATA",
        "cache": "FILE_CACHE",
        "text": "FILE_SCRIPT",
    }.get(kind, "FILE")


class SKYFARM_UL_jobs(bpy.types.UIList):
    """Jobs newest first, filterable by name like Blender's own lists."""

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        helpers = bpy.types.UI_UL_list
        flags = helpers.filter_items_by_name(self.filter_name, self.bitflag_filter_item, items, "name") if self.filter_name else []
        # The collection grows in arrival order; show the newest job on top.
        newest_first = sorted(range(len(items)), key=lambda i: (items[i].created_at, items[i].job_id), reverse=True)
        order = [0] * len(items)
        for position, item_index in enumerate(newest_first):
            order[item_index] = position
        return flags, order

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        if self.layout_type in {"DEFAULT", "COMPACT"}:
            split = layout.split(factor=0.5)
            split.label(text=item.name, icon=STATE_ICONS.get(item.state, "QUESTION"))
            right = split.split(factor=0.6)
            if item.state == "uploading" and item.upload_files_total:
                # While the scene uploads, the row's bar is the upload's bytes.
                right.prop(item, "upload_percent", text=item.upload_short, slider=True)
            else:
                # The bar counts the frames rendering now by their samples; the ETA follows them.
                text = f"{item.frames_done}/{item.frames_total}"
                if item.eta >= 0 and item.state not in state.FINISHED_STATES:
                    text += f" · {state.format_eta(item.eta)}"
                job = sync.job_view(item.job_id)
                spent = cost.short(job) if job is not None else ""
                if spent:
                    text += f" · {spent}"
                right.prop(item, "progress_percent", text=text, slider=True)
            right.label(text=item.state.capitalize())
        else:
            layout.alignment = "CENTER"
            layout.label(text="", icon=STATE_ICONS.get(item.state, "QUESTION"))


class SKYFARM_PT_jobs(OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "skyfarm Jobs"

    def draw_header(self, context):
        self.layout.label(text="", icon="SEQ_STRIP_DUPLICATE")

    def draw(self, context):
        layout = self.layout
        live = context.window_manager.skyfarm
        session = sync.session
        if session is not None:
            status = session.status
            row = layout.row()
            row.active = status.connected
            row.label(text=preferences.connection_headline(status), icon=preferences.CONNECTION_ICONS.get(status.state, "QUESTION"))
            if not status.connected:
                row.operator("skyfarm.reconnect", text="", icon="FILE_REFRESH")
        if not live.jobs:
            layout.label(text="No jobs yet: press Render on skyfarm above, or run `skyfarm render`")
            return
        layout.template_list("SKYFARM_UL_jobs", "", live, "jobs", live, "active_job_index", rows=3)
        if not 0 <= live.active_job_index < len(live.jobs):
            return
        draw_job(layout, live.jobs[live.active_job_index], connected=session is not None and session.status.connected)


def _bar(layout, item, factor_name, percent_name, text):
    if hasattr(layout, "progress"):  # Blender 4.0+ has a real progress bar.
        layout.progress(factor=getattr(item, factor_name), type="BAR", text=text)
    else:  # Blender 3.x: a read-only percentage slider draws as one.
        layout.prop(item, percent_name, text=text, slider=True)


def _draw_upload(box, item):
    """The scene upload: a bar for the bytes, then files · bytes · rate · ETA (live from upload.progress)."""
    if not item.upload_files_total:
        row = box.row()
        row.active = False
        row.label(text="Uploading: collecting and hashing the scene's files…", icon="EXPORT")
        return
    _bar(box, item, "upload_progress", "upload_percent", f"Uploading {item.upload_short}")
    box.label(text=item.upload_text, icon="EXPORT")


def draw_job(layout, item, connected):
    box = layout.box()
    header = box.row()
    header.label(text=item.name, icon=STATE_ICONS.get(item.state, "QUESTION"))
    state_label = header.row()
    state_label.alignment = "RIGHT"
    state_label.label(text=item.state.capitalize())

    if item.state == "uploading":
        _draw_upload(box, item)
    else:
        frames_text = f"{item.frames_done}/{item.frames_total} frames"
        if item.frames_failed:
            frames_text += f", {item.frames_failed} failed"
        _bar(box, item, "progress", "progress_percent", frames_text)

    details = box.column(align=True)
    job = sync.job_view(item.job_id)
    if item.upload_files_total and job is not None and session_module.upload_stopped(job):
        stopped = details.row()
        stopped.alert = item.state == "failed"
        ended = "canceled" if item.state == "canceled" else "failed"
        stopped.label(
            text=f"Upload {ended} at {item.upload_files_done}/{item.upload_files_total} files · {item.upload_short}",
            icon="EXPORT",
        )
    # "frame 12: 340/1024 samples · ETA 41 min 05 s" while a frame renders, else the ETA alone.
    live = state.live_label(job) if job is not None else ""
    if live:
        details.label(text=live, icon="RENDER_STILL" if job.get("live") else "TIME")
    elif item.eta >= 0 and item.state not in state.FINISHED_STATES:
        details.label(text=f"ETA {state.format_eta(item.eta)}", icon="TIME")
    if item.message:
        _label_lines(details, item.message, icon="INFO", width=70)
    # AWS jobs: "≈ $0.42 so far · projected ≈ $1.10 · budget $2.00 (c6i.xlarge spot ×3)", or why unknown.
    cost_text, cost_warning = cost.detail(job) if job is not None else ("", False)
    if cost_text:
        spend = details.column(align=True)
        spend.alert = cost_warning
        _label_lines(spend, cost_text, icon="FUND", width=70)
    if item.error_message:
        errors = details.column(align=True)
        errors.alert = True
        _label_lines(errors, f"{item.error_message} [{item.error_code}]", icon="ERROR", width=70)
    meta = details.row()
    meta.active = False
    meta.label(text=f"{item.backend.upper()} · frames {item.frames} · {item.job_id}")

    buttons = box.row(align=True)
    cancel = buttons.row(align=True)
    cancel.enabled = connected and item.state not in state.FINISHED_STATES
    cancel.operator("skyfarm.cancel", text="Cancel", icon="CANCEL").job_id = item.job_id
    buttons.operator("skyfarm.open_output", text="Open Output", icon="FILE_FOLDER").job_id = item.job_id
    last = buttons.row(align=True)
    last.enabled = bool(item.last_frame)
    last.operator("skyfarm.show_last_frame", text="Show Last Frame", icon="IMAGE_DATA").job_id = item.job_id


classes = (SKYFARM_PT_submit, SKYFARM_PT_submit_aws, SKYFARM_PT_submit_files, SKYFARM_UL_jobs, SKYFARM_PT_jobs)
register, unregister = bpy.utils.register_classes_factory(classes)
