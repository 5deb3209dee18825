"""What the Render button sends, decided from plain scene facts (no Blender needed)."""

import os
import tempfile
import unittest

from helpers import import_addon_module

codec = import_addon_module("codec")
submission = import_addon_module("submission")

SAVED = submission.SceneFacts(
    blend_path="/projects/shot ü/shot 01.blend",
    scene_name="Scene",
    frame_start=1,
    frame_end=250,
    frame_step=1,
    render_filepath="//render/frame_####",
    has_camera=True,
)
UNTITLED = submission.SceneFacts(
    blend_path="", scene_name="Scene", frame_start=1, frame_end=10, frame_step=2, render_filepath="/tmp/", has_camera=True
)
LOCAL = submission.SubmitSettings(backend="local", frame_mode="SCENE", frame_spec="", chunk_size=10, output_folder="")


def replace(settings, **changes):
    values = dict(settings.__dict__)
    values.update(changes)
    return type(settings)(**values)


class FramesTest(unittest.TestCase):
    def test_scene_range_and_step(self):
        self.assertEqual(submission.frames(SAVED, LOCAL), "1-250")
        self.assertEqual(submission.frames(UNTITLED, LOCAL), "1-10x2")

    def test_custom_spec(self):
        self.assertEqual(submission.frames(SAVED, replace(LOCAL, frame_mode="CUSTOM", frame_spec=" 1-10, 20 ")), "1-10, 20")
        with self.assertRaises(submission.SubmitProblem) as caught:
            submission.frames(SAVED, replace(LOCAL, frame_mode="CUSTOM", frame_spec="1-x"))
        self.assertIn("Frames:", str(caught.exception))


class OutputFolderTest(unittest.TestCase):
    def test_scene_output_path_like_the_daemon(self):
        self.assertEqual(submission.output_folder(SAVED, LOCAL), "/projects/shot ü/render")
        self.assertEqual(submission.output_folder(replace(SAVED, render_filepath="//"), LOCAL), "/projects/shot ü")
        self.assertEqual(submission.output_folder(replace(SAVED, render_filepath="/out/shots/"), LOCAL), "/out/shots")
        self.assertEqual(submission.output_folder(replace(SAVED, render_filepath="renders/x_"), LOCAL), "/projects/shot ü/renders")
        self.assertEqual(submission.output_folder(UNTITLED, LOCAL), "/tmp")

    def test_chosen_folder_wins(self):
        self.assertEqual(submission.output_folder(SAVED, replace(LOCAL, output_folder="/elsewhere/")), "/elsewhere")
        self.assertEqual(submission.output_folder(SAVED, replace(LOCAL, output_folder="//frames/")), "/projects/shot ü/frames")

    def test_relative_paths_need_a_saved_file(self):
        for settings, facts in (
            (LOCAL, replace(UNTITLED, render_filepath="//render/")),
            (replace(LOCAL, output_folder="//frames"), UNTITLED),
            (replace(LOCAL, output_folder="frames"), UNTITLED),
        ):
            with self.subTest(settings=settings.output_folder, facts=facts.render_filepath):
                with self.assertRaises(submission.SubmitProblem) as caught:
                    submission.output_folder(facts, settings)
                self.assertIn("relative", str(caught.exception))


class BlockingProblemTest(unittest.TestCase):
    def test_reasons(self):
        self.assertIsNone(submission.blocking_problem(SAVED, LOCAL))
        self.assertIn("has no camera", submission.blocking_problem(replace(SAVED, has_camera=False), LOCAL))
        self.assertIn("movie", submission.blocking_problem(replace(SAVED, is_movie=True), LOCAL))
        self.assertIn("ends before it starts", submission.blocking_problem(replace(SAVED, frame_end=0), LOCAL))
        self.assertIn("not saved yet", submission.blocking_problem(replace(UNTITLED, render_filepath="//x"), LOCAL))


