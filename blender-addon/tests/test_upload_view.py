"""The upload as the status panel shows it, and missing files before submit (no Blender needed)."""

import os
import shutil
import tempfile
import types
import unittest

from helpers import import_addon_module

session_module = import_addon_module("session")
submission = import_addon_module("submission")

MB = 1_000_000


def progress(job_id="j_1", files=(3, 8), done=120 * MB, total=400 * MB, rate=85.2 * MB, eta=4.0):
    return {
        "jobId": job_id, "filesDone": files[0], "filesTotal": files[1], "bytesDone": done, "bytesTotal": total,
        "bytesPerSecond": rate, "etaSeconds": eta,
    }


def job(state, upload="running", job_id="j_1", updated="2026-01-01T00:00:01.000Z"):
    return {
        "id": job_id, "name": "shot · Scene", "state": state, "backend": "local", "blendFile": "/p/shot.blend",
        "scene": "Scene", "frames": "1-6", "output": "/p/render", "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": updated, "stages": {"upload": upload, "copy": "pending", "render": "pending", "publish": "pending"},
        "framesTotal": 6, "framesDone": 0, "framesFailed": 0, "failedFrames": [], "progress": 0.0,
        "etaSeconds": None, "message": "", "lastFrame": None,
    }


class DescribeUploadTest(unittest.TestCase):
    def test_files_bytes_rate_and_eta_in_one_line(self):
        view = session_module.describe_upload(progress())
        self.assertEqual(view.text, "3/8 files · 120/400 MB · 85.2 MB/s · ETA 4 s")
        self.assertEqual(view.short, "120/400 MB")
        self.assertAlmostEqual(view.fraction, 0.3)
        self.assertEqual((view.files_done, view.files_total), (3, 8))

    def test_before_the_first_byte_there_is_no_rate_or_eta(self):
        view = session_module.describe_upload(progress(files=(0, 8), done=0, rate=0, eta=None))
        self.assertEqual(view.text, "0/8 files · 0/400 MB")
        self.assertEqual(view.fraction, 0.0)

    def test_no_rate_or_eta_from_the_first_few_bytes(self):
        view = session_module.describe_upload(progress(files=(1, 8), done=600_000, rate=500, eta=2_000_000))
        self.assertEqual(view.text, "1/8 files · 1/400 MB")
        view = session_module.describe_upload(progress(files=(1, 8), done=2 * MB, rate=1.7 * MB, eta=372))
        self.assertEqual(view.text, "1/8 files · 2/400 MB · 1.7 MB/s")
        view = session_module.describe_upload(progress(files=(1, 8), done=4 * MB, rate=1.7 * MB, eta=372))
        self.assertEqual(view.text, "1/8 files · 4/400 MB · 1.7 MB/s · ETA 6 min 12 s")

    def test_units_follow_the_total(self):
        self.assertEqual(session_module.format_bytes_pair(3_400_000, 8_000_000), "3.4/8.0 MB")
        self.assertEqual(session_module.format_bytes_pair(1_250_000_000, 2_000_000_000), "1.25/2.00 GB")
        self.assertEqual(session_module.format_bytes_pair(512_000, 900_000), "512/900 KB")
        self.assertEqual(session_module.format_bytes_pair(10, 700), "10/700 B")
        self.assertEqual(session_module.format_rate(1.5e9), "1.50 GB/s")
        self.assertEqual(session_module.format_rate(40_000), "40 KB/s")

    def test_long_eta_and_done(self):
        view = session_module.describe_upload(progress(done=400 * MB, files=(8, 8), eta=0))
        self.assertEqual(view.text, "8/8 files · 400/400 MB · 85.2 MB/s")
        self.assertEqual(view.fraction, 1.0)
        self.assertIn("ETA 1 h 01 min", session_module.describe_upload(progress(eta=3700)).text)

    def test_empty_project_and_overshoot_stay_within_the_bar(self):
        self.assertEqual(session_module.describe_upload(progress(done=0, total=0, rate=0, eta=None)).fraction, 0.0)
        self.assertEqual(session_module.describe_upload(progress(done=500 * MB)).fraction, 1.0)


class SessionUploadsTest(unittest.TestCase):
    def setUp(self):
        self.link = types.SimpleNamespace(listeners=types.SimpleNamespace(), request=lambda *args, **kwargs: "r_1")
        self.session = session_module.DaemonSession(self.link)

    def event(self, name, data):
        self.link.listeners.on_event(name, data)

    def test_latest_progress_per_job_changes_the_revision(self):
        self.event("job.update", job("uploading"))
        before = self.session.revision
        self.event("upload.progress", progress(done=10 * MB))
        self.event("upload.progress", progress(done=20 * MB))
        self.assertGreater(self.session.revision, before)
        self.assertEqual(self.session.upload_view("j_1").bytes_done, 20 * MB)
        self.assertIsNone(self.session.upload_view("j_other"))

    def test_a_canceled_upload_keeps_where_it_stopped_and_ignores_late_events(self):
        self.event("job.update", job("uploading"))
        self.event("upload.progress", progress(done=120 * MB))
        self.event("job.update", job("canceled", upload="canceled", updated="2026-01-01T00:00:02.000Z"))
        revision = self.session.revision
        self.event("upload.progress", progress(done=130 * MB))  # sent before the cancel, read after it
        self.assertEqual(self.session.revision, revision)
        self.assertEqual(self.session.upload_view("j_1").bytes_done, 120 * MB)
        self.assertTrue(session_module.upload_stopped(self.session.jobs.get("j_1")))

    def test_a_finished_upload_is_not_a_stopped_one(self):
        self.assertFalse(session_module.upload_stopped(job("rendering", upload="done")))
        self.assertFalse(session_module.upload_stopped(job("canceled", upload="done")))
        self.assertTrue(session_module.upload_stopped(job("failed", upload="failed")))

    def test_progress_of_a_plain_project_upload_is_not_a_job(self):
        self.event("upload.progress", progress(job_id=None))
        self.assertEqual(self.session.uploads, {})


