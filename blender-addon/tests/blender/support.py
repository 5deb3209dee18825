"""Shared by the scripts that run inside real Blender (`blender --python …`).

Arguments come as one JSON object after `--`. Scenarios that need Blender's event loop (timers,
redraws) are generators driven by bpy.app.timers: `yield seconds` waits without blocking Blender.
Every script ends by printing SKYFARM_TEST_PASSED or SKYFARM_TEST_FAILED, and exits non-zero on
failure, so the TypeScript wrapper can check both.
"""

import json
import os
import sys
import time
import traceback

import addon_utils
import bpy


def arguments():
    return json.loads(sys.argv[sys.argv.index("--") + 1])


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def log(message):
    print(f"[skyfarm-test] {message}", flush=True)


def enable_addon(args):
    """Enables skyfarm from the built zip (installed like a user would) or from the source folder."""
    if args.get("addonZip"):
        bpy.ops.preferences.addon_install(filepath=args["addonZip"], overwrite=True)
        log(f"installed {args['addonZip']}")
    else:
        sys.path.insert(0, args["addonSource"])
    module = addon_utils.enable("skyfarm", default_set=True, handle_error=_raise)
    check(module is not None, "addon_utils.enable returned nothing")
    log(f"enabled skyfarm from {module.__file__}")
    if args.get("addonZip"):
        check(
            not module.__file__.startswith(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            "the add-on was imported from the source tree, not from the installed zip",
        )
    if args.get("skyfarmCommand"):
        bpy.context.preferences.addons["skyfarm"].preferences.skyfarm_command = args["skyfarmCommand"]
    return module


def _raise(error):
    raise error


def finish(passed, detail=""):
    if passed:
        print(f"SKYFARM_TEST_PASSED {detail}", flush=True)
    else:
        print(f"SKYFARM_TEST_FAILED {detail}", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()


def run_in_background(scenario):
    """Runs a plain function in `blender -b` and exits with its verdict."""
    try:
        scenario()
    except Exception:
        traceback.print_exc()
        finish(False)
        os._exit(1)
    finish(True)
    os._exit(0)


def pump(seconds, until=None, what="condition"):
    """In `blender -b` timers never fire, so drive the add-on's timer callback by hand."""
    from skyfarm import sync

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sync.tick()
        if until is not None and until():
            return
        time.sleep(0.02)
    if until is not None:
        raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def wait_until(predicate, seconds, what):
    """For generator scenarios: yields until predicate() holds or raises after `seconds`."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        yield 0.1


def drive_with_timers(scenario, timeout):
    """Runs a generator scenario through bpy.app.timers in the GUI, then quits Blender."""
    steps = scenario()
    started = time.monotonic()

    def step():
        try:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the scenario took more than {timeout} s")
            return next(steps)
        except StopIteration:
            finish(True)
            bpy.ops.wm.quit_blender()
            return None
        except Exception:
            traceback.print_exc()
            finish(False)
            os._exit(1)

    bpy.app.timers.register(step, first_interval=0.5)


def area_of_type(area_type, window=None):
    windows = [window] if window else bpy.context.window_manager.windows
    for candidate in windows:
        for area in candidate.screen.areas:
            if area.type == area_type:
                return candidate, area
    return None, None


def main_region(area):
    return next(region for region in area.regions if region.type == "WINDOW")


def override(**overrides):
    """temp_override for bpy.ops with the add-on's network thread parked: Blender 3.4 reads the
    override without the GIL while another thread holds it (skyfarm.sync.operator_context)."""
    from skyfarm import sync

    return sync.operator_context(**overrides)


def properties_area():
    """The Properties editor of the default layout (window, area)."""
    window, area = area_of_type("PROPERTIES")
    check(area is not None, "the layout has no Properties editor")
    return window, area


def screenshot_properties(directory, name):
    """Saves the Properties editor as `directory/name` and returns the path."""
    window, area = properties_area()
    path = os.path.join(directory, name)
    with override(window=window, area=area):
        bpy.ops.screen.screenshot_area(filepath=path, check_existing=False)
    check(os.path.getsize(path) > 10000, f"{name} is suspiciously small")
    log(f"screenshot: {path}")
    return path
