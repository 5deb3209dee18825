"""The connection to the skyfarm daemon: a background thread plus a queue to the main thread.

The network thread owns the socket: it finds the daemon through the state dir, connects, says
hello, sends queued requests and reads messages, and reconnects with backoff whenever anything
goes wrong. It never touches bpy and never calls back into add-on code: everything it learns goes
into an inbox that the main thread empties with drain(), time-boxed, from a bpy.app.timers
callback. Request callbacks and listeners therefore always run on the caller's (main) thread.
"""

import contextlib
import itertools
import json
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Set, Tuple

from . import codec, paths, protocol, wsclient

HOST = "127.0.0.1"
WS_PATH = "/ws"

# Connection states, as shown in the preferences and panels.
NOT_RUNNING = "not_running"
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
UNAUTHORIZED = "unauthorized"
INCOMPATIBLE = "incompatible"
STOPPED = "stopped"

# How long to wait before retrying after a refusal that retrying soon will not fix.
_SLOW_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class ConnectionStatus:
    state: str
    detail: str = ""
    # True from losing a connection until the next one succeeds: the UI then says "disconnected".
    lost: bool = False
    daemon_version: str = ""
    daemon_protocol: int = 0
    port: int = 0
    # Set when the daemon speaks a newer protocol than this add-on: the UI asks for an update.
    update_hint: str = ""

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED


@dataclass(frozen=True)
class RequestError:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


ReplyCallback = Callable[[Optional[Dict[str, Any]], Optional[RequestError]], None]


@dataclass
class _Listeners:
    on_status: Optional[Callable[[ConnectionStatus], None]] = None
    on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None
    on_notice: Optional[Callable[[str, str], None]] = None


class _Disconnect(Exception):
    """Ends the current connection; the status says why."""

    def __init__(self, status: ConnectionStatus, retry_after: Optional[float] = None):
        super().__init__(status.detail)
        self.status = status
        self.retry_after = retry_after


@dataclass
class _Link:
    """What the network thread knows about the current connection."""

    ws: wsclient.WebSocket
    port: int
    daemon_version: str = ""
    daemon_protocol: int = 0
    last_received: float = field(default_factory=time.monotonic)
    ping_sent: bool = False
    warned_newer: bool = False


def _version_key(version: str) -> Tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def version_hint(addon_version: str, daemon_version: str) -> str:
    """The version handshake: "" when the add-on and the daemon are the same skyfarm version, else
    what differs and the one command that fixes it."""
    if not addon_version or not daemon_version or addon_version == daemon_version:
        return ""
    if _version_key(daemon_version) > _version_key(addon_version):
        return (
            f"This add-on is skyfarm {addon_version}, the daemon {daemon_version}: run `skyfarm addon install` "
            f"in a terminal, then restart Blender"
        )
    return (
        f"This add-on is skyfarm {addon_version}, the daemon {daemon_version} (older): run `skyfarm daemon stop`, "
        f"then Start Daemon"
    )


