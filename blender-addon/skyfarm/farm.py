"""The AWS farm's CloudFormation stack as the add-on sees it: status, outputs, live events, deploy.

Fed by the session on the main thread: stack.status answers, stack.event pushes (from a deploy
started here, from `skyfarm deploy` in a terminal, or from another client) and the replies of
stack.deploy / stack.destroy. Decides what the Farm panel says and whether Deploy / Update /
Destroy can be pressed. No bpy here, so plain Python tests drive it.
"""

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

# The daemon's default stack name (daemon/src/stack/validate.ts DEFAULT_STACK_NAME).
DEFAULT_STACK_NAME = "skyfarm"
# Stack events kept (and mirrored into Blender): a create of the whole farm emits about 200.
MAX_EVENTS = 250

STACK_RESOURCE_TYPE = "AWS::CloudFormation::Stack"
# CloudFormation states in which the stack's resources exist and can take jobs (as the daemon's).
READY_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
# A create that never completed: the next deploy deletes the stack and creates it again.
RECREATE_STATUSES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "REVIEW_IN_PROGRESS")

Request = Callable[[str, Dict[str, Any], Callable[[Optional[Dict[str, Any]], Any], None]], str]


@dataclass(frozen=True)
class StatusView:
    """What the panel shows as the stack's status."""

    headline: str
    detail: str = ""
    icon: str = "INFO"
    alert: bool = False


@dataclass(frozen=True)
class ButtonState:
    label: str
    enabled: bool
    reason: str = ""  # why it is disabled (the operator's poll message), or what it will do
    icon: str = "NONE"


@dataclass(frozen=True)
class Outcome:
    """How the last deploy / destroy pressed here ended; stays visible until the next one."""

    level: str  # INFO, WARNING or ERROR
    text: str


def is_in_progress(status: str) -> bool:
    return status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS"


def is_failure(status: str) -> bool:
    return status.endswith("_FAILED")


def event_icon(status: str) -> str:
    if is_failure(status):
        return "ERROR"
    if status in ("DELETE_COMPLETE", "EMPTY_COMPLETE"):
        return "TRASH"
    if "ROLLBACK" in status:
        return "LOOP_BACK"
    if status.endswith("_COMPLETE"):
        return "CHECKMARK"
    if status.endswith("_IN_PROGRESS"):
        return "SORTTIME"
    return "DOT"


def short_type(resource_type: str) -> str:
    """AWS::S3::Bucket -> S3::Bucket (the prefix says nothing in a narrow panel)."""
    return resource_type[5:] if resource_type.startswith("AWS::") else resource_type


def clock(timestamp: str) -> str:
    """An ISO timestamp's time of day (the daemon sends UTC), e.g. 12:03:09."""
    if "T" in timestamp and len(timestamp) >= 19:
        return timestamp[11:19]
    return timestamp


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"


def arn_name(arn: str) -> str:
    """The resource name at the end of an ARN (arn:…:job-queue/skyfarm-cpu-spot -> skyfarm-cpu-spot)."""
    return arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]


def key_outputs(outputs: Dict[str, str]) -> List[Tuple[str, str]]:
    """The outputs a user looks for, as (label, value), in a compact form."""
    rows: List[Tuple[str, str]] = []
    if outputs.get("BucketName"):
        rows.append(("Bucket", outputs["BucketName"]))
    cpu = [arn_name(outputs[key]) for key in ("CpuSpotQueueArn", "CpuOnDemandQueueArn") if outputs.get(key)]
    if cpu:
        rows.append(("CPU Queues", ", ".join(cpu)))
    gpu = [arn_name(outputs[key]) for key in ("GpuSpotQueueArn", "GpuOnDemandQueueArn") if outputs.get(key)]
    if gpu:
        rows.append(("GPU Queues", ", ".join(gpu)))
    elif outputs:
        rows.append(("GPU Queues", "off (deploy with GPU to add them)"))
    if outputs.get("TransferQueueArn"):
        rows.append(("Transfer Queue", arn_name(outputs["TransferQueueArn"])))
    if outputs:
        rows.append(("Notify Email", outputs.get("NotifyEmail") or "off"))
    return rows


