"""Shared by the scripts that run inside real Blender (`blender --python …`).

Arguments come as one JSON object after `--`. Scenarios that need Blender's event loop (timers,
redraws) are generators driven by bpy.app.timers: `yield seconds` waits without blocking Blender.
Every script ends by printing SKYFARM_TEST_PASSED or SKYFARM_TEST_FAILED, and exits non-zero on
failure, so the TypeScript wrapper can check both.

Screenshots are taken at the X level by the harness (blender-addon/tests/harness.ts) while Blender
runs: under Xvfb, Blender 4.3 and 5.2 draw correctly but their own screenshot operators save black
images. capture() asks for one and records, beside it, what Blender knows should be visible there
(the editor's region in screen pixels, its theme colours, the active job's progress bar as the
panel's draw code lays it out), which blender-addon/tests/screen.ts then finds in the pixels.
"""

import contextlib
import importlib
import json
import os
import sys
import time
import traceback

import addon_utils
import bpy

if not bpy.app.background:
    # Blender shows its splash as a popup until the user clicks: 3.4 when no file is opened, 4.2+
    # also with a file on a first start (no userpref.blend: "Quick Setup"), as in these tests.
    # Maximising an area from a timer while it is open crashes 3.4 and 4.3 on the next event: the
    # window's popup handler runs on a popup region whose UI block went with the screen change (a
    # NULL read, seen in gdb); 5.2 copes. A user's first click closes the splash, so the scenarios
    # never show it. This runs from --python, before Blender decides whether to open the splash.
    bpy.context.preferences.view.show_splash = False


def arguments():
    return json.loads(sys.argv[sys.argv.index("--") + 1])


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def log(message):
    print(f"[skyfarm-test] {message}", flush=True)


# The add-on's package name: "skyfarm" as a legacy add-on, "bl_ext.user_default.skyfarm" as an extension.
package = "skyfarm"


def addon(name):
    """One of the enabled add-on's modules (skyfarm.sync etc.), however it was installed."""
    return importlib.import_module(f"{package}.{name}")