class DaemonConnection:
    def __init__(
        self,
        client_name: str,
        client_version: str,
        state_dir: Callable[[], str] = paths.state_dir,
        handshake_timeout: float = 5.0,
        keepalive_seconds: float = 15.0,
        fragment_size: int = 64 * 1024,
        backoff: Optional[wsclient.Backoff] = None,
    ):
        self.client_name = client_name
        self.client_version = client_version
        self.listeners = _Listeners()
        self._state_dir = state_dir
        self._handshake_timeout = handshake_timeout
        self._keepalive = keepalive_seconds
        self._fragment_size = fragment_size
        self._backoff = backoff or wsclient.Backoff()
        self._inbox: "queue.Queue[tuple]" = queue.Queue()
        self._outgoing: "queue.Queue[tuple]" = queue.Queue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._stopping = threading.Event()
        self._retry_now = threading.Event()
        self._connected = threading.Event()
        # Held by the network thread except while it blocks; paused() takes it to park the thread.
        self._gate = threading.RLock()
        self._thread: Optional[threading.Thread] = None
        self._ids = itertools.count(1)
        # Main-thread side: callbacks by request id, and the last status handed to listeners.
        self._callbacks: Dict[str, ReplyCallback] = {}
        self.status = ConnectionStatus(STOPPED, "not started")
        # Network-thread side.
        self._in_flight: Set[str] = set()
        self._published_status: Optional[ConnectionStatus] = None
        self._lost = False

    # ----- main thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self.status = ConnectionStatus(CONNECTING, f"looking for the skyfarm daemon in {self._state_dir()}")
        self._thread = threading.Thread(target=self._run, name="skyfarm-daemon-connection", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> bool:
        """Closes the connection and ends the thread. Returns False if the thread did not end in time."""
        self._stopping.set()
        self._wake()
        finished = True
        if self._thread is not None:
            self._thread.join(timeout)
            finished = not self._thread.is_alive()
        self._thread = None
        if finished:
            # Only a finished thread no longer selects on the wake socket.
            for sock in (self._wake_reader, self._wake_writer):
                sock.close()
        return finished

    @contextlib.contextmanager
    def paused(self, timeout: float = 2.0) -> Iterator[bool]:
        """Keeps the network thread parked (running no Python) while the block runs.

        Blender 3.4 reads a temp_override's context without taking the GIL whenever any thread
        holds the GIL (PyC_IsInterpreterActive), so bpy.ops inside temp_override raced this thread
        and crashed Blender. Run such calls inside this. Waits at most timeout for the thread to
        reach a blocking point (e.g. a stalled handshake); yields whether it did.
        """
        parked = self._gate.acquire(timeout=timeout)
        try:
            yield parked
        finally:
            if parked:
                self._gate.release()

    def reconnect_now(self) -> None:
        """Skips the current backoff wait (e.g. right after starting the daemon)."""
        self._backoff.reset()
        self._retry_now.set()
        self._wake()

    def request(self, method: str, params: Dict[str, Any], callback: Optional[ReplyCallback] = None) -> str:
        """Queues a request. callback(result, error) runs in a later drain(), on the draining thread.

        Raises ValueError at once when the daemon would refuse the request as malformed.
        """
        request_id = f"b{next(self._ids)}"
        try:
            text = codec.encode_request(request_id, method, params)
        except ValueError as error:
            # Too many files for one message: the list goes by reference, a file the daemon reads once.
            if not (str(error).startswith("MESSAGE_TOO_LARGE") and method in codec.LISTED_METHODS and params.get("dependencies")):
                raise
            text, callback = self._by_reference(request_id, method, params, callback)
        if callback is not None:
            self._callbacks[request_id] = callback
        if not self._connected.is_set():
            self._inbox.put(("error", request_id, "DAEMON_UNREACHABLE", self._unreachable_reason()))
            return request_id
        self._outgoing.put((request_id, text))
        self._wake()
        return request_id

    def _by_reference(
        self, request_id: str, method: str, params: Dict[str, Any], callback: Optional[ReplyCallback]
    ) -> "tuple[str, ReplyCallback]":
        """The request with its dependencies written to a list file, and a callback that removes the
        file should the daemon never read it (refused before, or the connection lost)."""
        try:
            reference = codec.write_dependency_list(self._state_dir(), params["dependencies"])
        except OSError as error:
            raise ValueError(f"cannot write the dependency list in {self._state_dir()}: {error}") from None
        rest = {key: value for key, value in params.items() if key != "dependencies"}
        try:
            text = codec.encode_request(request_id, method, dict(rest, dependencyList=reference))
        except ValueError:
            codec.discard_dependency_list(reference["path"])
            raise

        def answered(result: Optional[Dict[str, Any]], error: Optional[RequestError]) -> None:
            codec.discard_dependency_list(reference["path"])
            if callback is not None:
                callback(result, error)

        return text, answered

    def drain(self, budget_seconds: float) -> bool:
        """Handles inbox items until the budget is spent. Returns True if items are left over."""
        deadline = time.monotonic() + budget_seconds
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return False
            self._dispatch(item)
            if time.monotonic() >= deadline:
                return not self._inbox.empty()

    def _dispatch(self, item: tuple) -> None:
        kind = item[0]
        if kind == "status":
            self.status = item[1]
            if self.listeners.on_status:
                self.listeners.on_status(item[1])
        elif kind == "event":
            if self.listeners.on_event:
                self.listeners.on_event(item[1], item[2])
        elif kind == "reply":
            callback = self._callbacks.pop(item[1], None)
            if callback:
                callback(item[2], None)
        elif kind == "error":
            callback = self._callbacks.pop(item[1], None)
            if callback:
                callback(None, RequestError(item[2], item[3]))
            elif self.listeners.on_notice:
                self.listeners.on_notice("WARNING", f"skyfarm daemon: {item[3]} [{item[2]}]")
        elif kind == "notice":
            if self.listeners.on_notice:
                self.listeners.on_notice(item[1], item[2])

    def _unreachable_reason(self) -> str:
        detail = self.status.detail or "not connected"
        return f"the skyfarm daemon is not connected ({detail})"

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # Already woken (buffer full) or shutting down.

    # ----- network thread ----------------------------------------------------------------------

    def _run(self) -> None:
        self._gate.acquire()
        try:
            self._run_parkable()
        finally:
            self._gate.release()

    def _blocking_select(self, readers: list, timeout: float) -> list:
        """select() with the gate open, the only place this thread lets paused() in."""
        self._gate.release()
        try:
            readable, _, _ = select.select(readers, [], [], timeout)
        finally:
            self._gate.acquire()
        return readable

    def _run_parkable(self) -> None:
        while not self._stopping.is_set():
            retry_after: Optional[float] = None
            try:
                link = self._open()
                self._session(link)
            except _Disconnect as disconnect:
                self._publish(disconnect.status)
                retry_after = disconnect.retry_after
            finally:
                self._connected.clear()
                self._fail_pending()
            if self._stopping.is_set():
                break
            self._sleep(retry_after if retry_after is not None else self._backoff.next_delay())
        self._publish(ConnectionStatus(STOPPED, "stopped"))

    def _status(self, state: str, detail: str, **extra: Any) -> ConnectionStatus:
        lost = self._lost and state != CONNECTED
        return ConnectionStatus(state=state, detail=detail, lost=lost, **extra)

    def _publish(self, status: ConnectionStatus) -> None:
        if status != self._published_status:
            self._published_status = status
            self._inbox.put(("status", status))

    def _open(self) -> _Link:
        directory = self._state_dir()
        try:
            endpoint = paths.read_endpoint(directory)
        except paths.DaemonNotRunning as error:
            raise _Disconnect(self._status(NOT_RUNNING, str(error))) from None
        except paths.DaemonInfoInvalid as error:
            raise _Disconnect(self._status(DISCONNECTED, str(error))) from None
        self._publish(self._status(CONNECTING, f"connecting to 127.0.0.1:{endpoint.port}", port=endpoint.port))
        try:
            ws = wsclient.WebSocket.connect(
                HOST,
                endpoint.port,
                WS_PATH,
                headers={
                    "Authorization": f"Bearer {endpoint.token}",
                    "User-Agent": f"skyfarm-{self.client_name}/{self.client_version}",
                },
                timeout=self._handshake_timeout,
                # Twice the protocol limit so the codec, not the socket, reports oversized messages.
                max_message_bytes=2 * protocol.MAX_MESSAGE_BYTES,
            )
        except ConnectionRefusedError:
            raise _Disconnect(
                self._status(
                    NOT_RUNNING,
                    f"the skyfarm daemon is not running (nothing listens on port {endpoint.port} "
                    f"named in {directory}/daemon.json)",
                    port=endpoint.port,
                )
            ) from None
        except wsclient.HandshakeError as error:
            if error.status == 401:
                raise _Disconnect(
                    self._status(
                        UNAUTHORIZED,
                        f"the daemon refused the token from {directory}/token (HTTP 401)",
                        port=endpoint.port,
                    )
                ) from None
            raise _Disconnect(self._status(DISCONNECTED, str(error), port=endpoint.port)) from None
        except (OSError, wsclient.WebSocketError) as error:
            raise _Disconnect(
                self._status(DISCONNECTED, f"cannot connect to port {endpoint.port}: {error}", port=endpoint.port)
            ) from None
        link = _Link(ws=ws, port=endpoint.port, daemon_version=endpoint.version)
        try:
            self._handshake(link)
        except BaseException:
            ws.close(wait=0)
            raise
        return link

    def _handshake(self, link: _Link) -> None:
        """Sends hello and checks the welcome (or the daemon's refusal)."""
        port = link.port
        try:
            link.ws.send_text(codec.encode_hello(self.client_name, self.client_version))
            raw = link.ws.receive(timeout=self._handshake_timeout)
        except (OSError, wsclient.WebSocketError) as error:
            raise _Disconnect(self._status(DISCONNECTED, f"handshake failed: {error}", port=port)) from None
        if raw is None:
            raise _Disconnect(self._status(DISCONNECTED, "the daemon did not answer hello in time", port=port))
        verdict = codec.decode_server_message(raw)
        ours = protocol.PROTOCOL_VERSION
        if verdict.ok and verdict.message["type"] == "error":
            message = verdict.message
            if message["code"] == "PROTOCOL_MISMATCH":
                raise _Disconnect(
                    self._status(
                        INCOMPATIBLE,
                        f"the daemon refused this add-on's protocol {ours}: {message['message']}. "
                        f"Update the skyfarm add-on to the one that ships with the daemon"
                        + (f" (skyfarm {link.daemon_version})" if link.daemon_version else ""),
                        port=port,
                    ),
                    retry_after=_SLOW_RETRY_SECONDS,
                )
            raise _Disconnect(
                self._status(DISCONNECTED, f"the daemon refused hello: {message['message']} [{message['code']}]", port=port)
            )
        welcome = verdict.message if verdict.ok and verdict.message["type"] == "welcome" else None
        if welcome is None:
            welcome = self._lenient_welcome(raw)
            if welcome is None:
                problem = verdict.error if not verdict.ok else f"got {verdict.message['type']} instead of welcome"
                raise _Disconnect(self._status(DISCONNECTED, f"bad welcome from the daemon: {problem}", port=port))
        daemon_protocol, daemon_minimum = welcome["protocol"], welcome["minProtocol"]
        daemon_version = welcome.get("daemon", {}).get("version", "") or link.daemon_version
        if daemon_minimum > ours:
            raise _Disconnect(
                self._status(
                    INCOMPATIBLE,
                    f"the daemon (skyfarm {daemon_version}) speaks protocol {daemon_protocol} and no longer "
                    f"accepts {ours}: update the skyfarm add-on",
                    port=port,
                    daemon_version=daemon_version,
                    daemon_protocol=daemon_protocol,
                ),
                retry_after=_SLOW_RETRY_SECONDS,
            )
        if daemon_protocol < protocol.MIN_PROTOCOL_VERSION:
            raise _Disconnect(
                self._status(
                    INCOMPATIBLE,
                    f"the daemon (skyfarm {daemon_version}) speaks protocol {daemon_protocol}, older than this "
                    f"add-on supports ({protocol.MIN_PROTOCOL_VERSION}): update the skyfarm daemon",
                    port=port,
                    daemon_version=daemon_version,
                    daemon_protocol=daemon_protocol,
                ),
                retry_after=_SLOW_RETRY_SECONDS,
            )
        link.daemon_version = daemon_version
        link.daemon_protocol = daemon_protocol

    @staticmethod
    def _lenient_welcome(raw: Any) -> Optional[Dict[str, Any]]:
        """A welcome from a newer daemon may carry fields this add-on's schema does not know.

        Accept it when the version numbers are readable, so the version checks can say what to update.
        """
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            return None
        if not isinstance(value, dict) or value.get("type") != "welcome":
            return None
        versions = (value.get("protocol"), value.get("minProtocol"))
        if not all(isinstance(number, int) and not isinstance(number, bool) for number in versions):
            return None
        if value["protocol"] <= protocol.PROTOCOL_VERSION:
            return None  # Not newer, so a malformed welcome is just malformed.
        daemon = value.get("daemon") if isinstance(value.get("daemon"), dict) else {}
        return {"protocol": versions[0], "minProtocol": versions[1], "daemon": daemon}

    def _session(self, link: _Link) -> None:
        """Runs one established connection until it ends (raises _Disconnect) or the add-on stops."""
        update_hint = version_hint(self.client_version, link.daemon_version)
        if link.daemon_protocol > protocol.PROTOCOL_VERSION:
            update_hint = (
                f"The daemon speaks protocol {link.daemon_protocol}, newer than this add-on's "
                f"{protocol.PROTOCOL_VERSION}: update the skyfarm add-on"
            )
        connected = self._status(
            CONNECTED,
            f"connected to skyfarm {link.daemon_version} on 127.0.0.1:{link.port}",
            daemon_version=link.daemon_version,
            daemon_protocol=link.daemon_protocol,
            port=link.port,
            update_hint=update_hint,
        )
        self._lost = False
        self._backoff.reset()
        self._connected.set()
        self._publish(connected)
        ws = link.ws
        try:
            while not self._stopping.is_set():
                self._flush_outgoing(ws)
                idle = time.monotonic() - link.last_received
                if idle > 3 * self._keepalive:
                    raise wsclient.ConnectionClosed(1006, f"the daemon stopped answering ({int(idle)} s of silence)")
                if idle > self._keepalive and not link.ping_sent:
                    ws.ping(b"skyfarm")
                    link.ping_sent = True
                readable = self._blocking_select([ws, self._wake_reader], min(1.0, self._keepalive))
                if self._wake_reader in readable:
                    self._clear_wake()
                if ws in readable:
                    messages = ws.read_available()
                    link.last_received = time.monotonic()
                    link.ping_sent = False
                    for raw in messages:
                        self._receive(link, raw)
            ws.close(wsclient.CLOSE_GOING_AWAY, "add-on stopping", wait=0.5)
        except (OSError, wsclient.WebSocketError) as error:
            ws.close(wait=0)
            self._lost = True
            raise _Disconnect(
                self._status(DISCONNECTED, f"connection to the daemon lost ({error}); reconnecting", port=link.port)
            ) from None

    def _flush_outgoing(self, ws: wsclient.WebSocket) -> None:
        while True:
            try:
                request_id, text = self._outgoing.get_nowait()
            except queue.Empty:
                return
            self._in_flight.add(request_id)
            ws.send_text(text, fragment_size=self._fragment_size)

    def _receive(self, link: _Link, raw: Any) -> None:
        verdict = codec.decode_server_message(raw)
        if not verdict.ok:
            # A reply the add-on cannot read still ends its request, so no callback waits forever;
            # one whose request cannot be told ends every request waiting (it may be any of them).
            if verdict.id is not None and verdict.id in self._in_flight:
                self._in_flight.discard(verdict.id)
                self._inbox.put(("error", verdict.id, verdict.code, f"unreadable reply: {verdict.error}"))
            elif verdict.id is None and self._in_flight and self._is_answer(raw):
                self._fail_in_flight(verdict.code, f"unreadable answer from the daemon: {verdict.error}")
            if link.daemon_protocol > protocol.PROTOCOL_VERSION:
                if not link.warned_newer:
                    link.warned_newer = True
                    self._inbox.put(
                        (
                            "notice",
                            "WARNING",
                            f"skyfarm: the daemon speaks protocol {link.daemon_protocol} and sent a message "
                            f"this add-on (protocol {protocol.PROTOCOL_VERSION}) does not understand "
                            f"({verdict.error}). Update the skyfarm add-on.",
                        )
                    )
            else:
                self._inbox.put(("notice", "WARNING", f"skyfarm: ignored a malformed message from the daemon: {verdict.error} [{verdict.code}]"))
            return
        message = verdict.message
        kind = message["type"]
        if kind == "reply":
            self._in_flight.discard(message["id"])
            self._inbox.put(("reply", message["id"], message["result"]))
        elif kind == "error":
            if message["id"] is None and self._in_flight:
                # The daemon could not tell which request it refuses (e.g. one too large to read).
                self._fail_in_flight(message["code"], message["message"])
                return
            if message["id"] is not None:
                self._in_flight.discard(message["id"])
            self._inbox.put(("error", message["id"], message["code"], message["message"]))
        elif kind == "event":
            self._inbox.put(("event", message["event"], message["data"]))
        # A second welcome means nothing new; ignore it.

    @staticmethod
    def _is_answer(raw: Any) -> bool:
        """A reply or error, read as far as it goes (garbage and events answer no request)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return codec.peek_envelope(text).get("type") in ("reply", "error")

    def _fail_in_flight(self, code: str, reason: str) -> None:
        for request_id in sorted(self._in_flight):
            self._inbox.put(("error", request_id, code, reason))
        self._in_flight.clear()

    def _fail_pending(self) -> None:
        """Every request that will now get no reply is answered with DAEMON_UNREACHABLE."""
        reason = "the connection to the skyfarm daemon was lost before it answered"
        for request_id in sorted(self._in_flight):
            self._inbox.put(("error", request_id, "DAEMON_UNREACHABLE", reason))
        self._in_flight.clear()
        while True:
            try:
                request_id, _text = self._outgoing.get_nowait()
            except queue.Empty:
                break
            self._inbox.put(("error", request_id, "DAEMON_UNREACHABLE", reason))

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and not self._retry_now.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            readable = self._blocking_select([self._wake_reader], remaining)
            if readable:
                self._clear_wake()
        self._retry_now.clear()

    def _clear_wake(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
