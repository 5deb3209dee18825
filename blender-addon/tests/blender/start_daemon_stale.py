"""`blender -b`: Start Daemon succeeds while the previous daemon, killed, is still an unreaped zombie.

The test (test/addon-start-daemon-stale.test.ts) leaves daemon.json of a daemon it killed with
SIGKILL and whose parent never reaps it; ARGS["deadPid"] is that daemon's pid. Timers do not run in
background mode: the add-on's timer callbacks are driven by hand (support.pump).
"""

import json
import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402
from support import check, log  # noqa: E402

ARGS = support.arguments()


def live():
    return bpy.context.window_manager.skyfarm


def daemon_pid():
    with open(os.path.join(os.environ["SKYFARM_HOME"], "daemon.json"), encoding="utf-8") as handle:
        return json.load(handle)["pid"]


def scenario():
    support.enable_addon(ARGS)
    operators = support.addon("operators")
    sync = support.addon("sync")

    support.pump(15, lambda: live().connection_state == "not_running", "the add-on to see no daemon")
    log(f"before: {live().connection_state}: {live().connection_detail}")
    check(daemon_pid() == ARGS["deadPid"], "daemon.json should still name the killed daemon")

    check(bpy.ops.skyfarm.start_daemon() == {"FINISHED"}, "Start Daemon did not run")

    def started():
        if operators._starting:
            operators._poll_start_processes()  # its timer does not fire in background mode
        failures = [text for level, text in sync.reported if level == "ERROR"]
        check(not failures, f"Start Daemon reported a failure: {failures}")
        return not operators._starting and live().connection_state == "connected"

    support.pump(90, started, "Start Daemon to finish and the add-on to connect")
    reports = [text for _level, text in sync.reported]
    log(f"reports: {reports}")
    check(any("skyfarm daemon started" in text for text in reports), f"no 'started' report: {reports}")
    check(daemon_pid() != ARGS["deadPid"], "a new daemon should have written daemon.json")
    support.pump(15, lambda: sync.session.local.available, "the local backend of the new daemon")
    log(f"connected to the new daemon (pid {daemon_pid()}): {live().connection_detail}")


support.run_in_background(scenario)
