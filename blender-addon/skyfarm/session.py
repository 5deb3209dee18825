"""Everything the add-on knows about the daemon, kept up to date from the connection.

Ties the connection to the job table: re-syncs the jobs after every (re)connect, folds in
job.update events, learns which backends can render, and queues notices (job finished, job failed,
submit refused) for the UI to report. Runs entirely on the thread that calls tick(), which in
Blender is the main thread via bpy.app.timers. No bpy here, so plain Python tests drive it.
"""

import collections
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from . import connection, cost, farm as farm_module, state, submission

# CloudFormation states in which the stack's resources exist and can take jobs.
# A reconnect reads at most this many jobs back (jobs.list pages of up to 200, newest first).
MAX_RESYNC_JOBS = 10_000
STACK_READY_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")

JobCallback = Callable[[Optional[Dict[str, Any]], Optional[connection.RequestError]], None]


@dataclass(frozen=True)
class BackendAvailability:
    available: bool
    reason: str = ""


@dataclass(frozen=True)
class Notice:
    level: str  # INFO, WARNING or ERROR, as Blender's report types
    text: str


_NOT_CONNECTED = BackendAvailability(False, "not connected to the skyfarm daemon")


class DaemonSession:
    def __init__(
        self,
        daemon: connection.DaemonConnection,
        stack_name: Callable[[], str] = lambda: "",
        stack_target: Optional[Callable[[], Dict[str, str]]] = None,
    ):
        self.connection = daemon
        self.jobs = state.JobTable()
        self.local = _NOT_CONNECTED
        self.aws = _NOT_CONNECTED
        self.daemon_info: Optional[Dict[str, Any]] = None
        self.stack: Optional[Dict[str, Any]] = None
        # Latest upload.progress per job id: shown while a job uploads, and where a stopped upload ended.
        self.uploads: Dict[str, Dict[str, Any]] = {}
        # True once jobs.list has answered on the current connection.
        self.synced = False
        self._resync_generation = 0
        self.submitting = False
        self.notices: Deque[Notice] = collections.deque(maxlen=100)
        self._stack_target = stack_target or (lambda: {"stackName": stack_name()})
        self._revision = 0
        # The AWS stack for the Farm panel: status, outputs, live events, deploy / destroy.
        self.farm = farm_module.Farm(
            daemon.request,
            target=self._stack_target,
            notify=self._notify,
            on_settled=self._farm_settled,
            recheck=self.check_stack,
        )
        # The chosen queue's price per hour at full scale, for the AWS panel (asked when it is drawn).
        self.queue_price = cost.QueuePrice(daemon.request, on_change=self._changed)
        daemon.listeners.on_status = self._on_status
        daemon.listeners.on_event = self._on_event
        daemon.listeners.on_notice = lambda level, text: self._notify(level, text)

    @property
    def status(self) -> connection.ConnectionStatus:
        return self.connection.status

    @property
    def revision(self) -> int:
        """Changes whenever anything the UI shows changes."""
        return self._revision + self.jobs.revision + self.farm.revision

    def start(self) -> None:
        self.connection.start()

    def stop(self) -> bool:
        return self.connection.stop()

    def tick(self, budget_seconds: float) -> bool:
        """Applies what the network thread received, for at most budget_seconds. True if more is waiting."""
        return self.connection.drain(budget_seconds)

    def take_notices(self) -> List[Notice]:
        notices = list(self.notices)
        self.notices.clear()
        return notices

    def upload_view(self, job_id: str) -> Optional["UploadView"]:
        """The job's upload as the panel shows it, or None before its first upload.progress."""
        progress = self.uploads.get(job_id)
        return describe_upload(progress) if progress else None

    def backend(self, name: str) -> BackendAvailability:
        return self.aws if name == "aws" else self.local

    # ----- requests ----------------------------------------------------------------------------

    def submit(self, params: Dict[str, Any], on_done: Optional[JobCallback] = None) -> str:
        """Sends render.submit. on_done(job, error) runs when the daemon answers (or the link drops)."""

        def answered(result: Optional[Dict[str, Any]], error: Optional[connection.RequestError]) -> None:
            self.submitting = False
            self._revision += 1
            job = None
            if result is not None:
                job = result["job"]
                self.jobs.apply(job)
                missing = result.get("missing") or []
                text = f"skyfarm: submitted \"{job['name']}\" ({job['framesTotal']} frames, {job['backend']})"
                if missing:
                    # The daemon lists the first missing files and counts them all (missingCount).
                    summary = submission.missing_summary(
                        missing, params.get("sourceBlendFile", ""), total=result.get("missingCount")
                    )
                    text += f"; {summary} (rendered without them)"
                self._notify("WARNING" if missing else "INFO", text)
            else:
                self._notify("ERROR", f"skyfarm: the daemon refused the render: {error.message} [{error.code}]")
            if on_done:
                on_done(job, error)

        request_id = self.connection.request("render.submit", params, answered)
        self.submitting = True
        self._revision += 1
        return request_id

    def cancel(self, job_id: str, on_done: Optional[JobCallback] = None) -> str:
        def answered(result: Optional[Dict[str, Any]], error: Optional[connection.RequestError]) -> None:
            job = None
            if result is not None:
                job = result["job"]
                self._apply_job(job)
            else:
                self._notify("ERROR", f"skyfarm: could not cancel {job_id}: {error.message} [{error.code}]")
            if on_done:
                on_done(job, error)

        return self.connection.request("jobs.cancel", {"jobId": job_id}, answered)

    def resync(self) -> None:
        """Replaces the job table with the daemon's list: after a reconnect it may have missed updates.

        jobs.list is paged (newest first); every page is read before the table is replaced, so a
        job beyond the first page is not dropped. A newer resync (another reconnect) abandons this one.
        """
        self._resync_generation += 1
        generation = self._resync_generation
        collected: List[Dict[str, Any]] = []

        def ask(before: Optional[str]) -> None:
            params: Dict[str, Any] = {"before": before} if before else {}
            self.connection.request("jobs.list", params, answered)

        def answered(result: Optional[Dict[str, Any]], error: Optional[connection.RequestError]) -> None:
            if generation != self._resync_generation:
                return
            if result is None:
                self._notify("WARNING", f"skyfarm: could not list jobs: {error.message} [{error.code}]")
                return
            collected.extend(result["jobs"])
            following = result.get("next")
            if following and len(collected) < MAX_RESYNC_JOBS:
                ask(following)
                return
            for transition in self.jobs.replace_all(collected):
                self._notify(*state.finish_notice(transition))
                submission.discard_finished_copy(transition.job)
            for job_id in [job_id for job_id in self.uploads if job_id not in self.jobs]:
                del self.uploads[job_id]
            self.synced = True
            self._revision += 1

        ask(None)

    def refresh_backends(self, check_stack: bool = False) -> None:
        """Asks which backends can render: daemon.info, then stack.status to confirm AWS is ready.

        stack.status calls AWS, so it is asked only when the daemon knows a usable stack, or when the
        user asks (check_stack, e.g. for a stack deployed from another machine).
        """

        def info_answered(result: Optional[Dict[str, Any]], error: Optional[connection.RequestError]) -> None:
            self._revision += 1
            if result is None:
                reason = f"the daemon did not describe its backends: {error.message}"
                self.local = self.aws = BackendAvailability(False, reason)
                return
            self.daemon_info = result
            backends = result["backends"]
            self.local = BackendAvailability(backends["local"]["available"], backends["local"].get("reason", ""))
            aws = backends["aws"]
            if not aws["available"] and not check_stack:
                self.aws = BackendAvailability(False, aws.get("reason") or "the daemon cannot use AWS")
                return
            if not (self.aws.available and self.stack is not None):
                # A re-check of a stack already known ready (e.g. right after a deploy) keeps it usable.
                self.aws = BackendAvailability(False, "checking the AWS stack…")
            self._request_stack_status()

        self.connection.request("daemon.info", {}, info_answered)

    def check_stack(self) -> None:
        """Asks the daemon (and so CloudFormation) about the configured stack now: the Farm panel's Refresh."""
        self._request_stack_status()

    def _request_stack_status(self) -> None:
        params = {key: value for key, value in self._stack_target().items() if value}

        def answered(result: Optional[Dict[str, Any]], error: Optional[connection.RequestError]) -> None:
            self._revision += 1
            self.farm.status_answered(result, error)
            if result is None:
                self.stack = None
                reason = error.message
                if error.code == "STACK_NOT_FOUND":
                    reason = f"no skyfarm stack is deployed: Deploy Stack in skyfarm Farm below ({error.message})"
                self.aws = BackendAvailability(False, reason)
                return
            self.stack = result["stack"]
            self.aws = stack_availability(self.stack)

        self.connection.request("stack.status", params, answered)
        self.farm.check_started()

    def _farm_settled(self, stack: Optional[Dict[str, Any]]) -> None:
        """A deploy or destroy pressed here ended: the AWS backend follows the stack at once."""
        self.stack = stack
        self.aws = stack_availability(stack) if stack else BackendAvailability(False, "no AWS stack deployed (Deploy Stack in skyfarm Farm)")
        self.queue_price.forget()  # the farm's queues came, went or changed
        self._revision += 1
        self.refresh_backends()

    # ----- connection listeners ----------------------------------------------------------------

    def _changed(self) -> None:
        self._revision += 1

    def _on_status(self, status: connection.ConnectionStatus) -> None:
        self._revision += 1
        self.queue_price.forget()
        self.farm.connection_changed(status.connected)
        if status.connected:
            self.resync()
            self.refresh_backends()
            if status.update_hint:
                self._notify("WARNING", f"skyfarm: {status.update_hint}")
        else:
            self.synced = False
            self.submitting = False
            self.local = self.aws = _NOT_CONNECTED

    def _on_event(self, name: str, data: Dict[str, Any]) -> None:
        if name == "job.update":
            self._apply_job(data)
        elif name == "upload.progress":
            job_id = data.get("jobId")
            job = self.jobs.get(job_id) if job_id else None
            # A late event must not move the bar of a job that already ended (or is past its upload).
            if job_id and (job is None or job["state"] in ("queued", "uploading")):
                self.uploads[job_id] = data
                self._revision += 1
        elif name == "stack.event":
            self.farm.on_event(data)
            # The stack's own resource reaching a final state can change whether AWS is usable.
            if data["resourceType"] == "AWS::CloudFormation::Stack" and data["status"].endswith(
                ("_COMPLETE", "_FAILED")
            ):
                self.refresh_backends()

    def _apply_job(self, job: Dict[str, Any]) -> None:
        # The last upload.progress of a finished job stays: a canceled upload shows where it stopped.
        transition = self.jobs.apply(job)
        if transition is not None:
            self._notify(*state.finish_notice(transition))
            # A job stopped during its upload leaves our temporary copy of the scene behind.
            submission.discard_finished_copy(job)

    def _notify(self, level: str, text: str) -> None:
        self.notices.append(Notice(level, text))
        self._revision += 1


