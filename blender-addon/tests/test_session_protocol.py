"""The connection and session against a fake daemon that speaks a newer or broken protocol.

The real daemon cannot be made to send these, so a raw server plays the daemon here.
"""

import json
import os
import shutil
import tempfile
import time
import unittest

from helpers import import_addon_module
from rawserver import RawServer

connection = import_addon_module("connection")
protocol = import_addon_module("protocol")
session_module = import_addon_module("session")
wsclient = import_addon_module("wsclient")

JOB = {
    "id": "j_1", "name": "shot", "state": "rendering", "backend": "local", "blendFile": "/p/shot.blend",
    "scene": "Scene", "frames": "1-6", "output": "/p/render", "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:01.000Z",
    "stages": {"upload": "done", "copy": "done", "render": "running", "publish": "pending"},
    "framesTotal": 6, "framesDone": 2, "framesFailed": 0, "failedFrames": [], "progress": 0.33,
    "etaSeconds": 12.0, "message": "rendering frame 3", "lastFrame": None,
}


def welcome(protocol_version=1, minimum=1, **extra):
    message = {"type": "welcome", "protocol": protocol_version, "minProtocol": minimum, "daemon": {"name": "skyfarm", "version": "9.9.9"}}
    message.update(extra)
    return json.dumps(message)


class FakeDaemon:
    """Plays the daemon: answers hello with `greeting`, then runs `after(connection, requests)`."""

    def __init__(self, greeting, after=None):
        self.requests = []

        def handler(conn):
            conn.accept()
            opcode, payload, _ = conn.read_message()
            self.hello = json.loads(payload)
            conn.send_frame(wsclient.OP_TEXT, greeting.encode())
            if after:
                after(conn, self)
            # Keep the connection open until the client goes away.
            try:
                while True:
                    conn.read_message(timeout=30)
            except (ConnectionError, OSError):
                pass

        self.server = RawServer(handler)
        self.home = tempfile.mkdtemp(prefix="skyfarm-fake-")
        with open(os.path.join(self.home, "daemon.json"), "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "port": self.server.port, "version": "9.9.9"}, handle)
        with open(os.path.join(self.home, "token"), "w", encoding="utf-8") as handle:
            handle.write("token\n")

    def close(self):
        self.server.close()
        shutil.rmtree(self.home, ignore_errors=True)


def answer_requests(conn, fake, replies):
    """Reads requests and answers each with replies[method](request) (raw text)."""
    while True:
        opcode, payload, _ = conn.read_message(timeout=30)
        if opcode == wsclient.OP_CLOSE:
            return
        request = json.loads(payload)
        fake.requests.append(request)
        make = replies.get(request["method"])
        if make:
            conn.send_frame(wsclient.OP_TEXT, make(request).encode())


def pump(conn, predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.drain(0.002)
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}; status {conn.status}")


class FakeDaemonTestCase(unittest.TestCase):
    def start(self, greeting, after=None):
        fake = FakeDaemon(greeting, after)
        self.addCleanup(fake.close)
        conn = connection.DaemonConnection(
            "blender-addon", "0.1.0", state_dir=lambda: fake.home, backoff=wsclient.Backoff(initial=0.05, maximum=0.2)
        )
        self.addCleanup(conn.stop)
        live = session_module.DaemonSession(conn)
        conn.start()
        return fake, conn, live


class NewerProtocolTest(FakeDaemonTestCase):
    def test_daemon_that_no_longer_accepts_this_protocol_says_update_the_addon(self):
        fake, conn, _ = self.start(welcome(protocol_version=3, minimum=2))
        pump(conn, lambda: conn.status.state == connection.INCOMPATIBLE, what="incompatible")
        self.assertIn("update the skyfarm add-on", conn.status.detail)
        self.assertIn("protocol 3", conn.status.detail)
        self.assertEqual(fake.hello["protocol"], protocol.PROTOCOL_VERSION)
        self.assertEqual(fake.hello["client"]["name"], "blender-addon")

    def test_welcome_with_unknown_fields_from_a_newer_daemon_is_understood(self):
        _, conn, _ = self.start(welcome(protocol_version=2, minimum=2, features=["teleport"]))
        pump(conn, lambda: conn.status.state == connection.INCOMPATIBLE, what="incompatible")
        self.assertIn("update the skyfarm add-on", conn.status.detail)

    def test_compatible_newer_daemon_connects_and_asks_for_an_update_on_unknown_messages(self):
        def after(conn, fake):
            conn.send_frame(wsclient.OP_TEXT, json.dumps({"type": "event", "event": "job.teleported", "data": {}}).encode())
            conn.send_frame(wsclient.OP_TEXT, json.dumps({"type": "event", "event": "job.update", "data": JOB}).encode())

        _, conn, live = self.start(welcome(protocol_version=2, minimum=1), after)
        pump(conn, lambda: conn.status.connected and live.jobs.get("j_1") is not None, what="connected with job")
        self.assertIn("update the skyfarm add-on", conn.status.update_hint)
        texts = [notice.text for notice in live.take_notices()]
        self.assertTrue(any("does not understand" in text and "Update the skyfarm add-on" in text for text in texts), texts)

    def test_protocol_mismatch_error_is_shown_with_the_daemons_advice(self):
        refusal = json.dumps({"type": "error", "id": None, "code": "PROTOCOL_MISMATCH", "message": "blender-addon speaks 1, this daemon speaks 2–3: update blender-addon"})
        _, conn, _ = self.start(refusal)
        pump(conn, lambda: conn.status.state == connection.INCOMPATIBLE, what="incompatible")
        self.assertIn("update blender-addon", conn.status.detail)
        self.assertIn("Update the skyfarm add-on", conn.status.detail)


class GarbageFromDaemonTest(FakeDaemonTestCase):
    def test_garbage_welcome_is_a_failed_connection_not_a_crash(self):
        _, conn, _ = self.start("\x00\x01garbage")
        pump(conn, lambda: conn.status.state == connection.DISCONNECTED, what="disconnected")
        self.assertIn("bad welcome", conn.status.detail)
        self.assertIn("not valid JSON", conn.status.detail)

    def test_garbage_after_welcome_is_reported_and_the_connection_survives(self):
        def after(conn, fake):
            conn.send_frame(wsclient.OP_TEXT, b"this is not json")
            conn.send_frame(wsclient.OP_TEXT, json.dumps({"type": "event", "event": "job.update", "data": dict(JOB, progress=7)}).encode())
            answer_requests(conn, fake, {
                "jobs.list": lambda request: json.dumps({"type": "reply", "id": request["id"], "method": "jobs.list", "result": {"jobs": "many"}}),
                "daemon.info": lambda request: json.dumps({"type": "reply", "id": request["id"], "method": "daemon.info", "result": {"version": "9", "pid": 1, "backends": {"local": {"available": True}, "aws": {"available": False, "reason": "no stack"}}}}),
            })

        fake, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.local.available, what="daemon.info answered")
        self.assertTrue(conn.status.connected, "garbage must not drop the connection")
        self.assertEqual(len(live.jobs), 0, "an invalid job snapshot must not enter the table")
        self.assertFalse(live.synced, "an unreadable jobs.list reply is not a sync")
        texts = [notice.text for notice in live.take_notices()]
        self.assertTrue(any("malformed message" in text and "BAD_MESSAGE" in text for text in texts), texts)
        self.assertTrue(any("progress" in text for text in texts), texts)
        self.assertTrue(any("could not list jobs" in text for text in texts), texts)

    def test_broken_frames_make_the_client_reconnect(self):
        attempts = []

        def after(conn, fake):
            attempts.append(time.monotonic())
            conn.send_raw(b"\x83\x00")  # opcode 3 is reserved

        fake, conn, _ = self.start(welcome(), after)
        pump(conn, lambda: len(attempts) >= 2, what="a second connection after the protocol error")
        self.assertGreaterEqual(fake.server.connections, 2)


