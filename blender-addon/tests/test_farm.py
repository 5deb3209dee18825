"""The Farm panel's logic: stack status in words, Deploy / Update / Destroy state, live events, outcomes.

Drives farm.Farm and its wiring in session.DaemonSession with a stub connection that records
requests and lets the test answer them and push stack events, as the daemon would.
"""

import unittest

from helpers import import_addon_module

connection = import_addon_module("connection")
farm = import_addon_module("farm")
session_module = import_addon_module("session")


def event(status, resource="skyfarm", resource_type="AWS::CloudFormation::Stack", reason="", stack="skyfarm", second=0):
    return {
        "stackName": stack,
        "resource": resource,
        "resourceType": resource_type,
        "status": status,
        "reason": reason,
        "timestamp": f"2026-11-27T12:00:{second:02d}.000Z",
    }


def stack_info(status="CREATE_COMPLETE", reason=None, **outputs):
    info = {"stackName": "skyfarm", "status": status, "region": "eu-west-1", "outputs": dict(outputs)}
    if reason:
        info["reason"] = reason
    return info


OUTPUTS = {
    "BucketName": "skyfarm-bucket-1a2b",
    "CpuSpotQueueArn": "arn:aws:batch:eu-west-1:123456789012:job-queue/skyfarm-cpu-spot",
    "CpuOnDemandQueueArn": "arn:aws:batch:eu-west-1:123456789012:job-queue/skyfarm-cpu-on-demand",
    "TransferQueueArn": "arn:aws:batch:eu-west-1:123456789012:job-queue/skyfarm-transfer",
    "GpuEnabled": "false",
    "NotifyEmail": "",
}


class Requests:
    """Stands in for DaemonConnection.request: records, and answers when the test says."""

    def __init__(self):
        self.sent = []

    def __call__(self, method, params, callback=None):
        self.sent.append((method, params, callback))
        return f"b{len(self.sent)}"

    def last(self, method):
        return [entry for entry in self.sent if entry[0] == method][-1]

    def answer(self, method, result=None, code=None, message=""):
        _, _, callback = self.last(method)
        callback(result, connection.RequestError(code, message) if code else None)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def connected_farm(target=None):
    requests, clock, notices, settled, rechecks = Requests(), Clock(), [], [], []
    state = farm.Farm(
        requests,
        target=lambda: dict(target or {"stackName": ""}),
        notify=lambda level, text: notices.append((level, text)),
        on_settled=settled.append,
        recheck=lambda: rechecks.append(True),
        clock_seconds=clock,
    )
    state.connection_changed(True)
    return state, requests, clock, notices, settled, rechecks