class Farm:
    """The stack of the configured name: what is known about it and the operation running on it."""

    def __init__(
        self,
        request: Request,
        target: Callable[[], Dict[str, str]] = lambda: {},
        notify: Callable[[str, str], None] = lambda level, text: None,
        on_settled: Callable[[Optional[Dict[str, Any]]], None] = lambda stack: None,
        recheck: Callable[[], None] = lambda: None,
        clock_seconds: Callable[[], float] = time.monotonic,
    ):
        self._request = request
        self._target = target
        self._notify = notify
        self._on_settled = on_settled
        self._recheck = recheck
        self._now = clock_seconds
        self.connected = False
        # StackInfo of the last stack.status / deploy reply, its status kept current by stack events.
        self.stack: Optional[Dict[str, Any]] = None
        # (code, message) of the last stack.status that failed (STACK_NOT_FOUND, AWS_NO_CREDENTIALS, …).
        self.error: Optional[Tuple[str, str]] = None
        self.checking = False
        self.checked = False  # stack.status answered on this connection
        self.operation: Optional[str] = None  # "deploy" or "destroy" while one pressed here runs
        self.operation_started = 0.0
        self.events: Deque[Dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS)
        self.events_seen = 0  # every event ever added (the mirror appends only the new ones)
        self.events_generation = 0  # bumped when the list starts over (the mirror rebuilds)
        self.outcome: Optional[Outcome] = None
        self._known_region = ""  # the last region the daemon named (kept while a new stack is created)
        self.revision = 0

    # ----- what is configured ------------------------------------------------------------------

    def target(self) -> Dict[str, str]:
        """stackName / region / profile to send (only those set)."""
        return {key: value for key, value in self._target().items() if value}

    @property
    def stack_name(self) -> str:
        return self.target().get("stackName") or DEFAULT_STACK_NAME

    @property
    def region(self) -> str:
        return (self.stack or {}).get("region") or self.target().get("region") or self._known_region

    @property
    def busy(self) -> bool:
        return self.operation is not None

    @property
    def status(self) -> str:
        """The stack's CloudFormation status, or "" when there is none (or it is not known)."""
        return (self.stack or {}).get("status", "")

    @property
    def exists(self) -> bool:
        return bool(self.status) and self.status != "DELETE_COMPLETE"

    def failed_events(self) -> List[Dict[str, Any]]:
        """Resource failures of the latest operation (the stack's own events say less)."""
        return [e for e in self.events if is_failure(e["status"]) and e["resourceType"] != STACK_RESOURCE_TYPE]

    # ----- fed by the session ------------------------------------------------------------------

    def connection_changed(self, connected: bool) -> None:
        self.connected = connected
        self.checked = False
        self.checking = False
        # An operation running when the link drops ends through its reply callback (DAEMON_UNREACHABLE).
        self._changed()

    def forget(self) -> None:
        """The configured stack (name, region, profile) changed: what is known is about another one."""
        self.stack = None
        self.error = None
        self.checked = False
        self._known_region = ""
        if self.operation is None:
            self._clear_events()
            self.outcome = None
        self._changed()

    def _clear_events(self) -> None:
        self.events.clear()
        self.events_generation += 1

    def check_started(self) -> None:
        self.checking = True
        self._changed()

    def status_answered(self, result: Optional[Dict[str, Any]], error: Any) -> None:
        """The answer to a stack.status the session sent."""
        self.checking = False
        self.checked = True
        if result is not None:
            self.stack = result["stack"]
            self._known_region = self.stack.get("region") or self._known_region
            self.error = None
        elif error.code != "DAEMON_UNREACHABLE":
            self.stack = None
            self.error = (error.code, error.message)
        self._changed()

    def needs_check(self) -> bool:
        """True when the panel is shown and nobody has asked CloudFormation on this connection yet."""
        return self.connected and not self.checked and not self.checking and self.operation is None

    def on_event(self, event: Dict[str, Any]) -> bool:
        """A stack.event push. Returns True if it is about the configured stack (and was kept)."""
        if event.get("stackName") != self.stack_name:
            return False
        self.events.append(event)
        self.events_seen += 1
        if event["resourceType"] == STACK_RESOURCE_TYPE and event["resource"] == event["stackName"]:
            self._stack_status_changed(event)
        self._changed()
        return True

    def _stack_status_changed(self, event: Dict[str, Any]) -> None:
        status = event["status"]
        if status == "DELETE_COMPLETE":
            self.stack = None
            self.error = ("STACK_NOT_FOUND", f"Stack {event['stackName']} was deleted.")
            return
        stack = dict(self.stack or {"stackName": event["stackName"], "outputs": {}})
        stack["status"] = status
        if event.get("reason") and not event["reason"].startswith("skyfarm:"):
            stack["reason"] = event["reason"]
        else:
            stack.pop("reason", None)
        if status == "CREATE_IN_PROGRESS":
            stack["outputs"] = {}  # A new stack: the old outputs are gone.
        self.stack = stack
        self.error = None

    # ----- operations --------------------------------------------------------------------------

    def deploy(self, gpu: Optional[bool] = None, max_vcpus: Optional[int] = None, notify_email: Optional[str] = None) -> str:
        """Sends stack.deploy (create, or update through a change set). Returns at once."""
        params: Dict[str, Any] = self.target()
        if gpu is not None:
            params["gpu"] = bool(gpu)
        if max_vcpus:
            params["maxVcpus"] = int(max_vcpus)
        if notify_email is not None:
            params["notifyEmail"] = notify_email.strip()
        name = self.stack_name
        started = self._now()

        def answered(result: Optional[Dict[str, Any]], error: Any) -> None:
            self.operation = None
            took = format_duration(self._now() - started)
            if result is not None:
                stack = result["stack"]
                self.stack, self.error, self.checked = stack, None, True
                self._known_region = stack.get("region") or self._known_region
                if not result["changed"]:
                    text = f"No changes: stack {stack['stackName']} is up to date ({stack['status']})"
                elif stack["status"].startswith("UPDATE_"):
                    text = f"Updated stack {stack['stackName']} in {took} ({stack['status']})"
                else:
                    text = f"Created stack {stack['stackName']} in {took} ({stack['status']})"
                self.outcome = Outcome("INFO", text)
                self._notify("INFO", f"skyfarm: {text}")
                self._on_settled(stack)
            else:
                self.outcome = self._failure("Deploy", name, error)
                self._notify(self.outcome.level, f"skyfarm: {self.outcome.text}")
                if error.code != "DAEMON_UNREACHABLE":
                    self._recheck()  # e.g. ROLLBACK_COMPLETE: show where the stack is now
            self._changed()

        return self._start("deploy", "stack.deploy", params, answered)

    def destroy(self) -> str:
        """Sends stack.destroy: the daemon empties the bucket, then deletes the stack."""
        name = self.stack_name
        started = self._now()

        def answered(result: Optional[Dict[str, Any]], error: Any) -> None:
            self.operation = None
            if result is not None:
                self.stack = None
                self.error = ("STACK_NOT_FOUND", f"Stack {result['stackName']} is deleted.")
                self.checked = True
                if result["deleted"]:
                    took = format_duration(self._now() - started)
                    text = f"Deleted stack {result['stackName']} and its bucket's files in {took}"
                else:
                    text = f"There was no stack {result['stackName']} to delete"
                self.outcome = Outcome("INFO", text)
                self._notify("INFO", f"skyfarm: {text}")
                self._on_settled(None)
            else:
                self.outcome = self._failure("Destroy", name, error)
                self._notify(self.outcome.level, f"skyfarm: {self.outcome.text}")
                if error.code != "DAEMON_UNREACHABLE":
                    self._recheck()
            self._changed()

        return self._start("destroy", "stack.destroy", self.target(), answered)

    def _start(self, operation: str, method: str, params: Dict[str, Any], answered: Callable) -> str:
        # Validated before anything changes: a refused request leaves the panel as it was.
        request_id = self._request(method, params, answered)
        self.operation = operation
        self.operation_started = self._now()
        self._clear_events()
        self.outcome = None
        self._changed()
        return request_id

    @staticmethod
    def _failure(what: str, name: str, error: Any) -> Outcome:
        if error.code == "DAEMON_UNREACHABLE":
            return Outcome(
                "WARNING",
                f"Lost the connection to the daemon during the {what.lower()} of {name}. Whatever "
                f"CloudFormation started carries on in AWS: Refresh once reconnected to see where it is.",
            )
        return Outcome("ERROR", f"{what} failed: {error.message} [{error.code}]")

    def _changed(self) -> None:
        self.revision += 1

    # ----- what the panel shows ----------------------------------------------------------------

    def elapsed(self) -> float:
        return self._now() - self.operation_started if self.operation else 0.0

    def status_view(self) -> StatusView:
        if not self.connected:
            return StatusView("Not connected", "connect to the skyfarm daemon to see the stack", "UNLINKED")
        status = self.status
        if status:
            return _stack_status_view(self.stack or {})
        if self.error is not None:
            return _error_view(*self.error)
        if self.checking or self.operation:
            return StatusView("Checking…", f"asking CloudFormation about stack {self.stack_name}", "SORTTIME")
        return StatusView("Not checked yet", "press Refresh to ask CloudFormation", "QUESTION")

    def deploy_button(self) -> ButtonState:
        status = self.status
        if status in RECREATE_STATUSES:
            label, icon = "Recreate Stack", "FILE_REFRESH"
        elif self.exists:
            label, icon = "Update Stack", "FILE_REFRESH"
        else:
            label, icon = "Deploy Stack", "EXPORT"
        if not self.connected:
            return ButtonState(label, False, "Not connected to the skyfarm daemon", icon)
        if self.operation == "deploy":
            return ButtonState("Deploying…", False, f"Deploying stack {self.stack_name} ({format_duration(self.elapsed())} so far)", "SORTTIME")
        if self.operation == "destroy":
            return ButtonState(label, False, f"Destroying stack {self.stack_name}: wait for it to finish", icon)
        if self.checking and self.stack is None:
            # Only while nothing is known: a re-check of a known stack (after every deploy) keeps the button.
            return ButtonState(label, False, f"Checking stack {self.stack_name}…", icon)
        if is_in_progress(status):
            return ButtonState(label, False, f"Stack {self.stack_name} is {status}: wait until it has finished", icon)
        if status in RECREATE_STATUSES:
            return ButtonState(label, True, f"Stack {self.stack_name} is {status}: deletes it and creates it again", icon)
        if self.exists:
            return ButtonState(label, True, f"Updates stack {self.stack_name} to this skyfarm version's template", icon)
        return ButtonState(label, True, f"Creates stack {self.stack_name} in your AWS account", icon)

    def destroy_button(self) -> ButtonState:
        if not self.connected:
            return ButtonState("Destroy", False, "Not connected to the skyfarm daemon", "TRASH")
        if self.operation is not None:
            return ButtonState("Destroy", False, f"A {self.operation} of stack {self.stack_name} is running", "TRASH")
        if not self.exists:
            return ButtonState("Destroy", False, f"There is no stack {self.stack_name} to destroy", "TRASH")
        if is_in_progress(self.status):
            return ButtonState("Destroy", False, f"Stack {self.stack_name} is {self.status}: wait until it has finished", "TRASH")
        return ButtonState("Destroy", True, f"Empties the bucket and deletes stack {self.stack_name}", "TRASH")