class AnswersWithoutRequestIdTest(FakeDaemonTestCase):
    def test_an_answer_that_names_no_request_ends_every_waiting_request(self):
        def after(conn, fake):
            held = []
            while True:
                opcode, payload, _ = conn.read_message(timeout=30)
                if opcode == wsclient.OP_CLOSE:
                    return
                request = json.loads(payload)
                fake.requests.append(request)
                method = request["method"]
                if method in ("jobs.list", "daemon.info"):
                    reply = list_reply([]) if method == "jobs.list" else info_reply(False, "no stack")
                    conn.send_frame(wsclient.OP_TEXT, reply(request).encode())
                    continue
                held.append(request)
                if method == "jobs.get" and len(held) == 2:
                    # As the daemon answers a message it could not read at all.
                    error = {"type": "error", "id": None, "code": "MESSAGE_TOO_LARGE", "message": "message of 9000000 bytes"}
                    conn.send_frame(wsclient.OP_TEXT, json.dumps(error).encode())
                elif method == "jobs.cancel" and len(held) == 4:
                    conn.send_frame(wsclient.OP_TEXT, b'{"type":"reply","id":')
                elif method == "jobs.logs":
                    # An unreadable event answers no request: the one waiting keeps waiting, then is answered.
                    conn.send_frame(wsclient.OP_TEXT, b'{"type":"event","event":"job.update","data":')
                    answer = {"type": "reply", "id": request["id"], "method": "jobs.logs", "result": {"lines": ["ok"]}}
                    conn.send_frame(wsclient.OP_TEXT, json.dumps(answer).encode())

        fake, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.synced and live.daemon_info is not None, what="connected and synced")
        answers = {}

        def record(name):
            return lambda result, error: answers.__setitem__(name, (result, error))

        conn.request("jobs.get", {"jobId": "j_1"}, record("get1"))
        conn.request("jobs.get", {"jobId": "j_2"}, record("get2"))
        pump(conn, lambda: "get1" in answers and "get2" in answers, what="both ended by the id-less error")
        for name in ("get1", "get2"):
            result, error = answers[name]
            self.assertIsNone(result)
            self.assertEqual((error.code, error.message), ("MESSAGE_TOO_LARGE", "message of 9000000 bytes"))
        conn.request("jobs.cancel", {"jobId": "j_1"}, record("cancel1"))
        conn.request("jobs.cancel", {"jobId": "j_2"}, record("cancel2"))
        pump(conn, lambda: "cancel1" in answers and "cancel2" in answers, what="both ended by the unreadable answer")
        for name in ("cancel1", "cancel2"):
            self.assertEqual(answers[name][1].code, "BAD_MESSAGE")
            self.assertIn("unreadable answer from the daemon", answers[name][1].message)
        conn.request("jobs.logs", {"jobId": "j_1"}, record("logs"))
        pump(conn, lambda: "logs" in answers, what="the logs reply")
        self.assertEqual(answers["logs"], ({"lines": ["ok"]}, None))
        self.assertTrue(conn.status.connected)


