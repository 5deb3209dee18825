"""`blender -b` tests of the Farm panel's logic against a real daemon whose CloudFormation is the fake.

ARGS["scenario"]: "deploy" (create succeeds), "failed-create" (the fake fails a resource) or
"no-credentials" (the daemon has none). Timers do not run in background mode, so support.pump
drives the add-on's timer callback. Prints FARM_RESULT {json} for the TypeScript side to compare
with the fake's own state.
"""

import json
import os
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layout_recorder  # noqa: E402
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()


def live():
    return bpy.context.window_manager.skyfarm


def poll_message(operator):
    try:
        operator()
    except RuntimeError as error:
        return str(error)
    raise AssertionError("the operator ran although it should have been disabled")


def connect_and_check():
    from skyfarm import sync

    support.pump(30, lambda: live().connection_state == "connected", "the daemon connection")
    support.pump(15, lambda: sync.session.local.available, "daemon.info")
    farm = live().farm
    check(sync.session.farm.needs_check(), "the Farm panel should want to ask CloudFormation once")
    check(bpy.ops.skyfarm.refresh_stack() == {"FINISHED"}, "Refresh")
    support.pump(30, lambda: farm.status_text not in ("Checking…", "Not checked yet"), "the stack status")
    log(f"status: {farm.status_text!r} / {farm.status_detail!r} [{farm.error_code}]")
    return farm


def deploy_and_follow(**options):
    """Presses Deploy, checks it returns at once, and records what the panel showed until the reply."""
    from skyfarm import sync

    farm = live().farm
    started = time.monotonic()
    result = bpy.ops.skyfarm.deploy_stack("EXEC_DEFAULT", **options)
    pressed = time.monotonic() - started
    check(result == {"FINISHED"}, f"deploy_stack returned {result}")
    check(pressed < 0.5, f"Deploy blocked Blender for {pressed:.2f} s")
    sync.tick()
    check(farm.busy and farm.operation == "deploy", "the panel does not show the deploy as running")
    message = poll_message(bpy.ops.skyfarm.deploy_stack)
    check("Deploying stack skyfarm" in message, f"Deploy while deploying: {message!r}")
    samples = []
    deadline = time.monotonic() + ARGS.get("deployTimeout", 120)
    while farm.busy:
        check(time.monotonic() < deadline, "the deploy did not end in time")
        sync.tick()
        sample = (farm.busy, len(farm.events), farm.status)
        if not samples or samples[-1] != sample:
            samples.append(sample)
        time.sleep(0.02)
    while_busy = [sample for sample in samples if sample[0] and sample[1] > 0]
    log(f"pressed in {pressed * 1000:.1f} ms; {len(while_busy)} distinct views with events while deploying; {len(farm.events)} events")
    check(len({count for _, count, _ in while_busy}) >= 3, f"events did not arrive live, in steps, while deploying: {samples[:10]}")
    return pressed, while_busy


def result_json(farm, **extra):
    data = {
        "status": farm.status,
        "statusText": farm.status_text,
        "statusDetail": farm.status_detail,
        "errorCode": farm.error_code,
        "outputs": {item.name: item.value for item in farm.outputs},
        "events": [[item.name, item.status, item.reason, item.failed] for item in farm.events],
        "outcome": [farm.outcome_level, farm.outcome],
        "awsAvailable": live().aws_available,
        "awsReason": live().aws_reason,
    }
    data.update(extra)
    print("FARM_RESULT " + json.dumps(data), flush=True)


def deployed_queue_line():
    """What the AWS sub-panel says under Max Cost: the daemon's price of the chosen queue at full scale."""
    panels = support.addon("panels")

    def drawn():
        items = layout_recorder.draw_panel(panels.SKYFARM_PT_submit_aws, bpy.context)
        text = layout_recorder.text_of(items)
        line = text[text.find("Queue ") :] if "Queue " in text else ""
        alert = any(item.get("alert") for item in items if item["kind"] == "label" and item.get("text", "").startswith("Queue "))
        return line, alert

    support.pump(30, lambda: drawn()[0].startswith("Queue skyfarm"), "the queue's price in the AWS panel")
    line, alert = drawn()
    log(f"AWS panel: {line!r}")
    check(not alert, f"a known price is not drawn as a warning: {line!r}")
    return line


