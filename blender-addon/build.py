#!/usr/bin/env python3
"""Builds the installable add-on zip: build/skyfarm-addon.zip (run as `npm run build:addon`).

The zip holds one top-level folder, skyfarm/, with the package and its blender_manifest.toml, which
both install paths accept: Blender 3.x-4.1 (Preferences > Add-ons > Install…) and 4.2+ extensions
(drag and drop, or Install from Disk). Tests and caches stay out. Entries are sorted and stamped
with a fixed time so the same sources always give the same bytes.
"""

import argparse
import ast
import os
import re
import sys
import zipfile

ADDON_ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(ADDON_ROOT, "skyfarm")
REPO_ROOT = os.path.dirname(ADDON_ROOT)
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "build", "skyfarm-addon.zip")
INCLUDED_SUFFIXES = (".py", ".toml")
EXCLUDED_DIRS = {"__pycache__", "tests", ".pytest_cache"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    pass


def bl_info_version():
    with open(os.path.join(PACKAGE_DIR, "__init__.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "bl_info" for t in node.targets):
            info = ast.literal_eval(node.value)
            return ".".join(str(part) for part in info["version"])
    raise BuildError("skyfarm/__init__.py has no bl_info")


def manifest_version():
    with open(os.path.join(PACKAGE_DIR, "blender_manifest.toml"), encoding="utf-8") as handle:
        match = re.search(r'^version\s*=\s*"([^"]+)"', handle.read(), re.MULTILINE)
    if not match:
        raise BuildError("blender_manifest.toml has no version")
    return match.group(1)


def package_files():
    files = []
    for directory, subdirs, names in os.walk(PACKAGE_DIR):
        subdirs[:] = sorted(name for name in subdirs if name not in EXCLUDED_DIRS)
        for name in sorted(names):
            if name.endswith(INCLUDED_SUFFIXES):
                path = os.path.join(directory, name)
                files.append((path, os.path.relpath(path, ADDON_ROOT).replace(os.sep, "/")))
    return files


def build(output):
    legacy, extension = bl_info_version(), manifest_version()
    if legacy != extension:
        raise BuildError(f"bl_info says {legacy} but blender_manifest.toml says {extension}: keep them equal")
    files = package_files()
    names = {archive_name for _, archive_name in files}
    for required in ("skyfarm/__init__.py", "skyfarm/blender_manifest.toml", "skyfarm/protocol.py"):
        if required not in names:
            raise BuildError(f"{required} is missing (protocol.py comes from `npm run protocol:generate`)")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    partial = output + ".partial"
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, archive_name in files:
            info = zipfile.ZipInfo(archive_name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read())
    os.replace(partial, output)  # Never leave a half-written zip where users look for it.
    return legacy, len(files)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"zip to write (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    try:
        version, count = build(os.path.abspath(args.output))
    except BuildError as error:
        print(f"build:addon: {error}", file=sys.stderr)
        return 1
    print(f"built {args.output}: skyfarm add-on {version}, {count} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