def info_reply(aws_available, reason=""):
    aws = {"available": aws_available}
    if reason:
        aws["reason"] = reason
    return lambda request: json.dumps(
        {"type": "reply", "id": request["id"], "method": "daemon.info", "result": {"version": "9", "pid": 1, "backends": {"local": {"available": True}, "aws": aws}}}
    )


def stack_reply(status):
    return lambda request: json.dumps(
        {"type": "reply", "id": request["id"], "method": "stack.status", "result": {"stack": {"stackName": "skyfarm", "status": status, "outputs": {}}}}
    )


def list_reply(jobs):
    return lambda request: json.dumps({"type": "reply", "id": request["id"], "method": "jobs.list", "result": {"jobs": jobs}})


class PagedJobListTest(FakeDaemonTestCase):
    def test_a_reconnect_reads_every_page_before_replacing_the_table(self):
        # 450 jobs, newest first, in pages of 200 as the daemon sends them (jobs.list limit/before/next).
        jobs = [
            dict(JOB, id=f"j_{number:04d}", state="done", createdAt=f"2026-01-01T00:{number // 60:02d}:{number % 60:02d}.000Z")
            for number in range(450, 0, -1)
        ]

        def page(request):
            before = request["params"].get("before")
            start = 0 if before is None else next(i for i, job in enumerate(jobs) if job["id"] == before) + 1
            chunk = jobs[start : start + 200]
            result = {"jobs": chunk}
            if start + 200 < len(jobs):
                result["next"] = chunk[-1]["id"]
            return json.dumps({"type": "reply", "id": request["id"], "method": "jobs.list", "result": result})

        def after(conn, fake):
            answer_requests(conn, fake, {"daemon.info": info_reply(False, "no stack"), "jobs.list": page})

        fake, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.synced, what="the job table synced")
        self.assertEqual(len(live.jobs), 450, "every page entered the table")
        listed = [request["params"].get("before") for request in fake.requests if request["method"] == "jobs.list"]
        self.assertEqual(listed, [None, "j_0251", "j_0051"])
        self.assertIsNotNone(live.jobs.get("j_0001"), "the oldest job is known")


