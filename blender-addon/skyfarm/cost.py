"""How a job's cost reads in Blender (bpy-free): the daemon's estimate from AWS's own prices, always
"≈", or "cost unknown" with the reason and the IAM action to allow. Mirrors daemon/src/cost/format.ts."""

from typing import Any, Dict, Optional, Tuple

FINISHED = ("done", "failed", "canceled")


def format_usd(usd: float) -> str:
    if 0 < usd < 0.01:
        return f"${usd:.4f}"
    return f"${usd:.2f}"


def _unknown(cost: Dict[str, Any]) -> str:
    reason = cost.get("unknownReason") or "no prices yet"
    action = cost.get("missingAction")
    if action:
        return f"cost unknown: {reason} (allow {action} for your AWS identity)"
    return f"cost unknown: {reason}"


def summary(job: Dict[str, Any]) -> str:
    """"≈ $0.42 so far · projected ≈ $1.10 ($0.95–$1.30) · budget $2.00", or "" without a cost."""
    cost: Optional[Dict[str, Any]] = job.get("cost")
    if not cost:
        return ""
    if not cost.get("known") or cost.get("usd") is None:
        return _unknown(cost)
    finished = job.get("state") in FINISHED
    parts = [f"≈ {format_usd(cost['usd'])}{'' if finished else ' so far'}"]
    projected = cost.get("projectedUsd")
    if not finished and projected is not None:
        low = cost.get("projectedLowUsd", projected)
        high = cost.get("projectedHighUsd", projected)
        spread = f" ({format_usd(low)}–{format_usd(high)})" if high - low >= 0.005 else ""
        parts.append(f"projected ≈ {format_usd(projected)}{spread}")
    budget = cost.get("maxCostUsd")
    if budget is not None:
        note = ""
        if cost.get("budget") == "reached":
            note = " reached"
        elif cost.get("budget") == "projected-over" and not finished:
            note = " (the projection exceeds it)"
        parts.append(f"budget {format_usd(budget)}{note}")
    return " · ".join(parts)


def short(job: Dict[str, Any]) -> str:
    """For a job's row in the list: "≈ $0.42", "cost ?" when unknown, "" without a cost."""
    cost = job.get("cost")
    if not cost:
        return ""
    if not cost.get("known") or cost.get("usd") is None:
        return "cost ?"
    return f"≈ {format_usd(cost['usd'])}"


def detail(job: Dict[str, Any]) -> Tuple[str, bool]:
    """The detail box's cost line (with the instances it ran on) and whether it is a warning."""
    text = summary(job)
    if not text:
        return "", False
    cost = job["cost"]
    if cost.get("known") and cost.get("basis"):
        text += f" ({cost['basis']})"
    warn = not cost.get("known") or cost.get("budget") in ("projected-over", "reached")
    return text, warn


class QueuePrice:
    """The chosen render queue's price per hour at full scale (the daemon's cost.queue), for the AWS panel.

    ask() is called while the panel draws; it sends one request per change of the farm, device or
    market (never on every redraw), and the answer arrives through the session's drain on the main
    thread. No bpy here: the network thread never touches it either.
    """

    def __init__(self, request, on_change=lambda: None):
        self._request = request
        self._on_change = on_change
        self._key = None
        self._cost: Optional[Dict[str, Any]] = None
        self._error = ""
        self._waiting = False

    def ask(self, stack_name: str, device: str, market: str) -> None:
        key = (stack_name, device, market)
        if key == self._key:
            return
        self._key = key
        self._cost, self._error, self._waiting = None, "", True
        params: Dict[str, Any] = {"device": device, "market": market}
        if stack_name:
            params["stackName"] = stack_name

        def answered(result, error) -> None:
            if self._key != key:
                return  # the settings changed meanwhile: a newer request is on its way
            self._waiting = False
            if result is not None:
                self._cost = result["cost"]
            else:
                self._error = f"{error.message} [{error.code}]"
            self._on_change()

        self._request("cost.queue", params, answered)
        self._on_change()

    def forget(self) -> None:
        """Asks again on the next draw (after a reconnect or a new stack)."""
        self._key = None

    def line(self) -> Tuple[str, bool]:
        """The panel's line and whether it is a warning: the daemon's text, or why there is none yet."""
        if self._waiting:
            return "Queue price: asking AWS…", False
        if self._error:
            return f"Queue price unknown: {self._error}", True
        if self._cost is None:
            return "", False
        return self._cost.get("text", ""), not self._cost.get("known")