class StatusTextTest(unittest.TestCase):
    def test_what_the_status_line_says(self):
        state, *_ = connected_farm()
        self.assertEqual(state.status_view().headline, "Not checked yet")
        self.assertTrue(state.needs_check(), "an open panel asks once per connection")
        state.check_started()
        self.assertEqual(state.status_view().headline, "Checking…")
        self.assertFalse(state.needs_check(), "and not again while asking")

        cases = [
            (stack_info("CREATE_COMPLETE"), None, ("Ready", "CREATE_COMPLETE", "CHECKMARK", False)),
            (stack_info("UPDATE_ROLLBACK_COMPLETE"), None, ("Ready (the last update rolled back)", "UPDATE_ROLLBACK_COMPLETE", "CHECKMARK", False)),
            (stack_info("UPDATE_IN_PROGRESS"), None, ("Updating…", "UPDATE_IN_PROGRESS", "SORTTIME", False)),
            (
                stack_info("ROLLBACK_COMPLETE", reason="The following resource(s) failed to create: [FileSystem]."),
                None,
                ("Create failed (rolled back)", "ROLLBACK_COMPLETE: The following resource(s) failed to create: [FileSystem].", "ERROR", True),
            ),
            (None, ("STACK_NOT_FOUND", "No stack named skyfarm in eu-west-1. Run `skyfarm deploy` to create it."), ("Not deployed", "No stack named skyfarm in eu-west-1. Run `skyfarm deploy` to create it.", "INFO", False)),
            (
                None,
                ("AWS_NO_CREDENTIALS", "No AWS credentials found. Tried: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)"),
                ("No AWS credentials", "No AWS credentials found. Tried: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)", "ERROR", True),
            ),
            (None, ("AWS_ACCESS_DENIED", "User: … is not authorized to perform: cloudformation:DescribeStacks"), ("AWS denied access", "User: … is not authorized to perform: cloudformation:DescribeStacks", "LOCKED", True)),
            (None, ("AWS_ERROR", "connect ECONNREFUSED"), ("Cannot read the stack", "connect ECONNREFUSED [AWS_ERROR]", "ERROR", True)),
        ]
        for result, error, expected in cases:
            with self.subTest(expected=expected[0]):
                state.check_started()
                if result is not None:
                    state.status_answered({"stack": result}, None)
                else:
                    state.status_answered(None, connection.RequestError(*error))
                view = state.status_view()
                self.assertEqual((view.headline, view.detail, view.icon, view.alert), expected)

        state.connection_changed(False)
        self.assertEqual(state.status_view().headline, "Not connected")

    def test_an_answer_lost_with_the_connection_keeps_what_was_known(self):
        state, *_ = connected_farm()
        state.status_answered({"stack": stack_info("CREATE_COMPLETE")}, None)
        state.status_answered(None, connection.RequestError("DAEMON_UNREACHABLE", "lost"))
        self.assertEqual(state.status, "CREATE_COMPLETE")


class ButtonsTest(unittest.TestCase):
    def test_label_follows_the_stack(self):
        state, *_ = connected_farm()
        self.assertEqual(state.deploy_button().label, "Deploy Stack", "unknown: deploy creates or updates")
        state.status_answered(None, connection.RequestError("STACK_NOT_FOUND", "No stack named skyfarm"))
        self.assertEqual(state.deploy_button().label, "Deploy Stack")
        self.assertTrue(state.deploy_button().enabled)
        self.assertFalse(state.destroy_button().enabled)
        self.assertIn("no stack skyfarm", state.destroy_button().reason)

        state.status_answered({"stack": stack_info("CREATE_COMPLETE", **OUTPUTS)}, None)
        self.assertEqual(state.deploy_button().label, "Update Stack")
        self.assertTrue(state.deploy_button().enabled)
        self.assertTrue(state.destroy_button().enabled)

        state.status_answered({"stack": stack_info("ROLLBACK_COMPLETE")}, None)
        button = state.deploy_button()
        self.assertEqual((button.label, button.enabled), ("Recreate Stack", True))
        self.assertIn("deletes it and creates it again", button.reason)

    def test_disabled_with_a_reason(self):
        state, requests, clock, *_ = connected_farm()
        state.status_answered(None, connection.RequestError("STACK_NOT_FOUND", "none"))
        state.deploy()
        clock.now += 75
        button = state.deploy_button()
        self.assertEqual((button.label, button.enabled), ("Deploying…", False))
        self.assertEqual(button.reason, "Deploying stack skyfarm (1 min 15 s so far)")
        self.assertFalse(state.destroy_button().enabled)
        self.assertTrue(state.busy)

        other, *_ = connected_farm()
        other.status_answered({"stack": stack_info("CREATE_COMPLETE")}, None)
        other.on_event(event("UPDATE_IN_PROGRESS"))  # e.g. `skyfarm deploy` in a terminal
        button = other.deploy_button()
        self.assertFalse(button.enabled)
        self.assertEqual(button.reason, "Stack skyfarm is UPDATE_IN_PROGRESS: wait until it has finished")
        self.assertFalse(other.destroy_button().enabled)

        other.connection_changed(False)
        self.assertEqual(other.deploy_button().reason, "Not connected to the skyfarm daemon")
        self.assertFalse(other.destroy_button().enabled)