class BackendAvailabilityTest(FakeDaemonTestCase):
    def test_aws_stays_unavailable_with_the_daemons_reason_and_without_asking_aws(self):
        def after(conn, fake):
            answer_requests(conn, fake, {"daemon.info": info_reply(False, "no AWS stack deployed (skyfarm deploy)"), "jobs.list": list_reply([])})

        fake, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.local.available, what="daemon.info")
        self.assertFalse(live.aws.available)
        self.assertEqual(live.aws.reason, "no AWS stack deployed (skyfarm deploy)")
        time.sleep(0.2)
        self.assertNotIn("stack.status", [request["method"] for request in fake.requests])

    def test_a_known_stack_is_confirmed_with_stack_status(self):
        def after(conn, fake):
            answer_requests(conn, fake, {"daemon.info": info_reply(True), "stack.status": stack_reply("UPDATE_COMPLETE"), "jobs.list": list_reply([])})

        _, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.aws.available, what="AWS ready")
        self.assertIn("UPDATE_COMPLETE", live.aws.reason)

    def test_a_stack_in_progress_keeps_aws_greyed_out(self):
        def after(conn, fake):
            answer_requests(conn, fake, {"daemon.info": info_reply(True), "stack.status": stack_reply("UPDATE_IN_PROGRESS"), "jobs.list": list_reply([])})

        _, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.stack is not None, what="stack status")
        self.assertFalse(live.aws.available)
        self.assertIn("UPDATE_IN_PROGRESS", live.aws.reason)

    def test_check_again_asks_the_stack_and_stack_events_refresh(self):
        stack_states = ["CREATE_COMPLETE"]

        def after(conn, fake):
            def stack(request):
                return stack_reply(stack_states[0])(request)

            fake.conn = conn
            answer_requests(conn, fake, {"daemon.info": info_reply(False, "no AWS stack deployed"), "stack.status": stack, "jobs.list": list_reply([])})

        fake, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.local.available, what="daemon.info")
        self.assertFalse(live.aws.available)
        live.refresh_backends(check_stack=True)  # the panel's "Check Again"
        pump(conn, lambda: live.aws.available, what="AWS ready after Check Again")

        # A stack event about the stack itself (e.g. a deploy from the CLI) re-checks on its own.
        stack_states[0] = "DELETE_IN_PROGRESS"
        asked = len([r for r in fake.requests if r["method"] == "daemon.info"])
        event = {"stackName": "skyfarm", "resource": "skyfarm", "resourceType": "AWS::CloudFormation::Stack", "status": "UPDATE_COMPLETE", "reason": "", "timestamp": "2026-01-01T00:00:00Z"}
        fake.conn.send_frame(wsclient.OP_TEXT, json.dumps({"type": "event", "event": "stack.event", "data": event}).encode())
        pump(conn, lambda: len([r for r in fake.requests if r["method"] == "daemon.info"]) > asked, what="re-check after the stack event")


class ResyncTest(FakeDaemonTestCase):
    def test_jobs_list_replaces_the_table_and_reports_jobs_that_finished_meanwhile(self):
        done = dict(JOB, state="done", framesDone=6, progress=1.0, updatedAt="2026-01-01T00:09:00.000Z", message="6 frames")
        listings = [[JOB], [done]]

        def after(conn, fake):
            answer_requests(conn, fake, {"daemon.info": info_reply(False, "no stack"), "jobs.list": lambda request: list_reply(listings.pop(0))(request)})

        _, conn, live = self.start(welcome(), after)
        pump(conn, lambda: live.synced and live.jobs.get("j_1") is not None, what="first sync")
        live.take_notices()
        live.resync()  # what a reconnect does
        pump(conn, lambda: live.jobs.get("j_1")["state"] == "done", what="second sync")
        texts = [notice.text for notice in live.take_notices()]
        self.assertTrue(any("finished" in text for text in texts), texts)


class VersionHandshakeTest(FakeDaemonTestCase):
    """The add-on (0.1.0 here) and the daemon compare versions on connect; a mismatch says the fix."""

    def test_same_version_gives_no_hint(self):
        _, conn, _ = self.start(welcome(daemon={"name": "skyfarm", "version": "0.1.0"}))
        pump(conn, lambda: conn.status.connected, what="connected")
        self.assertEqual(conn.status.update_hint, "")

    def test_newer_daemon_asks_for_skyfarm_addon_install(self):
        _, conn, live = self.start(welcome(daemon={"name": "skyfarm", "version": "0.10.0"}))
        pump(conn, lambda: conn.status.connected, what="connected")
        self.assertIn("skyfarm 0.1.0, the daemon 0.10.0", conn.status.update_hint)
        self.assertIn("run `skyfarm addon install`", conn.status.update_hint)
        pump(conn, lambda: any("skyfarm addon install" in notice.text for notice in live.take_notices()), what="a notice")

    def test_older_daemon_asks_to_restart_it(self):
        _, conn, _ = self.start(welcome(daemon={"name": "skyfarm", "version": "0.0.9"}))
        pump(conn, lambda: conn.status.connected, what="connected")
        self.assertIn("(older): run `skyfarm daemon stop`, then Start Daemon", conn.status.update_hint)

    def test_version_hint(self):
        self.assertEqual(connection.version_hint("1.2.0", "1.2.0"), "")
        self.assertEqual(connection.version_hint("1.2.0", ""), "")
        self.assertIn("skyfarm addon install", connection.version_hint("1.2.0", "1.10.0"))
        self.assertIn("skyfarm daemon stop", connection.version_hint("1.10.0", "1.9.0"))
        self.assertIn("skyfarm addon install", connection.version_hint("1.2.0", "1.2.1-beta.1"))


if __name__ == "__main__":
    unittest.main()
