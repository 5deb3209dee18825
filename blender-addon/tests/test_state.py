"""The job table folds job.update snapshots and jobs.list replies into one consistent view."""

import unittest

from helpers import import_addon_module

state = import_addon_module("state")


def job(job_id, job_state="rendering", updated="2026-01-01T00:00:01.000Z", created="2026-01-01T00:00:00.000Z", **fields):
    base = {
        "id": job_id,
        "name": f"shot {job_id}",
        "state": job_state,
        "backend": "local",
        "blendFile": "/p/shot.blend",
        "scene": "Scene",
        "frames": "1-6",
        "output": "/p/render",
        "createdAt": created,
        "updatedAt": updated,
        "stages": {"upload": "done", "copy": "done", "render": "running", "publish": "pending"},
        "framesTotal": 6,
        "framesDone": 2,
        "framesFailed": 0,
        "failedFrames": [],
        "progress": 2 / 6,
        "etaSeconds": 30.0,
        "message": "rendering",
        "lastFrame": None,
    }
    base.update(fields)
    return base


class JobTableTest(unittest.TestCase):
    def test_apply_adds_and_replaces(self):
        table = state.JobTable()
        self.assertIsNone(table.apply(job("a")))
        self.assertIsNone(table.apply(job("a", updated="2026-01-01T00:00:02.000Z", framesDone=3)))
        self.assertEqual(table.get("a")["framesDone"], 3)
        self.assertEqual(len(table), 1)

    def test_older_snapshot_is_ignored(self):
        table = state.JobTable()
        table.apply(job("a", updated="2026-01-01T00:00:05.000Z", framesDone=5))
        revision = table.revision
        table.apply(job("a", updated="2026-01-01T00:00:04.000Z", framesDone=4))
        self.assertEqual(table.get("a")["framesDone"], 5)
        self.assertEqual(table.revision, revision, "ignoring a stale snapshot must not trigger a redraw")

    def test_identical_snapshot_does_not_bump_revision(self):
        table = state.JobTable()
        table.apply(job("a"))
        revision = table.revision
        table.apply(job("a"))
        self.assertEqual(table.revision, revision)

    def test_finishing_reports_a_transition_once(self):
        table = state.JobTable()
        table.apply(job("a"))
        transition = table.apply(job("a", "done", updated="2026-01-01T00:00:09.000Z", framesDone=6))
        self.assertIsNotNone(transition)
        self.assertEqual((transition.previous_state, transition.state), ("rendering", "done"))
        self.assertIsNone(table.apply(job("a", "done", updated="2026-01-01T00:00:10.000Z", framesDone=6)))

    def test_job_first_seen_finished_is_not_news(self):
        table = state.JobTable()
        self.assertIsNone(table.apply(job("old", "done")))
        self.assertEqual(table.replace_all([job("older", "failed")]), [])

    def test_replace_all_drops_vanished_jobs_and_reports_missed_finishes(self):
        table = state.JobTable()
        table.apply(job("a"))
        table.apply(job("b"))
        transitions = table.replace_all(
            [job("a", "failed", updated="2026-01-01T00:01:00.000Z", error={"code": "BLENDER_FAILED", "message": "boom"}), job("c")]
        )
        self.assertEqual([t.job["id"] for t in transitions], ["a"])
        self.assertIsNone(table.get("b"))
        self.assertIsNotNone(table.get("c"))

    def test_replace_all_keeps_a_newer_snapshot(self):
        table = state.JobTable()
        table.apply(job("a", updated="2026-01-01T00:00:09.000Z", framesDone=5))
        table.replace_all([job("a", updated="2026-01-01T00:00:08.000Z", framesDone=4)])
        self.assertEqual(table.get("a")["framesDone"], 5)

    def test_ordered_newest_first(self):
        table = state.JobTable()
        table.apply(job("a", created="2026-01-01T00:00:00.000Z"))
        table.apply(job("c", created="2026-01-03T00:00:00.000Z"))
        table.apply(job("b", created="2026-01-02T00:00:00.000Z"))
        self.assertEqual([j["id"] for j in table.ordered()], ["c", "b", "a"])


class FormattingTest(unittest.TestCase):
    def test_eta(self):
        self.assertEqual(state.format_eta(None), "")
        self.assertEqual(state.format_eta(0), "0 s")
        self.assertEqual(state.format_eta(59.4), "59 s")
        self.assertEqual(state.format_eta(65), "1 min 05 s")
        self.assertEqual(state.format_eta(3600 * 2 + 60 * 3 + 9), "2 h 03 min")

    def test_frames_label(self):
        self.assertEqual(state.frames_label(job("a")), "2/6 frames")
        self.assertEqual(state.frames_label(job("a", framesFailed=1)), "2/6 frames, 1 failed")

    def test_live_label(self):
        live = {"frame": 12, "samplesDone": 340, "samplesTotal": 1024, "rendering": 1}
        self.assertEqual(state.live_label(job("a", live=live, etaSeconds=2465)), "frame 12: 340/1024 samples · ETA 41 min 05 s")
        self.assertEqual(
            state.live_label(job("a", live=dict(live, rendering=3), etaSeconds=None)),
            "frame 12: 340/1024 samples (3 frames rendering)",
        )
        self.assertEqual(state.live_label(job("a", live=dict(live, samplesTotal=0, samplesDone=0))), "frame 12: starting · ETA 30 s")
        self.assertEqual(state.live_label(job("a")), "ETA 30 s", "between frames: the ETA alone")
        self.assertEqual(state.live_label(job("a", etaSeconds=None)), "")
        self.assertEqual(state.live_label(job("a", "done", live=live)), "", "nothing once the job ended")

    def test_finish_notices(self):
        table = state.JobTable()
        table.apply(job("a"))
        done = table.apply(job("a", "done", updated="2026-01-01T00:00:09.000Z", framesDone=6))
        self.assertEqual(state.finish_notice(done), ("INFO", 'skyfarm: "shot a" finished, 6/6 frames in /p/render'))
        table.apply(job("b"))
        failed = table.apply(
            job("b", "failed", updated="2026-01-01T00:00:09.000Z", error={"code": "BLENDER_FAILED", "message": "frame 3 crashed"})
        )
        level, text = state.finish_notice(failed)
        self.assertEqual(level, "ERROR")
        self.assertIn("frame 3 crashed", text)
        self.assertIn("BLENDER_FAILED", text)
        table.apply(job("c"))
        canceled = table.apply(job("c", "canceled", updated="2026-01-01T00:00:09.000Z"))
        self.assertEqual(state.finish_notice(canceled)[0], "WARNING")


if __name__ == "__main__":
    unittest.main()
