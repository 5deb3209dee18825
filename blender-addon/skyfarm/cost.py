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
