"""Runs inside real Blender (`blender -b --factory-startup --python addon_tick.py -- JSON`) for the
addon_tick_ms metric.

Enables the skyfarm add-on from the source tree (its register() connects to the daemon named by
SKYFARM_HOME), waits until it is connected and has the job list, prints SKYFARM_BENCH_READY, then
drives the add-on's timer callback `skyfarm.sync.tick()` exactly as bpy.app.timers would (call it,
sleep the delay it returns; timers never fire in `blender -b`) while the bench pushes job updates
through the daemon. Every tick between the first bench job arriving and the end marker is timed with
perf_counter; the result is one line `SKYFARM_BENCH_RESULT {json}`.
"""

import json
import sys
import time
import traceback

import addon_utils

ARGS = json.loads(sys.argv[sys.argv.index("--") + 1])
END_JOB = ARGS["endJob"]
PREFIX = ARGS["jobPrefix"]


def _raise(error):
    raise error


def main():
    sys.path.insert(0, ARGS["addonSource"])
    module = addon_utils.enable("skyfarm", default_set=True, handle_error=_raise)
    if module is None:
        raise RuntimeError("addon_utils.enable returned nothing")
    from skyfarm import sync

    deadline = time.monotonic() + ARGS["connectTimeout"]
    while not (sync.session is not None and sync.session.status.connected and sync.session.synced):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not connected to the daemon: {sync.session.status if sync.session else None}")
        sync.tick()
        time.sleep(0.02)
    print("SKYFARM_BENCH_READY", flush=True)

    durations = []
    measuring = False
    revision_start = 0
    first_job_at = None
    deadline = time.monotonic() + ARGS["runTimeout"]
    while time.monotonic() < deadline:
        started = time.perf_counter()
        delay = sync.tick()
        elapsed = time.perf_counter() - started
        if measuring:
            durations.append(elapsed)
        elif any(job_id.startswith(PREFIX) for job_id in sync.session.jobs.ids()):
            # This tick applied the first bench update: it counts too.
            measuring = True
            durations.append(elapsed)
            revision_start = sync.session.jobs.revision
            first_job_at = time.monotonic()
        if END_JOB in sync.session.jobs:
            break
        time.sleep(delay if delay is not None else 0.1)
    else:
        raise RuntimeError("the end marker never arrived")

    window = time.monotonic() - first_job_at
    ordered = sorted(durations)

    def quantile(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    wm = sync._window_manager()
    result = {
        "ticks": len(durations),
        "maxMs": ordered[-1] * 1000,
        "p50Ms": quantile(0.5),
        "p99Ms": quantile(0.99),
        "meanMs": sum(durations) / len(durations) * 1000,
        "over5ms": sum(1 for d in durations if d > 0.005),
        "jobUpdatesApplied": sync.session.jobs.revision - revision_start + 1,
        "seconds": window,
        "rowsInWindowManager": len(wm.skyfarm.jobs) if wm is not None else -1,
        "slowestTickSeconds": sync.slowest_tick_seconds,
    }
    print("SKYFARM_BENCH_RESULT " + json.dumps(result), flush=True)


try:
    main()
except Exception:
    traceback.print_exc()
    print("SKYFARM_BENCH_FAILED", flush=True)
    sys.stdout.flush()
    import os

    os._exit(1)
import os  # noqa: E402

sys.stdout.flush()
os._exit(0)
