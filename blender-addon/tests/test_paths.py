"""State-dir discovery must match the daemon's, and daemon.json/token must be read defensively."""

import json
import os
import tempfile
import unittest

from daemon_process import DaemonProcess
from helpers import import_addon_module

paths = import_addon_module("paths")


class StateDirTest(unittest.TestCase):
    def test_precedence(self):
        self.assertEqual(paths.state_dir({"SKYFARM_HOME": "/a/b", "XDG_STATE_HOME": "/x", "HOME": "/h"}), "/a/b")
        self.assertEqual(paths.state_dir({"XDG_STATE_HOME": "/x", "HOME": "/h"}), "/x/skyfarm")
        self.assertEqual(paths.state_dir({"HOME": "/h"}), "/h/.local/state/skyfarm")

    def test_empty_values_fall_through(self):
        self.assertEqual(paths.state_dir({"SKYFARM_HOME": "", "XDG_STATE_HOME": "", "HOME": "/h"}), "/h/.local/state/skyfarm")


class ReadEndpointTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, content):
        with open(os.path.join(self.dir, name), "w", encoding="utf-8") as handle:
            handle.write(content)

    def test_reads_port_token_pid_version(self):
        self.write("daemon.json", json.dumps({"pid": 42, "port": 51234, "version": "0.1.0"}))
        self.write("token", "abc123\n")
        endpoint = paths.read_endpoint(self.dir)
        self.assertEqual((endpoint.port, endpoint.token, endpoint.pid, endpoint.version), (51234, "abc123", 42, "0.1.0"))

    def test_missing_daemon_json_means_not_running(self):
        with self.assertRaises(paths.DaemonNotRunning) as caught:
            paths.read_endpoint(self.dir)
        self.assertIn("not running", str(caught.exception))

    def test_broken_files_are_reported(self):
        cases = [
            ("{half", "abc", "not valid JSON"),
            ("[1]", "abc", "not a JSON object"),
            ('{"port": "80"}', "abc", "no valid port"),
            ('{"port": 0}', "abc", "no valid port"),
            ('{"port": 70000}', "abc", "no valid port"),
            ('{"port": true}', "abc", "no valid port"),
            ('{"port": 5000}', "", "empty or malformed"),
            ('{"port": 5000}', "two words", "empty or malformed"),
        ]
        for info, token, expected in cases:
            with self.subTest(info=info, token=token):
                self.write("daemon.json", info)
                self.write("token", token)
                with self.assertRaises(paths.DaemonInfoInvalid) as caught:
                    paths.read_endpoint(self.dir)
                self.assertIn(expected, str(caught.exception))

    def test_missing_token(self):
        self.write("daemon.json", '{"port": 5000}')
        with self.assertRaises(paths.DaemonInfoInvalid) as caught:
            paths.read_endpoint(self.dir)
        self.assertIn("token", str(caught.exception))


class DaemonLockTest(unittest.TestCase):
    """daemon.json outlives a killed daemon; its lock does not. The add-on must not send the token to
    whatever listens on that port now."""

    def test_killed_daemon_is_not_running(self):
        daemon = DaemonProcess()
        self.addCleanup(daemon.cleanup)
        daemon.start()
        self.assertIs(paths.daemon_lock_held(daemon.home), True, "the running daemon holds its lock")
        self.assertEqual(paths.read_endpoint(daemon.home).port, daemon.port)
        daemon.kill()
        self.assertTrue(os.path.exists(os.path.join(daemon.home, "daemon.json")), "a kill leaves daemon.json")
        self.assertIs(paths.daemon_lock_held(daemon.home), False)
        with self.assertRaises(paths.DaemonNotRunning) as caught:
            paths.read_endpoint(daemon.home)
        self.assertIn("has exited", str(caught.exception))

    def test_no_lock_file_leaves_daemon_json_to_decide(self):
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "daemon.lock"), "w", encoding="utf-8") as handle:
                handle.write("12345")  # an older daemon's pid file: cannot tell
            self.assertIsNone(paths.daemon_lock_held(directory))
            self.assertIsNone(paths.daemon_lock_held(os.path.join(directory, "nowhere")))


if __name__ == "__main__":
    unittest.main()
