"""Runs the real skyfarm daemon (the built CLI, `npm run build`) in a private state dir.

Each test gets its own SKYFARM_HOME and SKYFARM_PORT=0, and every process started here is stopped
by its pid.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from helpers import REPO_ROOT

CLI = os.path.join(REPO_ROOT, "dist", "daemon", "src", "cli", "main.js")
NODE = os.environ.get("SKYFARM_TEST_NODE", "node")


def require_built_daemon():
    if not os.path.exists(CLI):
        raise RuntimeError(f"{CLI} is missing: run `npm run build` first (npm test does)")


class DaemonProcess:
    def __init__(self, home=None):
        require_built_daemon()
        self._tmp = None
        if home is None:
            self._tmp = tempfile.mkdtemp(prefix="skyfarm-addon-test-")
            home = os.path.join(self._tmp, "home")
        self.home = home
        self.process = None
        self.log_path = os.path.join(os.path.dirname(home), "daemon-output.log")

    def environment(self):
        env = dict(os.environ)
        env.update({"SKYFARM_HOME": self.home, "SKYFARM_PORT": "0", "SKYFARM_LOG_LEVEL": "warn"})
        return env

    def start(self, timeout=60.0):
        """Starts `skyfarm daemon` in the foreground and waits until daemon.json names its port."""
        info_path = os.path.join(self.home, "daemon.json")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [NODE, CLI, "daemon"], env=self.environment(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}:\n{self.output()}")
            try:
                with open(info_path, encoding="utf-8") as handle:
                    info = json.load(handle)
                if info.get("pid") == self.process.pid:
                    self.port = info["port"]
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the daemon did not write daemon.json within {timeout} s:\n{self.output()}")

    def stop(self, timeout=15.0):
        """SIGTERM, as `skyfarm daemon stop` does; the daemon removes daemon.json on the way out."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self):
        """SIGKILL: a crash, leaving a stale daemon.json behind."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def token(self):
        with open(os.path.join(self.home, "token"), encoding="utf-8") as handle:
            return handle.read().strip()

    def output(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-4000:]
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