class EventsTest(unittest.TestCase):
    def test_the_list_is_bounded_and_keeps_the_newest(self):
        state, *_ = connected_farm()
        total = farm.MAX_EVENTS + 40
        for index in range(total):
            state.on_event(event("CREATE_IN_PROGRESS", resource=f"R{index}", resource_type="AWS::EC2::Subnet"))
        self.assertEqual(len(state.events), farm.MAX_EVENTS)
        self.assertEqual(state.events[0]["resource"], "R40")
        self.assertEqual(state.events[-1]["resource"], f"R{total - 1}")
        self.assertEqual(state.events_seen, total, "the mirror counts what it has not copied yet")

    def test_events_of_other_stacks_are_not_shown(self):
        state, *_ = connected_farm({"stackName": "farm-b"})
        revision = state.revision
        self.assertFalse(state.on_event(event("CREATE_IN_PROGRESS", stack="skyfarm")))
        self.assertEqual(len(state.events), 0)
        self.assertEqual(state.revision, revision, "nothing to redraw")
        self.assertTrue(state.on_event(event("CREATE_IN_PROGRESS", resource="farm-b", stack="farm-b")))

    def test_the_stacks_own_events_move_the_status_live(self):
        state, *_ = connected_farm()
        state.status_answered({"stack": stack_info("DELETE_FAILED")}, None)
        self.assertEqual(state.status_view().headline, "Delete failed")
        self.assertEqual(state.region, "eu-west-1")
        state.status_answered(None, connection.RequestError("STACK_NOT_FOUND", "none"))
        state.on_event(event("CREATE_IN_PROGRESS", reason="User Initiated"))
        self.assertEqual(state.status_view().headline, "Creating…")
        state.on_event(event("CREATE_IN_PROGRESS", resource="Bucket", resource_type="AWS::S3::Bucket"))
        self.assertEqual(state.status, "CREATE_IN_PROGRESS", "a resource's event is not the stack's status")
        state.on_event(event("CREATE_FAILED", resource="FileSystem", resource_type="AWS::EFS::FileSystem", reason="quota"))
        state.on_event(event("ROLLBACK_IN_PROGRESS", reason="The following resource(s) failed to create: [FileSystem]."))
        self.assertEqual(state.status_view().headline, "Create failed: rolling back…")
        self.assertEqual([e["resource"] for e in state.failed_events()], ["FileSystem"])
        state.on_event(event("DELETE_COMPLETE"))
        self.assertEqual(state.status_view().headline, "Not deployed")
        self.assertEqual(state.deploy_button().label, "Deploy Stack")

    def test_icons_and_compact_text(self):
        self.assertEqual(farm.event_icon("CREATE_FAILED"), "ERROR")
        self.assertEqual(farm.event_icon("CREATE_COMPLETE"), "CHECKMARK")
        self.assertEqual(farm.event_icon("UPDATE_IN_PROGRESS"), "SORTTIME")
        self.assertEqual(farm.event_icon("ROLLBACK_IN_PROGRESS"), "LOOP_BACK")
        self.assertEqual(farm.event_icon("DELETE_COMPLETE"), "TRASH")
        self.assertEqual(farm.short_type("AWS::S3::Bucket"), "S3::Bucket")
        self.assertEqual(farm.clock("2026-11-27T12:03:09.120Z"), "12:03:09")
        self.assertEqual(
            farm.key_outputs(OUTPUTS),
            [
                ("Bucket", "skyfarm-bucket-1a2b"),
                ("CPU Queues", "skyfarm-cpu-spot, skyfarm-cpu-on-demand"),
                ("GPU Queues", "off (deploy with GPU to add them)"),
                ("Transfer Queue", "skyfarm-transfer"),
                ("Notify Email", "off"),
            ],
        )
        self.assertEqual(farm.key_outputs({}), [])


