"""Shared helpers for the plain-Python (bpy-free) test suites.

The package's __init__ registers Blender classes and imports bpy, so the bpy-free modules are
loaded through a bare package object that points at the add-on folder without running __init__.
"""

import importlib
import importlib.machinery
import importlib.util
import os
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ADDON_DIR = os.path.join(os.path.dirname(TESTS_DIR), "skyfarm")
REPO_ROOT = os.path.dirname(os.path.dirname(TESTS_DIR))


def import_addon_module(name):
    if "skyfarm" not in sys.modules:
        spec = importlib.machinery.ModuleSpec("skyfarm", None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [ADDON_DIR]
        sys.modules["skyfarm"] = package
    module = importlib.import_module(f"skyfarm.{name}")
    if "bpy" in sys.modules:
        raise AssertionError(f"skyfarm.{name} pulled in bpy; it must stay testable without Blender")
    return module
