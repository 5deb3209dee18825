"""`blender -b`: a render the daemon refuses because its Blender is older than this one (the copy
the add-on saves is this Blender's file) shows the daemon's message and code, BLEND_TOO_NEW."""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()


def scenario():
    support.enable_addon(ARGS)
    from skyfarm import sync

    support.pump(30, lambda: bpy.context.window_manager.skyfarm.connection_state == "connected", "the connection")
    support.pump(15, lambda: sync.session.local.available, "the local backend")
    bpy.context.scene.skyfarm.output_folder = ARGS["outputDir"]
    before = sync.session.jobs.ids()
    result = bpy.ops.skyfarm.render()
    check(result == {"FINISHED"}, f"render returned {result}")

    def refused():
        return [text for level, text in sync.reported if level == "ERROR" and "refused" in text]

    support.pump(120, refused, "the daemon's refusal")
    message = refused()[0]
    log(f"shown: {message}")
    check("[BLEND_TOO_NEW]" in message, f"the code is shown: {message}")
    check(f"was saved by Blender {ARGS['saved']};" in message, f"the file's Blender is named: {message}")
    check(f"is {ARGS['daemonBlender']}, which cannot open it" in message, f"the daemon's Blender is named: {message}")
    check("Set SKYFARM_BLENDER" in message, f"what to do: {message}")
    check(sync.session.jobs.ids() == before, "no job was created")


support.run_in_background(scenario)
