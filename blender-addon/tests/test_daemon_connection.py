"""The add-on's connection and session against the real daemon: auth, fragmentation, restarts.

Everything here runs without Blender's Python; the daemon is the real built CLI in a private
state dir.
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

from daemon_process import DaemonProcess
from helpers import import_addon_module

codec = import_addon_module("codec")
connection = import_addon_module("connection")
protocol = import_addon_module("protocol")
session_module = import_addon_module("session")
wsclient = import_addon_module("wsclient")


def fast_connection(state_dir, **kwargs):
    return connection.DaemonConnection(
        "blender-addon-test",
        "0.0.1",
        state_dir=lambda: state_dir,
        backoff=wsclient.Backoff(initial=0.05, maximum=0.3),
        **kwargs,
    )


def pump_until(conn, predicate, timeout=15.0, what="condition"):
    """Drains the connection like the add-on's timer does until predicate() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.drain(0.002)
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; status: {conn.status}")


class Replies:
    """Collects request callbacks by name."""

    def __init__(self):
        self.results = {}

    def callback(self, name):
        def record(result, error):
            self.results[name] = (result, error)

        return record

    def __contains__(self, name):
        return name in self.results

    def __getitem__(self, name):
        return self.results[name]


class DaemonTestCase(unittest.TestCase):
    def setUp(self):
        self.daemon = DaemonProcess().start()
        self.addCleanup(self.daemon.cleanup)
        self.connections = []

    def connect(self, state_dir=None, **kwargs):
        conn = fast_connection(state_dir or self.daemon.home, **kwargs)
        self.connections.append(conn)
        self.addCleanup(conn.stop)
        conn.start()
        return conn