_IN_PROGRESS_WORDS = {
    "CREATE_IN_PROGRESS": "Creating…",
    "UPDATE_IN_PROGRESS": "Updating…",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS": "Updating (cleaning up)…",
    "DELETE_IN_PROGRESS": "Deleting…",
    "ROLLBACK_IN_PROGRESS": "Create failed: rolling back…",
    "UPDATE_ROLLBACK_IN_PROGRESS": "Update failed: rolling back…",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS": "Update failed: rolling back…",
}
_FAILED_WORDS = {
    "ROLLBACK_COMPLETE": "Create failed (rolled back)",
    "ROLLBACK_FAILED": "Create failed (rollback failed)",
    "CREATE_FAILED": "Create failed",
    "DELETE_FAILED": "Delete failed",
    "UPDATE_ROLLBACK_FAILED": "Update rollback failed",
    "UPDATE_FAILED": "Update failed",
}


def _stack_status_view(stack: Dict[str, Any]) -> StatusView:
    status = stack["status"]
    detail = status + (f": {stack['reason']}" if stack.get("reason") else "")
    if status in READY_STATUSES:
        headline = "Ready" if status != "UPDATE_ROLLBACK_COMPLETE" else "Ready (the last update rolled back)"
        return StatusView(headline, detail, "CHECKMARK")
    if is_in_progress(status):
        return StatusView(_IN_PROGRESS_WORDS.get(status, status), detail, "SORTTIME")
    if status in _FAILED_WORDS:
        return StatusView(_FAILED_WORDS[status], detail, "ERROR", alert=True)
    return StatusView(status, detail, "INFO")


_ERROR_WORDS = {
    "STACK_NOT_FOUND": ("Not deployed", "INFO", False),
    "AWS_NO_CREDENTIALS": ("No AWS credentials", "ERROR", True),
    "AWS_NO_REGION": ("No AWS region", "ERROR", True),
    "AWS_ACCESS_DENIED": ("AWS denied access", "LOCKED", True),
    "STACK_NOT_SKYFARM": ("Not a skyfarm stack", "ERROR", True),
    "BAD_ARGUMENT": ("Invalid farm settings", "ERROR", True),
    "DAEMON_UNREACHABLE": ("Not connected", "UNLINKED", False),
}


def _error_view(code: str, message: str) -> StatusView:
    headline, icon, alert = _ERROR_WORDS.get(code, ("Cannot read the stack", "ERROR", True))
    detail = message if code in _ERROR_WORDS else f"{message} [{code}]"
    return StatusView(headline, detail, icon, alert)