class ParamsTest(unittest.TestCase):
    def test_saved_file(self):
        dependencies = [{"path": "/projects/shot ü/tex/wood.png", "kind": "image", "missing": False}]
        params = submission.build_params(SAVED, LOCAL, "/tmp/copy/shot 01.blend", dependencies)
        self.assertEqual(
            params,
            {
                "blendFile": "/tmp/copy/shot 01.blend",
                "sourceBlendFile": "/projects/shot ü/shot 01.blend",
                "projectRoot": "/projects/shot ü",
                "temporaryBlend": True,
                "name": "shot 01 · Scene",
                "scene": "Scene",
                "frames": "1-250",
                "chunkSize": 10,
                "backend": "local",
                "output": "/projects/shot ü/render",
                "dependencies": dependencies,
            },
        )
        codec.encode_request("1", "render.submit", params)  # The daemon's schema accepts it.

    def test_untitled_file_hangs_off_the_copy(self):
        params = submission.build_params(UNTITLED, LOCAL, "/tmp/copy/untitled.blend", [])
        self.assertNotIn("sourceBlendFile", params)
        self.assertEqual(params["projectRoot"], "/tmp/copy")
        self.assertEqual(params["name"], "untitled · Scene")

    def test_aws_options(self):
        settings = replace(
            LOCAL, backend="aws", aws_device="gpu", aws_market="on-demand", aws_blender_version="4.2.3",
            aws_notify_email=" a@b.c ", aws_stack_name="skyfarm-prod",
        )
        params = submission.build_params(SAVED, settings, "/tmp/c.blend", [])
        self.assertEqual(
            params["aws"],
            {"device": "gpu", "market": "on-demand", "blenderVersion": "4.2.3", "notifyEmail": "a@b.c", "stackName": "skyfarm-prod"},
        )
        codec.encode_request("1", "render.submit", params)

    def test_aws_budget(self):
        # The panel's Max Cost: 0 sends no budget; a value is sent as maxCostUsd, valid for the schema.
        none = submission.build_params(SAVED, replace(LOCAL, backend="aws"), "/tmp/c.blend", [])
        self.assertNotIn("maxCostUsd", none["aws"])
        params = submission.build_params(SAVED, replace(LOCAL, backend="aws", aws_max_cost=12.5), "/tmp/c.blend", [])
        self.assertEqual(params["aws"]["maxCostUsd"], 12.5)
        codec.encode_request("1", "render.submit", params)

    def test_split_only_on_aws(self):
        aws = replace(LOCAL, backend="aws", aws_split=8)
        params = submission.build_params(SAVED, aws, "/tmp/c.blend", [])
        self.assertEqual(params["split"], 8)
        codec.encode_request("1", "render.submit", params)
        # The local backend would refuse it (SPLIT_LOCAL): the setting is the AWS panel's only.
        self.assertNotIn("split", submission.build_params(SAVED, replace(LOCAL, aws_split=8), "/tmp/c.blend", []))
        self.assertNotIn("split", submission.build_params(SAVED, replace(aws, aws_split=1), "/tmp/c.blend", []))

    def test_problems_refuse_to_build(self):
        with self.assertRaises(submission.SubmitProblem):
            submission.build_params(replace(SAVED, has_camera=False), LOCAL, "/tmp/c.blend", [])


class CopyLocationTest(unittest.TestCase):
    def test_unique_private_folders_and_tidying(self):
        root = tempfile.mkdtemp(prefix="skyfarm-copies-")
        first = submission.copy_path(SAVED, root)
        second = submission.copy_path(SAVED, root)
        self.assertNotEqual(os.path.dirname(first), os.path.dirname(second))
        self.assertEqual(os.path.basename(first), "shot 01.blend")
        self.assertEqual(os.path.basename(submission.copy_path(UNTITLED, root)), "untitled.blend")
        self.assertEqual(os.stat(os.path.dirname(first)).st_mode & 0o777, 0o700)
        with open(second, "wb") as handle:
            handle.write(b"BLENDER")
        self.assertEqual(submission.remove_empty_copy_folders(root), 2, "the two empty folders go, the one in use stays")
        self.assertTrue(os.path.exists(second))


if __name__ == "__main__":
    unittest.main()