def scenario_deploy():
    support.enable_addon(ARGS)
    from skyfarm import operators, sync

    farm = connect_and_check()
    check(farm.status_text == "Not deployed" and farm.error_code == "STACK_NOT_FOUND", f"before: {farm.status_text}")
    check(not live().aws_available, "AWS is available before any stack")
    check(sync.session.farm.deploy_button().label == "Deploy Stack", "label before the first deploy")
    check(not bpy.ops.skyfarm.destroy_stack.poll(), "Destroy without a stack")

    bpy.context.scene.skyfarm.backend = "AWS"
    blocker = operators.render_blocker(bpy.context) or ""
    check("AWS is not available" in blocker, f"Render with AWS before deploying: {blocker!r}")

    pressed, while_busy = deploy_and_follow(max_vcpus=16)
    check(any(status == "CREATE_IN_PROGRESS" for _, _, status in while_busy), "the status never showed CREATE_IN_PROGRESS live")
    check(farm.status == "CREATE_COMPLETE" and farm.status_text == "Ready", f"after: {farm.status} {farm.status_text}")
    check(farm.outcome_level == "INFO" and farm.outcome.startswith("Created stack skyfarm in "), f"outcome: {farm.outcome!r}")
    outputs = {item.name: item.value for item in farm.outputs}
    for key in ("BucketName", "CpuSpotQueueArn", "TransferQueueArn", "RenderJobDefinitionArn"):
        check(outputs.get(key), f"output {key} missing: {sorted(outputs)}")
    check(farm.events[-1].name == "skyfarm" and farm.events[-1].status == "CREATE_COMPLETE", "the last event is the stack's CREATE_COMPLETE")
    support.pump(15, lambda: live().aws_available, "the AWS backend to become available")
    blocker = operators.render_blocker(bpy.context) or ""
    check("AWS is not available" not in blocker, f"Render with AWS after deploying: {blocker!r}")
    check(sync.session.farm.deploy_button().label == "Update Stack", "label after deploying")
    check(bpy.ops.skyfarm.destroy_stack.poll(), "Destroy is offered once the stack exists")
    queue_line = deployed_queue_line()
    result_json(farm, pressedMs=pressed * 1000, liveViews=len(while_busy), queueLine=queue_line)

    # Update with nothing changed: a change set without changes is success, the AWS backend stays.
    check(bpy.ops.skyfarm.deploy_stack("EXEC_DEFAULT") == {"FINISHED"}, "Update")
    support.pump(60, lambda: not farm.busy, "the update to answer")
    check(farm.outcome == "No changes: stack skyfarm is up to date (CREATE_COMPLETE)", f"update: {farm.outcome!r}")
    check(live().aws_available, "AWS stays available after a no-change update")


def scenario_failed_create():
    support.enable_addon(ARGS)
    from skyfarm import sync

    farm = connect_and_check()
    check(farm.status_text == "Not deployed", f"before: {farm.status_text}")
    deploy_and_follow()
    check(farm.outcome_level == "ERROR", f"outcome level {farm.outcome_level}: {farm.outcome}")
    expected = f"FileSystem (AWS::EFS::FileSystem): {ARGS['reason']}"
    check(expected in farm.outcome and "[STACK_FAILED]" in farm.outcome, f"outcome: {farm.outcome!r}")
    failed = [item for item in farm.events if item.failed]
    check(failed and failed[0].name == "FileSystem" and failed[0].reason == ARGS["reason"], f"failed events: {[(e.name, e.reason) for e in failed]}")
    check(failed[0].status == "CREATE_FAILED", failed[0].status)
    # The status is asked again after the failure and shows the rolled-back stack.
    support.pump(30, lambda: farm.status == "ROLLBACK_COMPLETE", "the stack status after the failure")
    check(farm.status_text == "Create failed (rolled back)" and farm.status_alert, f"status {farm.status_text}")
    check(sync.session.farm.deploy_button().label == "Recreate Stack", "label after a failed create")
    check(not live().aws_available, "AWS must stay unavailable after a failed create")
    result_json(farm)


def scenario_no_credentials():
    support.enable_addon(ARGS)
    farm = connect_and_check()
    check(farm.error_code == "AWS_NO_CREDENTIALS", f"error code {farm.error_code!r}")
    check(farm.status_text == "No AWS credentials" and farm.status_alert, f"status {farm.status_text!r}")
    check(farm.status_detail.startswith("No AWS credentials found. Tried: "), f"detail {farm.status_detail!r}")
    check(bpy.ops.skyfarm.deploy_stack("EXEC_DEFAULT") == {"FINISHED"}, "Deploy can be tried (credentials may be added meanwhile)")
    support.pump(30, lambda: not farm.busy, "the deploy to be refused")
    check(farm.outcome_level == "ERROR" and "[AWS_NO_CREDENTIALS]" in farm.outcome, f"outcome {farm.outcome!r}")
    result_json(farm)


def scenario_external_deploy():
    """`skyfarm deploy` in a terminal (another client): the panel follows it and AWS becomes available."""
    support.enable_addon(ARGS)
    from skyfarm import sync

    farm = connect_and_check()
    check(farm.status_text == "Not deployed", f"before: {farm.status_text}")
    with open(ARGS["readyMarker"], "w", encoding="utf-8") as handle:
        handle.write("ready\n")
    statuses, counts, disabled = set(), set(), []
    deadline = time.monotonic() + 120
    while not (farm.status == "CREATE_COMPLETE" and len(farm.outputs) and live().aws_available):
        check(time.monotonic() < deadline, f"the panel did not follow the deploy: {farm.status} {len(farm.events)} events")
        sync.tick()
        statuses.add(farm.status)
        counts.add(len(farm.events))
        if farm.status == "CREATE_IN_PROGRESS":
            button = sync.session.farm.deploy_button()
            if not button.enabled:
                disabled.append(button.reason)
        time.sleep(0.02)
    log(f"statuses seen: {sorted(statuses)}; {len(counts)} event counts; Deploy disabled with: {disabled[:1]}")
    check("CREATE_IN_PROGRESS" in statuses, f"the status never showed CREATE_IN_PROGRESS: {statuses}")
    check(len(counts) >= 3, f"events did not arrive in steps: {sorted(counts)}")
    check(disabled and disabled[0] == "Stack skyfarm is CREATE_IN_PROGRESS: wait until it has finished", f"Deploy while another deploy runs: {disabled[:1]}")
    check(not farm.busy and farm.outcome == "", "a deploy from elsewhere is not shown as this panel's own")
    check(farm.status_text == "Ready", farm.status_text)
    result_json(farm)


SCENARIOS = {
    "deploy": scenario_deploy,
    "failed-create": scenario_failed_create,
    "no-credentials": scenario_no_credentials,
    "external-deploy": scenario_external_deploy,
}

support.run_in_background(SCENARIOS[ARGS["scenario"]])
