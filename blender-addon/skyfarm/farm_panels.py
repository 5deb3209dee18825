"""The skyfarm Farm panel in Properties > Output: the AWS stack's status, Deploy / Update, live events."""

import bpy

from . import farm, farm_props, panels, preferences, sync

EVENT_ROWS = 6


def _label_lines(layout, text, icon="NONE", width=70):
    for index, line in enumerate(preferences.wrap(text, width)):
        layout.label(text=line, icon=icon if index == 0 else "BLANK1")


def _field(layout, label, factor=0.3):
    """A label column and a value column like use_property_split, for read-only values."""
    split = layout.split(factor=factor)
    left = split.row()
    left.alignment = "RIGHT"
    left.label(text=label)
    return split.row()


class SKYFARM_PT_farm(panels.OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "skyfarm Farm"

    def draw_header(self, context):
        self.layout.label(text="", icon="WORLD")

    def draw_header_preset(self, context):
        live = context.window_manager.skyfarm.farm
        row = self.layout.row()
        row.alert = live.status_alert
        row.label(text=live.status_text, icon=live.status_icon or "QUESTION")

    def draw(self, context):
        layout = self.layout
        live = context.window_manager.skyfarm.farm
        session = sync.session
        if session is None:
            layout.label(text="skyfarm is not running in this Blender session", icon="ERROR")
            return
        state = session.farm
        if state.needs_check():
            # The first look at the panel on a connection asks CloudFormation (once, asynchronously).
            session.check_stack()

        stack_row = _field(layout, "Stack")
        stack_row.label(text=live.stack_name + (f"  ·  {live.region}" if live.region else ""), icon="WORLD_DATA")
        stack_row.operator("skyfarm.refresh_stack", text="", icon="FILE_REFRESH")

        status_row = _field(layout, "Status")
        status_column = status_row.column(align=True)
        status_column.alert = live.status_alert
        status_column.label(text=live.status_text, icon=live.status_icon or "QUESTION")
        if live.status_detail:
            detail = status_column.column(align=True)
            detail.active = live.status_alert
            _label_lines(detail, live.status_detail, icon="BLANK1", width=70)

        if live.busy:
            what = "Deploying" if live.operation == "deploy" else "Destroying"
            progress = _field(layout, "")
            progress.label(
                text=f"{what}: {farm.format_duration(state.elapsed())}, {len(live.events)} events so far (see Events)",
                icon="SORTTIME",
            )

        rows = farm.key_outputs({item.name: item.value for item in live.outputs}) if live.status else []
        if rows:
            column = layout.column(align=True)
            for label, value in rows:
                value_row = _field(column, label)
                value_row.active = False
                value_row.label(text=value)

        if live.outcome:
            box = layout.box()
            box.alert = live.outcome_level == "ERROR"
            icon = {"ERROR": "ERROR", "WARNING": "ERROR"}.get(live.outcome_level, "CHECKMARK")
            _label_lines(box.column(align=True), live.outcome, icon=icon, width=90)

        deploy = state.deploy_button()
        destroy = state.destroy_button()
        row = layout.row(align=True)
        row.scale_y = 1.4
        main = row.row(align=True)
        main.operator("skyfarm.deploy_stack", text=deploy.label, icon=deploy.icon)
        row.operator("skyfarm.destroy_stack", text="", icon="TRASH")
        if not deploy.enabled and session.status.connected and not live.busy:
            hint = layout.row()
            hint.active = False
            _label_lines(hint.column(align=True), deploy.reason, icon="INFO", width=90)


class SKYFARM_UL_stack_events(bpy.types.UIList):
    """Stack events, newest on top; failures in red."""

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        helpers = bpy.types.UI_UL_list
        flags = helpers.filter_items_by_name(self.filter_name, self.bitflag_filter_item, items, "name") if self.filter_name else []
        count = len(items)
        return flags, [count - 1 - index for index in range(count)]

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        if self.layout_type in {"DEFAULT", "COMPACT"}:
            row = layout.row()
            row.alert = item.failed
            split = row.split(factor=0.3)
            split.label(text=item.name, icon=farm.event_icon(item.status))
            right = split.split(factor=0.45)
            right.label(text=item.status)
            rest = right.row()
            rest.active = item.failed
            rest.label(text=item.reason if item.failed else f"{farm.clock(item.timestamp)}  {farm.short_type(item.resource_type)}")
        else:
            layout.alignment = "CENTER"
            layout.label(text="", icon=farm.event_icon(item.status))


class SKYFARM_PT_farm_events(panels.OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "Events"
    bl_parent_id = "SKYFARM_PT_farm"

    def draw_header(self, context):
        live = context.window_manager.skyfarm.farm
        failed = sum(1 for item in live.events if item.failed)
        self.layout.label(text=f"{len(live.events)}", icon="ERROR" if failed else "TEXT")

    def draw(self, context):
        layout = self.layout
        live = context.window_manager.skyfarm.farm
        if not live.events:
            row = layout.row()
            row.active = False
            row.label(text="No stack events yet: they appear here while the stack is deployed or changed")
            return
        layout.template_list("SKYFARM_UL_stack_events", "", live, "events", live, "active_event_index", rows=EVENT_ROWS)
        if 0 <= live.active_event_index < len(live.events):
            item = live.events[live.active_event_index]
            box = layout.box()
            column = box.column(align=True)
            column.alert = item.failed
            column.label(text=f"{item.name} ({item.resource_type})", icon=farm.event_icon(item.status))
            _label_lines(column, f"{item.status} at {farm.clock(item.timestamp)} UTC", icon="BLANK1")
            if item.reason:
                _label_lines(column, item.reason, icon="BLANK1", width=90)


class SKYFARM_PT_farm_outputs(panels.OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "Outputs"
    bl_parent_id = "SKYFARM_PT_farm"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.label(text=f"{len(context.window_manager.skyfarm.farm.outputs)}")

    def draw(self, context):
        layout = self.layout
        live = context.window_manager.skyfarm.farm
        if not live.outputs:
            row = layout.row()
            row.active = False
            row.label(text="No outputs: the stack is not deployed (or not finished)")
            return
        column = layout.column(align=True)
        for item in live.outputs:
            row = _field(column, item.name, factor=0.3)
            row.active = False
            row.label(text=item.value)


class SKYFARM_PT_farm_settings(panels.OutputPropertiesPanel, bpy.types.Panel):
    bl_label = "Settings"
    bl_parent_id = "SKYFARM_PT_farm"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        prefs = preferences.addon_preferences(context)
        if prefs is None:
            return
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(prefs, "aws_stack_name", text="Stack Name")
        layout.prop(prefs, "aws_region", text="Region")
        layout.prop(prefs, "aws_profile", text="Profile")
        hint = layout.row()
        hint.active = False
        _label_lines(
            hint.column(align=True),
            f"Empty: stack \"{farm.DEFAULT_STACK_NAME}\", the daemon's AWS region and credentials. Saved with the add-on's preferences.",
            width=90,
        )


classes = (SKYFARM_PT_farm, SKYFARM_UL_stack_events, SKYFARM_PT_farm_events, SKYFARM_PT_farm_outputs, SKYFARM_PT_farm_settings)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def _tick_elapsed():
    """While a deploy runs, redraw once a second so its elapsed time moves between stack events
    (CloudFormation can be silent for minutes while it creates compute environments)."""
    if sync.session is not None and sync.session.farm.busy:
        sync.request_redraw()
    return 1.0


def register():
    farm_props.reset()
    _register()
    bpy.app.timers.register(_tick_elapsed, first_interval=1.0, persistent=True)


def unregister():
    if bpy.app.timers.is_registered(_tick_elapsed):
        bpy.app.timers.unregister(_tick_elapsed)
    _unregister()
