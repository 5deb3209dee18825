"""Run in `blender -b` (without --factory-startup) after `blender --command extension install-file
-r user_default -e skyfarm-addon.zip`: the extension must be enabled from the saved preferences,
registered (operators, properties, panels) and its panels must draw without errors."""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layout_recorder  # noqa: E402
import support  # noqa: E402


def scenario():
    name = "bl_ext.user_default.skyfarm"
    support.check(name in bpy.context.preferences.addons, f"not enabled: {list(bpy.context.preferences.addons.keys())}")
    module = sys.modules[name]
    print("SKYFARM_EXTENSION_ENABLED", name, module.__file__, flush=True)
    support.check(hasattr(bpy.types.WindowManager, "skyfarm"), "WindowManager.skyfarm is not registered")
    support.check(bpy.context.scene.skyfarm.backend == "LOCAL", "Scene.skyfarm is not registered")
    support.check("render" in dir(bpy.ops.skyfarm), "bpy.ops.skyfarm.render is not registered")
    panels = sys.modules[f"{name}.panels"]
    for panel in (panels.SKYFARM_PT_submit, panels.SKYFARM_PT_jobs):
        support.check(panel.is_registered, f"{panel.__name__} is not registered")
        support.check(panel.poll(bpy.context), f"{panel.__name__} does not show in the Output tab")
    drawn = layout_recorder.draw_panel(panels.SKYFARM_PT_submit, bpy.context)
    print("SKYFARM_EXTENSION_PANEL", [item.get("text") for item in drawn if item["kind"] == "operator"], flush=True)
    drawn = layout_recorder.draw_panel(panels.SKYFARM_PT_jobs, bpy.context)
    print("SKYFARM_EXTENSION_JOBS", layout_recorder.text_of(drawn), flush=True)
    # The AWS sub-panel's split and budget settings, as this Blender draws them.
    settings = bpy.context.scene.skyfarm
    settings.backend, settings.aws_split, settings.aws_max_cost = "AWS", 4, 12.5
    drawn = layout_recorder.draw_panel(panels.SKYFARM_PT_submit_aws, bpy.context)
    values = {item["name"]: item["value"] for item in drawn if item["kind"] == "prop"}
    support.check(values.get("aws_split") == 4, f"Split Each Frame Across is not drawn as 4: {values}")
    support.check(abs(values.get("aws_max_cost", 0) - 12.5) < 1e-6, f"Max Cost is not drawn as 12.5: {values}")
    support.check("4 machines per frame" in layout_recorder.text_of(drawn), "no hint for the split")
    settings.backend, settings.aws_split, settings.aws_max_cost = "LOCAL", 1, 0.0


support.run_in_background(scenario)