def enable_addon(args):
    """Enables skyfarm: installed from the built zip as a user would, already installed as an
    extension (args["extension"]: `blender --command extension install-file … -e` enabled it
    before this Blender started), or from the source folder."""
    global package
    if args.get("installed"):
        # `skyfarm addon install` put it in this Blender's user folders and enabled it in the saved
        # preferences: an extension in 4.2+, a legacy add-on before.
        enabled = list(bpy.context.preferences.addons.keys())
        package = "bl_ext.user_default.skyfarm" if "bl_ext.user_default.skyfarm" in enabled else "skyfarm"
        check(package in enabled, f"skyfarm is not enabled at startup: {enabled}")
        module = sys.modules[package]
        log(f"installed add-on enabled at startup: {package} from {module.__file__}")
        check(
            not module.__file__.startswith(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
            "the add-on was imported from the source tree, not from where skyfarm addon install put it",
        )
    elif args.get("extension"):
        package = "bl_ext.user_default.skyfarm"
        check(package in bpy.context.preferences.addons, f"the extension is not enabled at startup: {list(bpy.context.preferences.addons.keys())}")
        module = sys.modules[package]
        extensions = os.environ["BLENDER_USER_EXTENSIONS"]
        check(module.__file__.startswith(extensions), f"the extension was loaded from {module.__file__}, not {extensions}")
        log(f"extension enabled at startup: {package} from {module.__file__}")
    else:
        if args.get("addonZip"):
            bpy.ops.preferences.addon_install(filepath=args["addonZip"], overwrite=True)
            log(f"installed {args['addonZip']}")
        else:
            sys.path.insert(0, args["addonSource"])
        module = addon_utils.enable("skyfarm", default_set=True, handle_error=_raise)
        check(module is not None, "addon_utils.enable returned nothing")
        log(f"enabled skyfarm from {module.__file__}")
    if args.get("addonZip") or args.get("extension"):
        check(
            not module.__file__.startswith(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            "the add-on was imported from the source tree, not from the installed zip",
        )
    if args.get("skyfarmCommand"):
        bpy.context.preferences.addons[package].preferences.skyfarm_command = args["skyfarmCommand"]
    if not bpy.app.background:
        # The pointer starts mid-screen, over the panels: park it on the status bar, where no
        # tooltip opens over what the screenshots show.
        window = bpy.context.window_manager.windows[0]
        window.cursor_warp(window.width - 4, 4)
    return module


def disable_addon():
    addon_utils.disable(package, default_set=True)


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
    sync = addon("sync")
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
    return addon("sync").operator_context(**overrides)


def properties_area():
    """The Properties editor of the default layout (window, area)."""
    window, area = area_of_type("PROPERTIES")
    check(area is not None, "the layout has no Properties editor")
    return window, area


CAPTURE_TIMEOUT_SECONDS = 60


def _rgb(color):
    """A theme colour (display space, 0-1 floats) as the 0-255 bytes Blender draws."""
    return [round(max(0.0, min(1.0, channel)) * 255) for channel in tuple(color)[:3]]


def _region_rect(window, region):
    """A region's rectangle on the X screen: [left, top, width, height] (Blender counts y upwards)."""
    return [window.x + region.x, window.y + window.height - (region.y + region.height), region.width, region.height]


def job_bar(item):
    """What the panel's draw code puts into the active job's box as its progress bar."""
    import layout_recorder

    panels, sync = addon("panels"), addon("sync")
    connected = sync.session is not None and sync.session.status.connected
    drawn = layout_recorder.draw(panels.draw_job, item, connected)
    bars = [entry for entry in drawn if entry["kind"] == "progress" or (entry["kind"] == "prop" and entry.get("slider"))]
    check(bars, f"the job box draws no progress bar: {drawn}")
    bar = bars[0]
    factor = bar["factor"] if bar["kind"] == "progress" else bar["value"] / 100.0
    return {"kind": "progress" if bar["kind"] == "progress" else "slider", "progress": factor, "text": bar["text"]}, drawn


@contextlib.contextmanager
def _frozen():
    """Holds the add-on's timer so the picture shows the state recorded beside it."""
    sync = sys.modules.get(f"{package}.sync")
    tick = getattr(sync, "tick", None)
    held = tick is not None and bpy.app.timers.is_registered(tick)
    if held:
        bpy.app.timers.unregister(tick)
    try:
        yield
    finally:
        if held and sync.session is not None and not bpy.app.timers.is_registered(tick):
            bpy.app.timers.register(tick, first_interval=0.0, persistent=True)


def capture(args, name, area=None, job=None):
    """Generator: has the harness photograph the X display as artifactsDir/name.png; returns its path.

    Beside the request goes what must be visible: the area's main region (its place on screen and
    theme background) and, with `job`, that job's progress bar as the panel lays it out. The
    add-on's timer is held meanwhile so nothing redraws between drawing and the picture.
    """
    import blf

    window = bpy.context.window_manager.windows[0]
    if area is not None:
        window = next(w for w in bpy.context.window_manager.windows if area in w.screen.areas[:])
    png = os.path.join(args["artifactsDir"], f"{name}.png")
    request_path = os.path.join(args["captureDir"], f"{name}.request.json")
    done_path = os.path.join(args["captureDir"], f"{name}.done.json")
    with _frozen():
        for candidate in bpy.context.window_manager.windows:
            for each in candidate.screen.areas:
                each.tag_redraw()
        yield 0.3  # Blender draws the tagged areas on its next loop, well within this.
        theme = bpy.context.preferences.themes[0]
        ui = theme.user_interface
        request = {
            "name": name,
            "png": png,
            "blender": bpy.app.version_string,
            "window": [window.x, window.y, window.width, window.height],
            "theme": {
                "progress": {"item": _rgb(ui.wcol_progress.item), "inner": _rgb(ui.wcol_progress.inner), "text": _rgb(ui.wcol_progress.text)},
                "slider": {"item": _rgb(ui.wcol_numslider.item), "inner": _rgb(ui.wcol_numslider.inner), "text": _rgb(ui.wcol_numslider.text)},
            },
            "regions": [],
            "bars": [],
        }
        if area is not None:
            region = main_region(area)
            space_theme = getattr(theme, area.type.lower()).space
            # The editor's background, and its panels' where it has panels (they may cover most of it).
            backs = [_rgb(space_theme.back)]
            panel_colors = getattr(space_theme, "panelcolors", None)  # 3.x-4.x; 5.x: one for all editors
            backs.append(_rgb(panel_colors.back if panel_colors is not None else theme.user_interface.panel_back))
            label = f"{area.type.title().replace('_', ' ')} editor"
            request["regions"].append({"label": label, "rect": _region_rect(window, region), "backs": backs})
        if job is not None:
            bar, drawn = job_bar(job)
            style = bpy.context.preferences.ui_styles[0].widget
            # The width Blender's UI font gives the bar's text, to find it in the picture.
            if bpy.app.version >= (4, 0, 0):
                blf.size(0, style.points * bpy.context.preferences.system.ui_scale)
            else:
                blf.size(0, style.points * bpy.context.preferences.system.ui_scale, 72)
            bar["textWidth"] = round(blf.dimensions(0, bar["text"])[0])
            bar["label"] = f"job {job.job_id}"
            request["bars"].append(bar)
            request["texts"] = [entry.get("text") for entry in drawn if entry.get("text")]
        os.makedirs(args["artifactsDir"], exist_ok=True)
        with open(request_path + ".partial", "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        os.replace(request_path + ".partial", request_path)
        deadline = time.monotonic() + CAPTURE_TIMEOUT_SECONDS
        while not os.path.exists(done_path):
            check(time.monotonic() < deadline, f"the harness did not capture {name} within {CAPTURE_TIMEOUT_SECONDS} s")
            yield 0.05
        with open(done_path, encoding="utf-8") as handle:
            done = json.load(handle)
    check(done.get("ok"), f"capturing {name} failed: {done.get('error')}")
    log(f"screenshot: {png}")
    return png


def capture_properties(args, name, job=None):
    """Generator: capture() of the Properties editor (the skyfarm panels live in its Output tab)."""
    _window, area = properties_area()
    return (yield from capture(args, name, area=area, job=job))