class DeployTest(unittest.TestCase):
    def test_deploy_sends_the_options_and_ends_with_the_outputs(self):
        state, requests, clock, notices, settled, rechecks = connected_farm({"stackName": "skyfarm", "region": "eu-west-1", "profile": ""})
        state.status_answered(None, connection.RequestError("STACK_NOT_FOUND", "none"))
        state.on_event(event("CREATE_COMPLETE", second=1))  # an older operation's event
        state.deploy(gpu=True, max_vcpus=64, notify_email=" me@example.com ")
        method, params, _ = requests.last("stack.deploy")
        self.assertEqual(params, {"stackName": "skyfarm", "region": "eu-west-1", "gpu": True, "maxVcpus": 64, "notifyEmail": "me@example.com"})
        self.assertEqual(len(state.events), 0, "a new deploy starts a new event list")
        state.on_event(event("CREATE_IN_PROGRESS", reason="User Initiated", second=2))
        self.assertEqual(state.status_view().headline, "Creating…")
        self.assertEqual(state.region, "eu-west-1")
        clock.now += 42
        requests.answer("stack.deploy", {"stack": stack_info("CREATE_COMPLETE", **OUTPUTS), "changed": True})
        self.assertFalse(state.busy)
        self.assertEqual(state.outcome, farm.Outcome("INFO", "Created stack skyfarm in 42 s (CREATE_COMPLETE)"))
        self.assertEqual(state.status_view().headline, "Ready")
        self.assertEqual(state.stack["outputs"]["BucketName"], "skyfarm-bucket-1a2b")
        self.assertEqual([s["status"] for s in settled], ["CREATE_COMPLETE"], "the AWS backend is told at once")
        self.assertEqual(notices[-1][0], "INFO")
        self.assertEqual(state.deploy_button().label, "Update Stack")

        # Update: unset options are not sent, so the stack keeps them.
        state.deploy()
        self.assertEqual(requests.last("stack.deploy")[1], {"stackName": "skyfarm", "region": "eu-west-1"})
        requests.answer("stack.deploy", {"stack": stack_info("CREATE_COMPLETE", **OUTPUTS), "changed": False})
        self.assertEqual(state.outcome.text, "No changes: stack skyfarm is up to date (CREATE_COMPLETE)")

    def test_a_failed_create_keeps_the_reason_visible_and_rechecks(self):
        state, requests, _, notices, settled, rechecks = connected_farm()
        state.deploy()
        state.on_event(event("CREATE_FAILED", resource="FileSystem", resource_type="AWS::EFS::FileSystem", reason="You have reached the maximum number of file systems"))
        message = (
            "Creating stack skyfarm failed: FileSystem (AWS::EFS::FileSystem): You have reached the maximum number of "
            "file systems. The stack is now ROLLBACK_COMPLETE; the next `skyfarm deploy` deletes it and creates it again."
        )
        requests.answer("stack.deploy", code="STACK_FAILED", message=message)
        self.assertEqual(state.outcome, farm.Outcome("ERROR", f"Deploy failed: {message} [STACK_FAILED]"))
        self.assertEqual(rechecks, [True], "the status is asked again to show ROLLBACK_COMPLETE")
        self.assertEqual(settled, [])
        self.assertEqual(notices[-1][0], "ERROR")
        self.assertEqual(len(state.failed_events()), 1, "the failing event stays listed")

    def test_a_lost_connection_says_cloudformation_carries_on(self):
        state, requests, _, _, _, rechecks = connected_farm()
        state.deploy()
        requests.answer("stack.deploy", code="DAEMON_UNREACHABLE", message="lost")
        self.assertEqual(state.outcome.level, "WARNING")
        self.assertIn("carries on in AWS", state.outcome.text)
        self.assertEqual(rechecks, [])
        self.assertFalse(state.busy)

    def test_a_request_the_codec_refuses_changes_nothing(self):
        def refuse(method, params, callback=None):
            raise ValueError("maxVcpus: must be <= 10000")

        state = farm.Farm(refuse)
        state.connection_changed(True)
        with self.assertRaises(ValueError):
            state.deploy(max_vcpus=20000)
        self.assertFalse(state.busy)

    def test_destroy(self):
        state, requests, clock, notices, settled, _ = connected_farm()
        state.status_answered({"stack": stack_info("CREATE_COMPLETE", **OUTPUTS)}, None)
        state.destroy()
        self.assertEqual(requests.last("stack.destroy")[1], {})
        self.assertFalse(state.deploy_button().enabled)
        state.on_event(event("EMPTY_COMPLETE", resource="Bucket", resource_type="AWS::S3::Bucket", reason="skyfarm: deleted 3 object(s)"))
        clock.now += 5
        requests.answer("stack.destroy", {"stackName": "skyfarm", "deleted": True})
        self.assertEqual(state.outcome.text, "Deleted stack skyfarm and its bucket's files in 5 s")
        self.assertEqual(state.status_view().headline, "Not deployed")
        self.assertEqual(settled, [None])