def stack_availability(stack: Dict[str, Any]) -> BackendAvailability:
    status = stack["status"]
    if status in STACK_READY_STATUSES:
        return BackendAvailability(True, f"stack {stack['stackName']} is {status}")
    reason = f"the AWS stack {stack['stackName']} is {status}"
    if stack.get("reason"):
        reason += f": {stack['reason']}"
    return BackendAvailability(False, reason)


@dataclass(frozen=True)
class UploadView:
    """What the status panel shows of a job's upload."""

    fraction: float  # bytes sent / bytes to send, 0-1
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    text: str  # "3/8 files · 120/400 MB · 85.2 MB/s · ETA 4 s"
    short: str  # "120/400 MB", for the narrow job-list row


_UNITS = ((1e9, "GB"), (1e6, "MB"), (1e3, "KB"))


def _unit(size: float) -> Tuple[float, str]:
    for scale, name in _UNITS:
        if size >= scale:
            return scale, name
    return 1.0, "B"


def _number(value: float, unit: str, largest: float) -> str:
    if unit == "B":
        return f"{value:.0f}"
    if unit == "GB":
        return f"{value:.2f}"
    # 3.4/8.0 MB while the total is small, 120/400 MB once it is not.
    return f"{value:.1f}" if largest < 100 else f"{value:.0f}"


