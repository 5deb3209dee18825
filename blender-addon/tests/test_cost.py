"""The cost line of a job in Blender, from the daemon's Job.cost (protocol/schema.json JobCost)."""

import unittest

from helpers import import_addon_module

cost = import_addon_module("cost")


class CostTest(unittest.TestCase):
    def test_no_cost_no_line(self):
        self.assertEqual(cost.summary({"state": "rendering"}), "")
        self.assertEqual(cost.short({"state": "done"}), "")
        self.assertEqual(cost.detail({"state": "done"}), ("", False))

    def test_running_job_spend_projection_and_budget(self):
        job = {
            "state": "rendering",
            "cost": {
                "known": True,
                "usd": 0.4213,
                "projectedUsd": 1.1,
                "projectedLowUsd": 0.95,
                "projectedHighUsd": 1.3,
                "basis": "c6i.xlarge spot ×3",
                "maxCostUsd": 1.0,
                "budget": "projected-over",
            },
        }
        self.assertEqual(
            cost.summary(job),
            "≈ $0.42 so far · projected ≈ $1.10 ($0.95–$1.30) · budget $1.00 (the projection exceeds it)",
        )
        self.assertEqual(cost.short(job), "≈ $0.42")
        text, warn = cost.detail(job)
        self.assertTrue(text.endswith("(c6i.xlarge spot ×3)"))
        self.assertTrue(warn, "a projection over the budget is a warning")

    def test_finished_job_stopped_at_budget(self):
        job = {"state": "failed", "cost": {"known": True, "usd": 1.57, "projectedUsd": 1.57, "maxCostUsd": 1.5, "budget": "reached"}}
        self.assertEqual(cost.summary(job), "≈ $1.57 · budget $1.50 reached")

    def test_tiny_amounts_keep_their_digits(self):
        self.assertEqual(cost.format_usd(0.0042), "$0.0042")
        self.assertEqual(cost.format_usd(0), "$0.00")

    def test_unknown_names_the_missing_permission(self):
        job = {"state": "rendering", "cost": {"known": False, "unknownReason": "AWS denied pricing:GetProducts", "missingAction": "pricing:GetProducts"}}
        self.assertEqual(
            cost.summary(job),
            "cost unknown: AWS denied pricing:GetProducts (allow pricing:GetProducts for your AWS identity)",
        )
        self.assertEqual(cost.short(job), "cost ?")
        self.assertEqual(cost.detail(job)[1], True)


if __name__ == "__main__":
    unittest.main()