class StubConnection:
    def __init__(self):
        self.listeners = connection._Listeners()
        self.status = connection.ConnectionStatus(connection.STOPPED)
        self.requests = Requests()

    def request(self, method, params, callback=None):
        return self.requests(method, params, callback)

    def connect(self):
        self.status = connection.ConnectionStatus(connection.CONNECTED, daemon_version="0.1.0")
        self.listeners.on_status(self.status)


class SessionWiringTest(unittest.TestCase):
    def test_deploy_makes_the_aws_backend_available_and_events_reach_the_farm(self):
        link = StubConnection()
        live = session_module.DaemonSession(link, stack_target=lambda: {"stackName": "skyfarm", "region": "", "profile": ""})
        link.connect()
        link.requests.answer("daemon.info", {"version": "0.1.0", "pid": 1, "backends": {"local": {"available": True}, "aws": {"available": False, "reason": "no AWS stack deployed (skyfarm deploy)"}}})
        self.assertFalse(live.aws.available)
        self.assertNotIn("stack.status", [m for m, _, _ in link.requests.sent], "AWS is not asked until the Farm panel is looked at")

        self.assertTrue(live.farm.needs_check())
        live.check_stack()
        self.assertEqual(link.requests.last("stack.status")[1], {"stackName": "skyfarm"})
        link.requests.answer("stack.status", code="STACK_NOT_FOUND", message="No stack named skyfarm in eu-west-1.")
        self.assertEqual(live.farm.status_view().headline, "Not deployed")

        revision = live.revision
        live.farm.deploy()
        link.listeners.on_event("stack.event", event("CREATE_IN_PROGRESS", reason="User Initiated"))
        self.assertGreater(live.revision, revision, "events make the panel redraw")
        self.assertEqual(len(live.farm.events), 1)
        link.listeners.on_event("stack.event", event("CREATE_COMPLETE"))
        link.requests.answer("stack.deploy", {"stack": stack_info("CREATE_COMPLETE", **OUTPUTS), "changed": True})
        self.assertTrue(live.aws.available, "the AWS backend is available as soon as the deploy answered")
        self.assertIn("CREATE_COMPLETE", live.aws.reason)
        self.assertIn("daemon.info", [m for m, _, _ in link.requests.sent[-3:]], "and the daemon is asked again")
        link.requests.answer("daemon.info", {"version": "0.1.0", "pid": 1, "backends": {"local": {"available": True}, "aws": {"available": True}}})
        self.assertTrue(live.farm.checking, "the stack is checked again")
        self.assertTrue(live.aws.available, "a re-check of the ready stack does not grey out the AWS backend")
        self.assertTrue(live.farm.deploy_button().enabled, "nor the Update button")
        self.assertEqual(live.farm.deploy_button().label, "Update Stack")
        link.requests.answer("stack.status", {"stack": stack_info("CREATE_COMPLETE", **OUTPUTS)})
        self.assertTrue(live.aws.available)

        link.listeners.on_status(connection.ConnectionStatus(connection.DISCONNECTED, "gone", lost=True))
        self.assertFalse(live.farm.connected)
        self.assertEqual(live.farm.status_view().headline, "Not connected")


if __name__ == "__main__":
    unittest.main()