class HandshakeWithDaemonTest(DaemonTestCase):
    def test_connects_and_answers_requests(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        with open(os.path.join(self.daemon.home, "daemon.json"), encoding="utf-8") as handle:
            info = json.load(handle)
        self.assertEqual(conn.status.daemon_version, info["version"])
        self.assertEqual(conn.status.port, self.daemon.port)
        self.assertEqual(conn.status.daemon_protocol, protocol.PROTOCOL_VERSION)
        replies = Replies()
        conn.request("jobs.list", {}, replies.callback("list"))
        conn.request("daemon.info", {}, replies.callback("info"))
        pump_until(conn, lambda: "list" in replies and "info" in replies, what="replies")
        self.assertEqual(replies["list"], ({"jobs": []}, None))
        info_result, error = replies["info"]
        self.assertIsNone(error)
        self.assertEqual(info_result["pid"], self.daemon.process.pid)

    def test_daemon_error_reply_reaches_the_callback(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        replies = Replies()
        conn.request("jobs.get", {"jobId": "j_doesnotexist"}, replies.callback("get"))
        pump_until(conn, lambda: "get" in replies, what="error reply")
        result, error = replies["get"]
        self.assertIsNone(result)
        self.assertEqual(error.code, "JOB_NOT_FOUND")

    def test_wrong_token_is_refused_with_401(self):
        forged = tempfile.mkdtemp(prefix="skyfarm-forged-")
        self.addCleanup(shutil.rmtree, forged, True)
        shutil.copy(os.path.join(self.daemon.home, "daemon.json"), forged)
        with open(os.path.join(forged, "token"), "w", encoding="utf-8") as handle:
            handle.write("not-the-token\n")
        conn = self.connect(state_dir=forged)
        pump_until(conn, lambda: conn.status.state == connection.UNAUTHORIZED, what="unauthorized")
        self.assertIn("401", conn.status.detail)
        replies = Replies()
        conn.request("jobs.list", {}, replies.callback("list"))
        pump_until(conn, lambda: "list" in replies, what="refusal")
        self.assertEqual(replies["list"][1].code, "DAEMON_UNREACHABLE")

    def test_raw_upgrade_without_token_gets_401(self):
        with self.assertRaises(wsclient.HandshakeError) as caught:
            wsclient.WebSocket.connect("127.0.0.1", self.daemon.port, "/ws", timeout=5)
        self.assertEqual(caught.exception.status, 401)
        ws = wsclient.WebSocket.connect(
            "127.0.0.1", self.daemon.port, "/ws", headers={"Authorization": f"Bearer {self.daemon.token()}"}, timeout=5
        )
        ws.send_text(codec.encode_hello("raw", "1"))
        welcome = codec.decode_server_message(ws.receive(timeout=5))
        self.assertTrue(welcome.ok, welcome.error)
        self.assertEqual(welcome.message["type"], "welcome")
        ws.close()

    def test_newer_client_protocol_is_refused_with_advice(self):
        original = protocol.PROTOCOL_VERSION
        protocol.PROTOCOL_VERSION = original + 1
        self.addCleanup(setattr, protocol, "PROTOCOL_VERSION", original)
        conn = self.connect()
        pump_until(conn, lambda: conn.status.state == connection.INCOMPATIBLE, what="incompatible")
        self.assertIn("protocol", conn.status.detail)
        self.assertIn("update", conn.status.detail.lower())


class FragmentationWithDaemonTest(DaemonTestCase):
    def test_fragmented_requests_are_reassembled_by_the_daemon(self):
        conn = self.connect(fragment_size=7)
        pump_until(conn, lambda: conn.status.connected, what="connected")
        replies = Replies()
        conn.request("jobs.list", {}, replies.callback("list"))
        pump_until(conn, lambda: "list" in replies, what="reply to a fragmented request")
        self.assertEqual(replies["list"], ({"jobs": []}, None))

    def test_large_fragmented_submit_gets_a_typed_answer(self):
        conn = self.connect(fragment_size=4096)
        pump_until(conn, lambda: conn.status.connected, what="connected")
        dependencies = [{"path": f"/nowhere/texture_{index:05d}.png", "kind": "image", "missing": True} for index in range(3000)]
        missing_blend = os.path.join(self.daemon.home, "no-such-file.blend")
        replies = Replies()
        conn.request("render.submit", {"blendFile": missing_blend, "dependencies": dependencies}, replies.callback("submit"))
        pump_until(conn, lambda: "submit" in replies, what="submit reply")
        result, error = replies["submit"]
        self.assertIsNone(result)
        self.assertEqual(error.code, "FILE_NOT_FOUND")


def fluid_cache_dependencies(approximate_bytes):
    """Missing dependencies with long paths, like a fluid cache's, about approximate_bytes as JSON."""
    folder = "/projects/" + "long folder name " * 6 + "/cache_fluid_8c2e/data"
    count = approximate_bytes // (len(folder) + 70)
    return [{"path": f"{folder}/fluid_data_{index:04d}.vdb", "kind": "volume", "missing": True} for index in range(count)]


class OversizedRequestTest(DaemonTestCase):
    def test_a_request_over_the_limit_is_refused_at_once_with_its_size(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        with self.assertRaises(ValueError) as caught:
            conn.request("jobs.get", {"jobId": "j" * (2 * 1024 * 1024)}, lambda result, error: None)
        self.assertRegex(str(caught.exception), r"MESSAGE_TOO_LARGE: jobs\.get request of \d{7} bytes exceeds the limit of 1048576")

    def test_a_100000_file_list_travels_by_reference(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        project = tempfile.mkdtemp(prefix="skyfarm-list-")
        self.addCleanup(shutil.rmtree, project, True)
        blend = os.path.join(project, "shot.blend")
        with open(blend, "wb") as handle:
            handle.write(b"BLENDER-v304" + b"\1" * 256)
        present = []
        for index in range(20):
            path = os.path.join(project, "textures", f"plate_{index}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(f"texture {index}")
            present.append({"path": path, "kind": "image", "missing": False, "relative": True})
        folder = os.path.join(project, "caches", "fluid simulation of the harbour — take 12 (final)", "data")
        missing = [
            {"path": f"{folder}/fluid_data_particles_and_mesh_{index:06d}.vdb", "kind": "volume", "missing": True}
            for index in range(100_000 - len(present))
        ]
        lists = os.path.join(self.daemon.home, "lists")
        seen = []
        replies = Replies()
        conn.request("project.upload", {"blendFile": blend, "dependencies": present + missing}, replies.callback("upload"))
        # Written on this (the caller's) thread before the request goes out: 0600, in a 0700 folder.
        for name in os.listdir(lists):
            seen.append((os.stat(os.path.join(lists, name)).st_mode & 0o777, os.stat(lists).st_mode & 0o777))
        pump_until(conn, lambda: "upload" in replies, timeout=60, what="the upload's reply")
        result, error = replies["upload"]
        self.assertIsNone(error)
        self.assertEqual(result["files"], len(present) + 1)
        self.assertEqual(result["missingCount"], len(missing))
        self.assertEqual(result["missing"][:2], [missing[0]["path"], missing[1]["path"]])
        self.assertLessEqual(len(result["missing"]), protocol.LIMITS["maxMissingListed"])
        self.assertEqual(seen, [(0o600, 0o700)])
        self.assertEqual(os.listdir(lists), [], "the daemon removed the list it read")

    def test_a_request_the_daemon_will_not_read_fails_with_its_reason_and_others_go_on(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        replies = Replies()
        params = {"blendFile": "/nowhere/x.blend", "dependencies": fluid_cache_dependencies(2 * 1024 * 1024)}
        # This client sends what the protocol refuses, as an older add-on would.
        original = protocol.MAX_MESSAGE_BYTES
        protocol.MAX_MESSAGE_BYTES = 8 * original
        try:
            conn.request("jobs.list", {}, replies.callback("before"))
            conn.request("project.upload", params, replies.callback("oversized"))
            conn.request("jobs.list", {}, replies.callback("after"))
        finally:
            protocol.MAX_MESSAGE_BYTES = original
        pump_until(conn, lambda: all(name in replies for name in ("before", "oversized", "after")), what="answers")
        result, error = replies["oversized"]
        self.assertIsNone(result)
        self.assertEqual(error.code, "MESSAGE_TOO_LARGE")
        self.assertRegex(error.message, r"project\.upload request of \d{7} bytes exceeds the limit of 1048576 bytes")
        self.assertEqual(replies["before"], ({"jobs": []}, None))
        self.assertEqual(replies["after"], ({"jobs": []}, None))
        self.assertTrue(conn.status.connected, "the connection survives")

    def test_the_daemon_names_the_request_of_a_raw_oversized_message(self):
        ws = wsclient.WebSocket.connect(
            "127.0.0.1", self.daemon.port, "/ws", headers={"Authorization": f"Bearer {self.daemon.token()}"}, timeout=5
        )
        self.addCleanup(ws.close, 1000, "", 0)
        ws.send_text(codec.encode_hello("raw", "1"))
        self.assertEqual(json.loads(ws.receive(timeout=5))["type"], "welcome")
        params = {"blendFile": "/nowhere/x.blend", "dependencies": fluid_cache_dependencies(1536 * 1024)}
        # The id comes last, after 1.5 MB the daemon does not parse.
        ws.send_text(json.dumps({"type": "request", "method": "project.upload", "params": params, "id": "b77"}))
        verdict = codec.decode_server_message(ws.receive(timeout=10))
        self.assertTrue(verdict.ok, verdict.error)
        self.assertEqual(
            (verdict.message["type"], verdict.message["id"], verdict.message["code"]), ("error", "b77", "MESSAGE_TOO_LARGE")
        )


class GarbageToDaemonTest(DaemonTestCase):
    def test_daemon_answers_garbage_with_a_decodable_error(self):
        ws = wsclient.WebSocket.connect(
            "127.0.0.1", self.daemon.port, "/ws", headers={"Authorization": f"Bearer {self.daemon.token()}"}, timeout=5
        )
        self.addCleanup(ws.close, 1000, "", 0)
        ws.send_text("\x00\x01garbage")
        verdict = codec.decode_server_message(ws.receive(timeout=5))
        self.assertTrue(verdict.ok, verdict.error)
        self.assertEqual((verdict.message["type"], verdict.message["code"]), ("error", "BAD_MESSAGE"))


class RestartTest(DaemonTestCase):
    def test_reconnects_after_the_daemon_restarts_and_resyncs(self):
        conn = self.connect()
        live = session_module.DaemonSession(conn)
        pump_until(conn, lambda: live.synced, what="first sync")

        # Requests sent while the daemon goes away are answered, not left hanging.
        replies = Replies()
        self.daemon.stop()
        pump_until(conn, lambda: not conn.status.connected, what="disconnect after stop")
        self.assertTrue(conn.status.lost, "after losing the daemon the status must say disconnected")
        self.assertFalse(live.synced)
        conn.request("jobs.list", {}, replies.callback("while-down"))
        pump_until(conn, lambda: "while-down" in replies, what="refusal while down")
        self.assertEqual(replies["while-down"][1].code, "DAEMON_UNREACHABLE")

        self.daemon.start()
        pump_until(conn, lambda: conn.status.connected and live.synced, timeout=20, what="reconnect")
        self.assertFalse(conn.status.lost)
        # Port 0 means the restarted daemon may listen elsewhere: the client re-reads daemon.json.
        self.assertEqual(conn.status.port, self.daemon.port)
        pump_until(conn, lambda: live.local.available, what="backends after reconnect")

    def test_reconnects_after_a_crash_with_stale_daemon_json(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        self.daemon.kill()
        pump_until(conn, lambda: conn.status.state == connection.NOT_RUNNING, what="not running after crash")
        self.assertTrue(conn.status.lost)
        # Its daemon.json is left behind, its lock is not: the add-on does not even try the old port.
        self.assertIn("has exited", conn.status.detail)
        self.daemon.start()
        pump_until(conn, lambda: conn.status.connected, timeout=20, what="reconnect after crash")

    def test_no_daemon_at_all(self):
        empty = tempfile.mkdtemp(prefix="skyfarm-empty-")
        self.addCleanup(shutil.rmtree, empty, True)
        conn = self.connect(state_dir=empty)
        pump_until(conn, lambda: conn.status.state == connection.NOT_RUNNING, what="not running")
        self.assertFalse(conn.status.lost, "never connected, so not 'disconnected'")
        self.assertIn("not running", conn.status.detail)

    def test_stop_ends_the_thread_promptly(self):
        conn = fast_connection(self.daemon.home)
        conn.start()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        started = time.monotonic()
        self.assertTrue(conn.stop(timeout=3))
        self.assertLess(time.monotonic() - started, 3)


# Modules imported on the add-on's network thread, recorded by an audit hook (hooks cannot be
# removed, so this one only records while a test asks it to).
_thread_imports = []
_recording_imports = threading.Event()


def _record_network_thread_import(event, args):
    if event == "import" and _recording_imports.is_set():
        if threading.current_thread().name == "skyfarm-daemon-connection":
            _thread_imports.append(args[0])


sys.addaudithook(_record_network_thread_import)


class NetworkThreadImportsNothingTest(DaemonTestCase):
    """A module import on the network thread crashed Blender 3.4's GUI (getaddrinfo's first call
    imports encodings.idna; the segfault was in _compile_bytecode). Everything the thread needs is
    imported on the main thread, when the add-on loads."""

    def test_connect_requests_errors_and_reconnect_import_nothing(self):
        _thread_imports.clear()
        _recording_imports.set()
        self.addCleanup(_recording_imports.clear)
        conn = self.connect()
        live = session_module.DaemonSession(conn)
        pump_until(conn, lambda: live.synced, what="first sync")
        replies = Replies()
        conn.request("jobs.get", {"jobId": "j_doesnotexist"}, replies.callback("missing"))
        conn.request("daemon.info", {}, replies.callback("info"))
        pump_until(conn, lambda: "missing" in replies and "info" in replies, what="replies")
        self.assertEqual(replies["missing"][1].code, "JOB_NOT_FOUND")
        self.daemon.kill()
        pump_until(conn, lambda: conn.status.state == connection.NOT_RUNNING, what="not running after a kill")
        self.daemon.start()
        pump_until(conn, lambda: conn.status.connected and live.synced, timeout=20, what="reconnect")
        self.assertTrue(conn.stop(timeout=3))
        self.assertEqual(_thread_imports, [], "the network thread imported modules")


class PausedTest(DaemonTestCase):
    """paused() parks the network thread so bpy.ops inside temp_override cannot race it."""

    def test_nothing_is_sent_or_received_while_paused_and_all_of_it_after(self):
        conn = self.connect()
        pump_until(conn, lambda: conn.status.connected, what="connected")
        replies = Replies()
        with conn.paused() as parked:
            self.assertTrue(parked, "an idle connection parks at once")
            conn.request("daemon.info", {}, replies.callback("info"))
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                conn.drain(0.002)
                time.sleep(0.01)
            self.assertNotIn("info", replies, "the network thread ran while paused")
        pump_until(conn, lambda: "info" in replies, what="the reply after the pause")
        self.assertIsNone(replies["info"][1])

    def test_a_thread_stuck_in_a_handshake_does_not_hold_the_caller_forever(self):
        import socket as socket_module

        silent = socket_module.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        self.addCleanup(silent.close)
        state = tempfile.mkdtemp(prefix="skyfarm-silent-")
        self.addCleanup(shutil.rmtree, state, True)
        with open(os.path.join(self.daemon.home, "daemon.json"), encoding="utf-8") as handle:
            info = json.load(handle)
        info["port"] = silent.getsockname()[1]
        with open(os.path.join(state, "daemon.json"), "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        with open(os.path.join(state, "token"), "w", encoding="utf-8") as handle:
            handle.write("t" * 43)
        os.chmod(state, 0o700)
        os.chmod(os.path.join(state, "token"), 0o600)
        conn = self.connect(state_dir=state, handshake_timeout=5.0)
        pump_until(conn, lambda: conn.status.state == connection.CONNECTING and conn.status.port, what="connecting")
        time.sleep(0.2)  # the thread now waits for the silent server's handshake answer
        started = time.monotonic()
        with conn.paused(timeout=0.3) as parked:
            waited = time.monotonic() - started
        self.assertFalse(parked)
        self.assertLess(waited, 2.0)


if __name__ == "__main__":
    unittest.main()
