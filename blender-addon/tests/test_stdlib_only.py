"""The add-on may import only the standard library and Blender's own modules.

Official Blender builds ship no websocket, requests or aiohttp, so any such import would break the
add-on for users even if it works on a developer's machine.
"""

import ast
import os
import sys
import unittest

from helpers import ADDON_DIR

BLENDER_MODULES = {"bpy", "addon_utils", "mathutils", "bpy_extras", "gpu", "bmesh", "bl_ui"}
# Modules that exist only in Blender's Python: the bpy-free core must not use them.
BPY_FREE = {"paths", "framespec", "codec", "wsclient", "state", "farm", "connection", "session", "submission", "protocol"}


def imports_of(path):
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


class StandardLibraryOnlyTest(unittest.TestCase):
    def modules(self):
        names = sorted(name for name in os.listdir(ADDON_DIR) if name.endswith(".py"))
        self.assertGreater(len(names), 10)
        return names

    def test_only_stdlib_and_blender_imports(self):
        allowed = set(sys.stdlib_module_names) | BLENDER_MODULES
        for name in self.modules():
            with self.subTest(module=name):
                foreign = sorted(set(imports_of(os.path.join(ADDON_DIR, name))) - allowed)
                self.assertEqual(foreign, [], f"{name} imports {foreign}")

    def test_core_modules_do_not_import_blender(self):
        for name in self.modules():
            if name[:-3] in BPY_FREE:
                with self.subTest(module=name):
                    blender = sorted(set(imports_of(os.path.join(ADDON_DIR, name))) & BLENDER_MODULES)
                    self.assertEqual(blender, [], f"{name} must stay bpy-free but imports {blender}")


if __name__ == "__main__":
    unittest.main()
