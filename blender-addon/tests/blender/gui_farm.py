"""GUI test of the skyfarm Farm panel, in real Blender under Xvfb, driven by bpy.app.timers:

the panel, once drawn, asks the stack's status by itself (Not deployed); Deploy fails on the fake
CloudFormation (a resource fails) and the panel shows the live events and then the failing
resource's reason; once the test harness has cleared the fault, Recreate creates the stack, the
panel shows Ready with the outputs and the AWS backend becomes available. Screenshots of each
state go to ARGS["artifactsDir"].
"""

import os
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402

ARGS = support.arguments()


def scroll_to_bottom():
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        for _ in range(80):
            bpy.ops.view2d.scroll_down(page=False)


def scenario():
    support.enable_addon(ARGS)
    operators, sync = support.addon("operators"), support.addon("sync")

    live = bpy.context.window_manager.skyfarm
    farm = live.farm
    scene = bpy.context.scene
    os.makedirs(ARGS["artifactsDir"], exist_ok=True)

    window, area = support.properties_area()
    area.spaces.active.context = "OUTPUT"
    with support.override(window=window, area=area):
        bpy.ops.screen.screen_full_area()
    yield 0.5
    scroll_to_bottom()
    yield from support.wait_until(lambda: live.connection_state == "connected", 30, "the daemon connection")

    # Nobody presses Refresh: drawing the panel asks CloudFormation once.
    yield from support.wait_until(lambda: farm.error_code == "STACK_NOT_FOUND", 30, "the panel to ask for the stack by itself")
    support.check(farm.status_text == "Not deployed", f"status {farm.status_text!r}")
    support.check(not live.aws_available, "AWS available without a stack")
    scene.skyfarm.backend = "AWS"  # what a user would try first; the submit panel says why not
    yield from support.capture_properties(ARGS, "farm-not-deployed")

    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        support.check(bpy.ops.skyfarm.deploy_stack.poll(), "Deploy is disabled")
        result = bpy.ops.skyfarm.deploy_stack("EXEC_DEFAULT", max_vcpus=16)
    support.check(result == {"FINISHED"}, f"deploy_stack returned {result}")
    yield from support.wait_until(lambda: farm.busy and len(farm.events) >= 20, 60, "live events while deploying")
    scroll_to_bottom()
    yield 0.3
    support.check(farm.busy, "the deploy ended before the screenshot")
    yield from support.capture_properties(ARGS, "farm-deploying")
    yield from support.wait_until(lambda: not farm.busy, 120, "the failing deploy to end")
    support.check(farm.outcome_level == "ERROR" and ARGS["reason"] in farm.outcome, f"outcome {farm.outcome!r}")
    yield from support.wait_until(lambda: farm.status == "ROLLBACK_COMPLETE", 30, "the rolled-back status")
    # Select the failing event so its full reason shows under the list, as a user would.
    failed = [index for index, item in enumerate(farm.events) if item.failed]
    support.check(failed, "no failed event in the list")
    farm.active_event_index = failed[0]
    scroll_to_bottom()
    yield from support.capture_properties(ARGS, "farm-failed")
    with open(ARGS["failedMarker"], "w", encoding="utf-8") as handle:
        handle.write("failed\n")

    yield from support.wait_until(lambda: os.path.exists(ARGS["retryMarker"]), 30, "the harness to clear the fault")
    support.check(sync.session.farm.deploy_button().label == "Recreate Stack", "label after the failure")
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        result = bpy.ops.skyfarm.deploy_stack("EXEC_DEFAULT")
    support.check(result == {"FINISHED"}, f"Recreate returned {result}")
    started = time.monotonic()
    yield from support.wait_until(lambda: not farm.busy and farm.status == "CREATE_COMPLETE", 120, "the stack to be created")
    support.log(f"recreated in {time.monotonic() - started:.1f} s with {len(farm.events)} events")
    yield from support.wait_until(lambda: live.aws_available, 30, "the AWS backend to become available")
    support.check(farm.status_text == "Ready" and farm.outcome.startswith("Created stack skyfarm"), f"{farm.status_text} / {farm.outcome}")
    support.check({item.name for item in farm.outputs} >= {"BucketName", "CpuSpotQueueArn"}, "outputs missing")
    blocker = operators.render_blocker(bpy.context) or ""
    support.check("AWS is not available" not in blocker, f"Render with AWS still blocked: {blocker!r}")
    scroll_to_bottom()
    yield from support.capture_properties(ARGS, "farm-ready")
    # The submit panel with AWS now selectable.
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        for _ in range(80):
            bpy.ops.view2d.scroll_up(page=False)
        for _ in range(ARGS.get("scrollPixels", 0) // 40):
            bpy.ops.view2d.scroll_down(page=False)
    yield from support.capture_properties(ARGS, "farm-submit-aws")
    support.log(f"slowest timer tick: {sync.slowest_tick_seconds * 1000:.2f} ms")

    with support.override(window=window, area=area):
        bpy.ops.screen.back_to_previous()
    yield 0.3

    # Update Stack asks first, in a dialog with the CLI's options taken from the stack: a picture of it
    # is the last thing before Blender quits (the dialog stays open until answered).
    window, area = support.properties_area()
    with support.override(window=window, area=area, region=support.main_region(area)):
        result = bpy.ops.skyfarm.deploy_stack("INVOKE_DEFAULT")
    support.check(result == {"RUNNING_MODAL"}, f"Update Stack did not ask first: {result}")
    yield 0.5
    support.check(farm.busy is False, "the dialog alone started a deploy")
    yield from support.capture(ARGS, "farm-update-dialog")


support.drive_with_timers(scenario, timeout=ARGS["timeout"])
