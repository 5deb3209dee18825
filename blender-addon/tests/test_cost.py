"""The cost line of a job in Blender, from the daemon's Job.cost (protocol/schema.json JobCost)."""

import unittest

from helpers import import_addon_module

cost = import_addon_module("cost")
connection = import_addon_module("connection")
codec = import_addon_module("codec")
session_module = import_addon_module("session")

# The daemon's cost.queue answer for the farm's CPU spot queue (as protocol/schema.json QueueCost).
SPOT_QUEUE = {
    "queue": "skyfarm-cpu-spot",
    "device": "cpu",
    "market": "spot",
    "known": True,
    "usdPerHour": 6.1,
    "vcpus": 256,
    "text": "Queue skyfarm-cpu-spot: up to $6.10/hour at 256 vCPUs (spot, c6i/c6a)",
}


class Requests:
    """Stands in for DaemonConnection.request: records, checks each request as the codec would send it."""

    def __init__(self):
        self.sent = []

    def __call__(self, method, params, callback=None):
        codec.encode_request(f"b{len(self.sent) + 1}", method, params)  # raises if the daemon would refuse it
        self.sent.append((method, params, callback))
        return f"b{len(self.sent)}"

    def of(self, method):
        return [entry for entry in self.sent if entry[0] == method]

    def answer(self, method, result=None, code=None, message="", index=-1):
        _, _, callback = self.of(method)[index]
        callback(result, connection.RequestError(code, message) if code else None)


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


class QueuePriceTest(unittest.TestCase):
    def setUp(self):
        self.requests = Requests()
        self.changes = []
        self.price = cost.QueuePrice(self.requests, on_change=lambda: self.changes.append(True))

    def test_asks_once_per_setting_and_shows_the_daemons_line(self):
        self.price.ask("", "cpu", "spot")
        self.price.ask("", "cpu", "spot")  # every redraw asks; only a change sends a request
        self.assertEqual([params for _, params, _ in self.requests.of("cost.queue")], [{"device": "cpu", "market": "spot"}])
        self.assertEqual(self.price.line(), ("Queue price: asking AWS…", False))
        self.requests.answer("cost.queue", {"cost": SPOT_QUEUE})
        self.assertEqual(self.price.line(), (SPOT_QUEUE["text"], False))
        self.assertTrue(self.changes, "the answer makes the panel redraw")
        self.price.ask("render-farm", "gpu", "on-demand")
        self.assertEqual(
            self.requests.of("cost.queue")[-1][1], {"device": "gpu", "market": "on-demand", "stackName": "render-farm"}
        )

    def test_a_late_answer_for_old_settings_is_dropped(self):
        self.price.ask("", "cpu", "spot")
        self.price.ask("", "cpu", "on-demand")
        self.requests.answer("cost.queue", {"cost": SPOT_QUEUE}, index=0)
        self.assertEqual(self.price.line(), ("Queue price: asking AWS…", False), "the spot answer is not the on-demand queue's")
        on_demand = dict(SPOT_QUEUE, queue="skyfarm-cpu-on-demand", text="Queue skyfarm-cpu-on-demand: up to $12.20/hour at 256 vCPUs (on-demand, c6i/c6a)")
        self.requests.answer("cost.queue", {"cost": on_demand}, index=1)
        self.assertEqual(self.price.line()[0], on_demand["text"])

    def test_unknown_and_refused_are_warnings(self):
        self.price.ask("", "cpu", "spot")
        unknown = {
            "queue": "skyfarm-cpu-spot",
            "known": False,
            "unknownReason": "AWS denied pricing:GetProducts",
            "missingAction": "pricing:GetProducts",
            "text": "Queue skyfarm-cpu-spot: cost unknown: AWS denied pricing:GetProducts (allow pricing:GetProducts for your AWS identity)",
        }
        self.requests.answer("cost.queue", {"cost": unknown})
        self.assertEqual(self.price.line(), (unknown["text"], True))
        self.price.ask("nope", "cpu", "spot")
        self.requests.answer("cost.queue", code="STACK_NOT_FOUND", message="No stack named nope")
        self.assertEqual(self.price.line(), ("Queue price unknown: No stack named nope [STACK_NOT_FOUND]", True))

    def test_the_session_asks_again_after_a_reconnect(self):
        requests = Requests()

        class Link:
            listeners = connection._Listeners()
            status = connection.ConnectionStatus(connection.STOPPED)

            def request(self, method, params, callback=None):
                return requests(method, params, callback)

        link = Link()
        live = session_module.DaemonSession(link, stack_target=lambda: {"stackName": ""})
        live.queue_price.ask("", "cpu", "spot")
        revision = live.revision
        requests.answer("cost.queue", {"cost": SPOT_QUEUE})
        self.assertGreater(live.revision, revision, "the answer changes what the panel shows")
        link.status = connection.ConnectionStatus(connection.CONNECTED, daemon_version="0.1.0")
        link.listeners.on_status(link.status)
        live.queue_price.ask("", "cpu", "spot")
        self.assertEqual(len(requests.of("cost.queue")), 2, "a new connection (maybe a new daemon) asks again")
        live._farm_settled({"stackName": "skyfarm", "status": "CREATE_COMPLETE", "outputs": {}})
        live.queue_price.ask("", "cpu", "spot")
        self.assertEqual(len(requests.of("cost.queue")), 3, "a deploy or destroy that ended asks again")


if __name__ == "__main__":
    unittest.main()
