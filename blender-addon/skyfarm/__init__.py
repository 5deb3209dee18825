"""skyfarm: render the open scene locally or on AWS Batch through the skyfarm daemon, and follow
every job live in Properties > Output."""

bl_info = {
    "name": "skyfarm",
    "author": "skyfarm contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Properties > Output > skyfarm",
    "description": "Render the scene locally or on AWS Batch through the skyfarm daemon, with live job status",
    "category": "Render",
}

if "bpy" in locals():
    # Script reload (F3 > Reload Scripts): pick up edited modules.
    import importlib

    for _module in (paths, framespec, codec, wsclient, state, farm, connection, session, submission):  # noqa: F821
        importlib.reload(_module)
    for _module in (farm_props, sync, props, dependencies, preferences, operators, panels, farm_operators, farm_panels):  # noqa: F821
        importlib.reload(_module)

import bpy

from . import codec, connection, farm, framespec, paths, session, state, submission, wsclient  # noqa: F401 (bpy-free core)
from . import dependencies, farm_operators, farm_panels, farm_props, operators, panels, preferences, props, sync

ADDON_VERSION = ".".join(str(part) for part in bl_info["version"])
OLDEST_BLENDER = bl_info["blender"]

# Order matters: properties before the UI that draws them; panels last.
_modules = (props, preferences, operators, farm_operators, panels, farm_panels)


def register():
    # Older Blenders only warn about bl_info["blender"] and enable the add-on anyway; it would then
    # fail in obscure ways. Say so once, before anything is registered.
    if tuple(bpy.app.version) < OLDEST_BLENDER:
        oldest = ".".join(str(part) for part in OLDEST_BLENDER[:2])
        raise RuntimeError(f"skyfarm needs Blender {oldest} or newer; this is Blender {bpy.app.version_string}")
    for module in _modules:
        module.register()
    sync.start(ADDON_VERSION)


def unregister():
    sync.stop()
    for module in reversed(_modules):
        module.unregister()
