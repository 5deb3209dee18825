"""Add-on preferences: the daemon connection state and how to start the daemon."""

import json
import os
import shlex
import shutil

import bpy
from bpy.props import StringProperty

from . import connection, sync

DEFAULT_COMMAND = "skyfarm"
# Written by `skyfarm addon install`: the absolute command of the CLI that installed this add-on.
INSTALLED_COMMAND_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli_command.json")


def addon_preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def skyfarm_command(context=None):
    prefs = addon_preferences(context)
    command = prefs.skyfarm_command.strip() if prefs else ""
    return command or DEFAULT_COMMAND


def installed_command(path=INSTALLED_COMMAND_FILE):
    """The argv of the CLI that installed this add-on (cli_command.json), or None when there is none
    or its program is gone."""
    try:
        with open(path, encoding="utf-8") as handle:
            argv = json.load(handle).get("argv")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(argv, list) or not argv or not all(isinstance(part, str) and part for part in argv):
        return None
    if not os.path.isfile(argv[0]) or (len(argv) > 1 and os.path.isabs(argv[1]) and not os.path.isfile(argv[1])):
        return None
    return argv


def start_command(context=None):
    """The argv prefix Start Daemon runs: the command set in the preferences, else the CLI that
    installed the add-on, else `skyfarm` on PATH. Raises ValueError saying what is wrong."""
    prefs = addon_preferences(context)
    configured = prefs.skyfarm_command.strip() if prefs else ""
    if configured and configured != DEFAULT_COMMAND:
        return resolve_command(configured)
    installed = installed_command()
    if installed is not None:
        return installed
    return resolve_command(DEFAULT_COMMAND)


def resolve_command(command):
    """The argv prefix for the skyfarm CLI, or raises ValueError saying what is wrong."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise ValueError(f"cannot parse the skyfarm command {command!r}: {error}") from None
    if not argv:
        raise ValueError("the skyfarm command is empty")
    executable = shutil.which(argv[0])
    if executable is None:
        raise ValueError(
            f"{argv[0]!r} was not found on PATH: run `skyfarm addon install` in a terminal, or set the "
            f"full path of the skyfarm command in Preferences > Add-ons > skyfarm"
        )
    return [executable] + argv[1:]


def _stack_name_changed(prefs, context):
    if sync.session is not None and sync.session.status.connected:
        sync.session.farm.forget()
        sync.session.refresh_backends()


def stack_target(context=None):
    """stackName / region / profile for the daemon's stack.* requests, as set in the preferences."""
    prefs = addon_preferences(context)
    if prefs is None:
        return {}
    return {
        "stackName": prefs.aws_stack_name.strip(),
        "region": prefs.aws_region.strip(),
        "profile": prefs.aws_profile.strip(),
    }


class SkyfarmPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    skyfarm_command: StringProperty(
        name="skyfarm Command",
        description=(
            "The skyfarm command line tool used to start the daemon; a bare name is looked up on PATH, "
            "arguments are allowed (e.g. node /path/to/main.js)"
        ),
        default=DEFAULT_COMMAND,
        subtype="FILE_PATH",
    )
    aws_stack_name: StringProperty(
        name="AWS Stack",
        description="Name of the deployed skyfarm CloudFormation stack; empty uses the daemon's default",
        default="",
        update=_stack_name_changed,
    )
    aws_region: StringProperty(
        name="AWS Region",
        description="Region of the skyfarm stack, e.g. eu-central-1; empty uses the daemon's AWS configuration (AWS_REGION, profile)",
        default="",
        update=_stack_name_changed,
    )
    aws_profile: StringProperty(
        name="AWS Profile",
        description="Named profile from ~/.aws/config for deploying and checking the stack; empty uses the daemon's default credentials",
        default="",
        update=_stack_name_changed,
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        draw_connection(layout, context, show_detail=True)
        layout.separator()
        layout.prop(self, "skyfarm_command")
        try:
            argv = start_command(context)
            row = layout.row()
            row.alignment = "RIGHT"
            row.label(text=f"Runs: {' '.join(argv)} daemon start")
        except ValueError as error:
            layout.label(text=str(error), icon="ERROR")
        layout.prop(self, "aws_stack_name")
        layout.prop(self, "aws_region")
        layout.prop(self, "aws_profile")
        col = layout.column(align=True)
        col.label(text=f"Daemon state folder: {sync.state_dir()}")


CONNECTION_ICONS = {
    connection.CONNECTED: "CHECKMARK",
    connection.CONNECTING: "SORTTIME",
    connection.NOT_RUNNING: "ERROR",
    connection.DISCONNECTED: "ERROR",
    connection.UNAUTHORIZED: "LOCKED",
    connection.INCOMPATIBLE: "ERROR",
    connection.STOPPED: "PAUSE",
}


def connection_headline(status):
    """A short user-facing summary of a ConnectionStatus."""
    if status.connected:
        return f"Connected to skyfarm {status.daemon_version}".strip()
    if status.lost:
        return "Disconnected from the daemon: reconnecting"
    return {
        connection.NOT_RUNNING: "The skyfarm daemon is not running",
        connection.CONNECTING: "Connecting to the skyfarm daemon",
        connection.DISCONNECTED: "Cannot reach the skyfarm daemon",
        connection.UNAUTHORIZED: "The daemon refused this add-on's token",
        connection.INCOMPATIBLE: "Add-on and daemon are incompatible",
        connection.STOPPED: "Not connected",
    }.get(status.state, status.state)


def draw_connection(layout, context, show_detail=False):
    """Connection state with a Start/Retry button where it helps; shared by preferences and panels."""
    if sync.session is None:
        layout.label(text="skyfarm is not running in this Blender session", icon="ERROR")
        return
    status = sync.session.status
    box = layout.box()
    row = box.row()
    row.label(text=connection_headline(status), icon=CONNECTION_ICONS.get(status.state, "QUESTION"))
    if not status.connected:
        row.operator("skyfarm.reconnect", text="", icon="FILE_REFRESH")
    if status.detail and (show_detail or not status.connected):
        for line in wrap(status.detail, 70):
            box.label(text=line)
    if status.update_hint:
        for index, line in enumerate(wrap(status.update_hint, 70)):
            box.label(text=line, icon="ERROR" if index == 0 else "BLANK1")
    if status.state in (connection.NOT_RUNNING, connection.DISCONNECTED) or (status.lost and not status.connected):
        box.operator("skyfarm.start_daemon", icon="PLAY")


def wrap(text, width):
    """Splits a long message over several labels, as Blender labels do not wrap."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


classes = (SkyfarmPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
