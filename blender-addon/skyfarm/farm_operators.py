"""Operators of the Farm panel: Deploy / Update the AWS stack, Destroy it, Refresh its status.

Each one only sends a request and returns at once: the daemon runs CloudFormation and streams the
stack events, which the session folds into session.farm and the timer mirrors into the panel.
"""

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import farm, preferences, sync


def farm_state():
    return sync.session.farm if sync.session is not None else None


def _label_lines(layout, text, icon="NONE", width=64):
    for index, line in enumerate(preferences.wrap(text, width)):
        layout.label(text=line, icon=icon if index == 0 else "BLANK1")


def _where(state):
    return f"stack {state.stack_name}" + (f" in {state.region}" if state.region else "")


def _poll_button(operator, button_of):
    """Enabled as the Farm state's button says; Blender shows the reason as the disabled tooltip."""
    state = farm_state()
    if state is None:
        operator.poll_message_set("The skyfarm add-on is not running")
        return False
    button = button_of(state)
    if not button.enabled:
        operator.poll_message_set(button.reason)
    return button.enabled


class SKYFARM_OT_deploy_stack(bpy.types.Operator):
    """Create the skyfarm stack in your AWS account, or update it to this skyfarm version's template"""

    bl_idname = "skyfarm.deploy_stack"
    bl_label = "Deploy Stack"
    bl_options = {"REGISTER"}

    gpu: BoolProperty(
        name="GPU",
        description="Also create the GPU compute environments and queues (g4dn, g5, g6 instances); unset keeps the stack's choice",
        default=False,
    )
    max_vcpus: IntProperty(
        name="Max vCPUs",
        description="Most vCPUs each compute environment may run at once; 0 keeps the stack's limit (256 for a new stack)",
        default=0,
        min=0,
        max=10000,
        soft_max=4096,
    )
    notify_email: StringProperty(
        name="Notify Email",
        description="SES-verified address that sends and receives the job mails; empty sends none; unset keeps the stack's",
        default="",
    )

    @classmethod
    def poll(cls, context):
        return _poll_button(cls, lambda state: state.deploy_button())

    @classmethod
    def description(cls, context, properties):
        state = farm_state()
        return state.deploy_button().reason if state is not None else cls.__doc__

    def invoke(self, context, event):
        state = farm_state()
        outputs = (state.stack or {}).get("outputs") or {}
        # Start from what the stack has, so an Update changes only what the user changes here.
        self.gpu = outputs.get("GpuEnabled") == "true"
        self.notify_email = outputs.get("NotifyEmail", "")
        self.max_vcpus = 0
        return context.window_manager.invoke_props_dialog(self, width=460)

    def draw(self, context):
        layout = self.layout
        state = farm_state()
        if state is None:
            return
        button = state.deploy_button()
        column = layout.column(align=True)
        if state.exists and state.status not in farm.RECREATE_STATUSES:
            _label_lines(column, f"{button.label}: {_where(state)} gets this skyfarm version's template.", "FILE_REFRESH")
            _label_lines(column, "Settings you leave as they are stay as they are.", "BLANK1")
        else:
            if state.status in farm.RECREATE_STATUSES:
                _label_lines(column, f"{_where(state)} is {state.status}: it is deleted and created again.", "ERROR")
            _label_lines(
                column,
                f"Creates AWS resources in your account ({_where(state)}): a VPC, an S3 bucket, EFS, AWS Batch "
                "queues, an ECR repository and IAM roles. Idle, they cost almost nothing; renders are billed by AWS.",
                "INFO",
            )
        layout.separator()
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(self, "gpu", text="GPU Queues")
        layout.prop(self, "max_vcpus")
        if self.max_vcpus == 0:
            hint = layout.split(factor=0.4)
            hint.label(text="")
            note = hint.row()
            note.active = False
            note.label(text="0 keeps the stack's limit (256 for a new stack)")
        layout.prop(self, "notify_email")

    def execute(self, context):
        state = farm_state()
        if state is None:
            self.report({"ERROR"}, "skyfarm: the add-on is not running")
            return {"CANCELLED"}
        # A script that leaves a setting unset keeps the stack's value (the CLI's flags work alike).
        gpu = self.gpu if self.properties.is_property_set("gpu") else None
        email = self.notify_email if self.properties.is_property_set("notify_email") else None
        try:
            state.deploy(gpu=gpu, max_vcpus=self.max_vcpus or None, notify_email=email)
        except ValueError as error:
            self.report({"ERROR"}, f"skyfarm: cannot deploy: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"skyfarm: deploying {_where(state)}; follow it in Output > skyfarm Farm")
        sync.request_redraw()
        return {"FINISHED"}


class SKYFARM_OT_destroy_stack(bpy.types.Operator):
    """Delete the skyfarm stack and every file in its bucket (uploaded scenes and rendered frames)"""

    bl_idname = "skyfarm.destroy_stack"
    bl_label = "Destroy Stack"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return _poll_button(cls, lambda state: state.destroy_button())

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self, width=460)

    def draw(self, context):
        state = farm_state()
        if state is None:
            return
        bucket = ((state.stack or {}).get("outputs") or {}).get("BucketName")
        column = self.layout.column(align=True)
        column.alert = True
        _label_lines(column, f"Deletes {_where(state)} and all its AWS resources.", "ERROR")
        where = f"s3://{bucket}" if bucket else "its bucket"
        _label_lines(column, f"The bucket {where} is emptied first: uploaded scenes and rendered frames are gone for good.", "BLANK1")
        _label_lines(column, "Frames already downloaded to this computer stay.", "BLANK1")

    def execute(self, context):
        state = farm_state()
        if state is None:
            return {"CANCELLED"}
        try:
            state.destroy()
        except ValueError as error:
            self.report({"ERROR"}, f"skyfarm: cannot destroy: {error}")
            return {"CANCELLED"}
        self.report({"WARNING"}, f"skyfarm: emptying the bucket and deleting {_where(state)}")
        sync.request_redraw()
        return {"FINISHED"}


class SKYFARM_OT_refresh_stack(bpy.types.Operator):
    """Ask CloudFormation (through the daemon) for the stack's status and outputs now"""

    bl_idname = "skyfarm.refresh_stack"
    bl_label = "Refresh Stack Status"

    @classmethod
    def poll(cls, context):
        session = sync.session
        if session is None or not session.status.connected:
            cls.poll_message_set("Not connected to the skyfarm daemon")
            return False
        if session.farm.checking:
            cls.poll_message_set("Already asking")
            return False
        return True

    def execute(self, context):
        sync.session.check_stack()
        sync.request_redraw()
        return {"FINISHED"}


classes = (SKYFARM_OT_deploy_stack, SKYFARM_OT_destroy_stack, SKYFARM_OT_refresh_stack)
register, unregister = bpy.utils.register_classes_factory(classes)