def format_bytes_pair(done: int, total: int) -> str:
    """Bytes done of total in the total's unit: 120/400 MB, 1.25/2.00 GB, 512/900 KB."""
    scale, unit = _unit(max(done, total))
    largest = max(done, total) / scale
    return f"{_number(done / scale, unit, largest)}/{_number(total / scale, unit, largest)} {unit}"


def format_rate(bytes_per_second: float) -> str:
    if bytes_per_second >= 1e9:
        return f"{bytes_per_second / 1e9:.2f} GB/s"
    if bytes_per_second >= 1e5:
        return f"{bytes_per_second / 1e6:.1f} MB/s"
    return f"{bytes_per_second / 1e3:.0f} KB/s"


def describe_upload(progress: Dict[str, Any]) -> UploadView:
    """The upload line and bar for an upload.progress event: files, bytes, rate and ETA."""
    total = int(progress["bytesTotal"])
    done = min(int(progress["bytesDone"]), total) if total else int(progress["bytesDone"])
    fraction = min(1.0, max(0.0, done / total)) if total else 0.0
    sizes = format_bytes_pair(done, total)
    parts = [f"{progress['filesDone']}/{progress['filesTotal']} files", sizes]
    rate = progress.get("bytesPerSecond") or 0
    if rate >= 1000:
        parts.append(format_rate(rate))
        # The first bytes give no estimate worth showing ("ETA 555 h" from a .blend sent while the
        # big files are still being hashed): the ETA appears once 1 % is sent.
        eta = progress.get("etaSeconds")
        if eta is not None and done < total and done >= total / 100:
            parts.append(f"ETA {state.format_eta(eta)}")
    return UploadView(
        fraction=fraction,
        files_done=int(progress["filesDone"]),
        files_total=int(progress["filesTotal"]),
        bytes_done=done,
        bytes_total=total,
        text=" · ".join(parts),
        short=sizes,
    )


def upload_stopped(job: Dict[str, Any]) -> bool:
    """A job that ended while uploading (canceled or failed): its last upload figures say where."""
    return state.is_finished(job) and (job.get("stages") or {}).get("upload") in ("canceled", "failed")