BLEND = "/projects/shot/scenes/shot.blend"


class MissingFilesTest(unittest.TestCase):
    def test_paths_relative_to_the_blend_when_near_it(self):
        self.assertEqual(submission.display_path("/projects/shot/scenes/textures/wood.png", BLEND), "textures/wood.png")
        self.assertEqual(submission.display_path("/projects/shot/lib/metal.png", BLEND), "../lib/metal.png")
        self.assertEqual(submission.display_path("/mnt/share/hdri/sky.exr", BLEND), "/mnt/share/hdri/sky.exr")
        self.assertEqual(submission.display_path("/mnt/x.png", ""), "/mnt/x.png")

    def test_summary_names_the_first_files(self):
        base = "/projects/shot/scenes/textures/"
        self.assertEqual(
            submission.missing_summary([base + "wood.png", base + "metal.png"], BLEND),
            "2 files missing: textures/wood.png, textures/metal.png",
        )
        self.assertEqual(submission.missing_summary([base + "wood.png"], BLEND), "1 file missing: textures/wood.png")
        many = [f"{base}t{i}.png" for i in range(5)]
        self.assertEqual(
            submission.missing_summary(many, BLEND),
            "5 files missing: textures/t0.png, textures/t1.png, textures/t2.png, …",
        )

    def test_strict_refuses_with_the_files_and_what_to_do(self):
        self.assertIsNone(submission.strict_problem([], BLEND))
        problem = submission.strict_problem(["/projects/shot/scenes/textures/wood.png"], BLEND)
        self.assertTrue(problem.startswith("Strict: 1 file missing: textures/wood.png."), problem)
        self.assertIn("turn Strict off", problem)


FACTS = submission.SceneFacts(
    blend_path=BLEND, scene_name="Scene", frame_start=1, frame_end=4, frame_step=1,
    render_filepath="//render/frame_####", has_camera=True,
)
SETTINGS = submission.SubmitSettings(backend="local", frame_mode="SCENE", frame_spec="", chunk_size=2, output_folder="")
DEPENDENCIES = [
    {"path": "/projects/shot/scenes/textures/wood.png", "kind": "image", "missing": True, "relative": True},
    {"path": "/projects/shot/scenes/textures/oak.png", "kind": "image", "missing": False, "relative": True},
]


class StrictParamsTest(unittest.TestCase):
    def test_strict_refuses_before_sending(self):
        strict = submission.SubmitSettings(**{**SETTINGS.__dict__, "strict": True})
        with self.assertRaises(submission.SubmitProblem) as caught:
            submission.build_params(FACTS, strict, "/tmp/copy.blend", DEPENDENCIES)
        self.assertIn("Strict: 1 file missing: textures/wood.png", str(caught.exception))

    def test_strict_is_sent_so_the_daemon_checks_again(self):
        strict = submission.SubmitSettings(**{**SETTINGS.__dict__, "strict": True})
        params = submission.build_params(FACTS, strict, "/tmp/copy.blend", DEPENDENCIES[1:])
        self.assertIs(params["strict"], True)

    def test_without_strict_missing_files_are_sent_along_as_missing(self):
        params = submission.build_params(FACTS, SETTINGS, "/tmp/copy.blend", DEPENDENCIES)
        self.assertNotIn("strict", params)
        self.assertEqual([d["missing"] for d in params["dependencies"]], [True, False])


class DiscardCopyTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="skyfarm-submissions-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def copy(self):
        folder = tempfile.mkdtemp(dir=self.root)
        path = os.path.join(folder, "shot.blend")
        with open(path, "wb") as handle:
            handle.write(b"BLENDER")
        return path

    def test_a_job_stopped_in_its_upload_loses_its_copy_and_folder(self):
        path = self.copy()
        finished = {**job("canceled", upload="canceled"), "blendFile": path}
        self.assertTrue(submission.discard_finished_copy(finished, self.root))
        self.assertFalse(os.path.exists(os.path.dirname(path)))

    def test_running_jobs_and_files_outside_the_submissions_folder_are_left_alone(self):
        path = self.copy()
        self.assertFalse(submission.discard_finished_copy({**job("uploading"), "blendFile": path}, self.root))
        self.assertTrue(os.path.exists(path))
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        users_file = os.path.join(outside, "shot.blend")
        open(users_file, "wb").close()
        for blend in (users_file, os.path.join(self.root, "shot.blend"), ""):
            self.assertFalse(submission.discard_finished_copy({**job("failed"), "blendFile": blend}, self.root))
        self.assertTrue(os.path.exists(users_file))
        self.assertFalse(submission.discard_finished_copy({**job("done"), "blendFile": path + ".gone"}, self.root))


if __name__ == "__main__":
    unittest.main()
