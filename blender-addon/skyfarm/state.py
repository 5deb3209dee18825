"""The add-on's copy of the daemon's job table, and how to show a job.

The daemon pushes whole job snapshots (job.update) and answers jobs.list after every (re)connect;
this reducer folds both into one table and reports the transitions the user should hear about
(a job they saw running has finished, failed or been canceled). No bpy here.
"""

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

FINISHED_STATES = ("done", "failed", "canceled")

Job = Dict[str, Any]


@dataclass(frozen=True)
class JobTransition:
    """A job the table knew as unfinished is now finished."""

    job: Job
    previous_state: str

    @property
    def state(self) -> str:
        return self.job["state"]


def is_finished(job: Job) -> bool:
    return job.get("state") in FINISHED_STATES


class JobTable:
    def __init__(self) -> None:
        self._jobs: Dict[str, Job] = {}
        # Bumped on every visible change so the UI mirrors and redraws only when needed.
        self.revision = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def ids(self) -> Set[str]:
        return set(self._jobs)

    def get(self, job_id: str) -> Optional[Job]:
        return self._jobs.get(job_id)

    def apply(self, job: Job) -> Optional[JobTransition]:
        """Folds in one snapshot. Older snapshots than the one held are ignored."""
        previous = self._jobs.get(job["id"])
        if previous is not None:
            if job.get("updatedAt", "") < previous.get("updatedAt", ""):
                return None
            if previous == job:
                return None
        self._jobs[job["id"]] = job
        self.revision += 1
        if previous is not None and not is_finished(previous) and is_finished(job):
            return JobTransition(job=job, previous_state=previous["state"])
        return None

    def replace_all(self, jobs: Iterable[Job]) -> List[JobTransition]:
        """Takes the daemon's full list as the truth: jobs it no longer has are dropped."""
        incoming = {job["id"]: job for job in jobs}
        transitions = []
        for job_id in list(self._jobs):
            if job_id not in incoming:
                del self._jobs[job_id]
                self.revision += 1
        for job in incoming.values():
            previous = self._jobs.get(job["id"])
            # A full listing is fresher than anything held, except a snapshot that is newer still.
            if previous is not None and job.get("updatedAt", "") < previous.get("updatedAt", ""):
                continue
            transition = self.apply(job)
            if transition is not None:
                transitions.append(transition)
        return transitions

    def ordered(self) -> List[Job]:
        """Newest first, which is how the status panel lists them."""
        return sorted(self._jobs.values(), key=lambda job: (job.get("createdAt", ""), job["id"]), reverse=True)

    def snapshots(self) -> List[Job]:
        """Every job, in no particular order (cheaper than ordered() when order does not matter)."""
        return list(self._jobs.values())

    def clear(self) -> None:
        if self._jobs:
            self._jobs.clear()
            self.revision += 1


def format_eta(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def frames_label(job: Job) -> str:
    label = f"{job.get('framesDone', 0)}/{job.get('framesTotal', 0)} frames"
    failed = job.get("framesFailed", 0)
    if failed:
        label += f", {failed} failed"
    return label


def live_label(job: Job) -> str:
    """The frame rendering now and the ETA, e.g. "frame 12: 340/1024 samples · ETA 41 min 05 s".

    As `skyfarm status` writes it; "" when the job renders nothing and has no ETA (or has ended).
    """
    if is_finished(job):
        return ""
    parts = []
    live = job.get("live")
    if live:
        total = live.get("samplesTotal", 0)
        samples = f"{live.get('samplesDone', 0)}/{total} samples" if total > 0 else "starting"
        more = f" ({live['rendering']} frames rendering)" if live.get("rendering", 1) > 1 else ""
        parts.append(f"frame {live.get('frame')}: {samples}{more}")
    if job.get("etaSeconds") is not None:
        parts.append(f"ETA {format_eta(job['etaSeconds'])}")
    return " · ".join(parts)


def finish_notice(transition: JobTransition) -> Tuple[str, str]:
    """The report (level, text) for a job that just finished, with the daemon's own message on failure."""
    job = transition.job
    name = job.get("name") or job["id"]
    if job["state"] == "done":
        return "INFO", f"skyfarm: \"{name}\" finished, {frames_label(job)} in {job.get('output', '')}"
    if job["state"] == "canceled":
        return "WARNING", f"skyfarm: \"{name}\" was canceled ({frames_label(job)})"
    error = job.get("error") or {}
    reason = error.get("message") or job.get("message") or "no reason given"
    code = f" [{error['code']}]" if error.get("code") else ""
    return "ERROR", f"skyfarm: \"{name}\" failed{code}: {reason}"
