"""Frame specs as typed in the submit panel."""

import unittest

from helpers import import_addon_module

framespec = import_addon_module("framespec")


class ParseTest(unittest.TestCase):
    def test_valid_specs(self):
        cases = {
            "1-250": list(range(1, 251)),
            "1-10,20": list(range(1, 11)) + [20],
            "1-100x5": list(range(1, 101, 5)),
            " 7 ": [7],
            "0": [0],
            "5-5": [5],
            "3, 1-2 ,2": [1, 2, 3],
            "1 - 9 x 4": [1, 5, 9],
            "10-1048574x1048574": [10],
        }
        for text, frames in cases.items():
            with self.subTest(spec=text):
                self.assertEqual(list(framespec.parse(text).frames), frames)
                self.assertIsNone(framespec.validate(text))

    def test_invalid_specs_explain_themselves(self):
        cases = {
            "": "no frames",
            "   ": "no frames",
            "abc": "\"abc\" is not a frame or range",
            "1-": "\"1-\" is not a frame or range",
            "-5": "\"-5\" is not a frame or range",
            "10-1": "ends before it starts",
            "1-10x0": "step must be at least 1",
            "1,,2": "empty item",
            "1-10,": "empty item",
            "1.5": "not a frame or range",
            "2000000": "frames go up to 1048574",
            "1-10y2": "not a frame or range",
        }
        for text, expected in cases.items():
            with self.subTest(spec=text):
                message = framespec.validate(text)
                self.assertIsNotNone(message)
                self.assertIn(expected, message)
                with self.assertRaises(framespec.FrameSpecError):
                    framespec.parse(text)

    def test_hint_names_the_accepted_forms(self):
        self.assertIn("1-100x5", framespec.validate("oops"))


class SceneRangeTest(unittest.TestCase):
    def test_scene_ranges(self):
        self.assertEqual(framespec.scene_range(1, 250), "1-250")
        self.assertEqual(framespec.scene_range(1, 250, 10), "1-250x10")
        self.assertEqual(framespec.scene_range(4, 4, 3), "4")
        self.assertEqual(framespec.parse(framespec.scene_range(1, 9, 4)).frames, (1, 5, 9))

    def test_unrenderable_scene_ranges(self):
        with self.assertRaises(framespec.FrameSpecError):
            framespec.scene_range(10, 1)
        with self.assertRaises(framespec.FrameSpecError):
            framespec.scene_range(-5, 10)


if __name__ == "__main__":
    unittest.main()
