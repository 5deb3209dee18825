"""A small RFC 6455 WebSocket client on the Python standard library.

Official Blender builds ship no WebSocket module, so the add-on carries its own: opening
handshake with Sec-WebSocket-Accept check, masked client frames, fragmented messages in both
directions, ping/pong, the closing handshake, size limits, plus a reconnect backoff. It only talks
to loopback addresses. No bpy here: the add-on runs it on a background thread.
"""

import base64
import collections
import hashlib
import ipaddress
import os
import random
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Tuple, Union

_ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = (OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
# Codes that must never appear in a close frame (RFC 6455 section 7.4.1).
_RESERVED_CLOSE_CODES = (1004, 1005, 1006, 1015)

_MAX_HANDSHAKE_BYTES = 16384
_MAX_ERROR_BODY_BYTES = 65536

Message = Union[str, bytes]


class WebSocketError(Exception):
    """Anything that ends a connection."""


class HandshakeError(WebSocketError):
    """The server answered the upgrade request with something other than 101."""

    def __init__(self, status: int, reason: str, body: str = ""):
        detail = f": {body.strip()[:300]}" if body.strip() else ""
        super().__init__(f"WebSocket upgrade refused with HTTP {status} {reason}{detail}")
        self.status = status
        self.reason = reason
        self.body = body


class ConnectionClosed(WebSocketError):
    """The connection ended; code and reason come from the close frame when there was one."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(f"connection closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class ProtocolViolation(ConnectionClosed):
    """The peer broke RFC 6455; the connection was failed with close_code."""

    def __init__(self, close_code: int, reason: str):
        super().__init__(close_code, reason)
        self.close_code = close_code


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """XORs payload with the 4-byte key, one big-integer operation instead of a Python loop."""
    length = len(payload)
    if length == 0:
        return b""
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask_key: Optional[bytes] = None) -> bytes:
    """Builds one frame. Clients must pass a mask_key; servers (test servers) pass None."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask_key is None:
        return header + payload
    return header + mask_key + mask_payload(payload, mask_key)


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


class FrameDecoder:
    """Incremental frame parser for frames sent by a server (which must not be masked)."""

    def __init__(self, max_payload_bytes: int):
        self._buffer = bytearray()
        self._max_payload = max_payload_bytes

    def feed(self, data: bytes) -> List[Frame]:
        self._buffer.extend(data)
        frames = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return frames
            frames.append(frame)

    def _next_frame(self) -> Optional[Frame]:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        fin = bool(first & 0x80)
        if first & 0x70:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "reserved bits set without a negotiated extension")
        opcode = first & 0x0F
        if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES and opcode != OP_CONTINUATION:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if second & 0x80:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "the server masked a frame")
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length = struct.unpack_from("!H", buffer, 2)[0]
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length = struct.unpack_from("!Q", buffer, 2)[0]
            if length >> 63:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "frame length has the most significant bit set")
            offset = 10
        if opcode in _CONTROL_OPCODES:
            if not fin:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "control frame longer than 125 bytes")
        if length > self._max_payload:
            raise ProtocolViolation(CLOSE_TOO_BIG, f"frame of {length} bytes exceeds the limit")
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        return Frame(fin=fin, opcode=opcode, payload=payload)


class Backoff:
    """Exponential reconnect delays with jitter, so a restarted daemon is not hammered in lockstep."""

    def __init__(self, initial: float = 0.25, maximum: float = 5.0, factor: float = 2.0, jitter: float = 0.2):
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._attempt = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * (self.factor**self._attempt))
        self._attempt += 1
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._attempt = 0


def _require_loopback(host: str) -> None:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing to connect to {host!r}: skyfarm only talks to loopback addresses")


def _connect_loopback(host: str, port: int, timeout: float) -> socket.socket:
    """Connects to a loopback IP without socket.create_connection.

    create_connection resolves through getaddrinfo, whose first call imports encodings.idna. That
    import ran on the add-on's network thread and crashed Blender 3.4's GUI (segfault in
    _compile_bytecode). A loopback IP needs no resolution, so the thread imports nothing.
    """
    _require_loopback(host)
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + _ACCEPT_GUID).encode("ascii")).digest()).decode("ascii")


def _parse_response_head(head: bytes) -> Tuple[int, str, Dict[str, str]]:
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WebSocketError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


class WebSocket:
    """One client connection. Not thread-safe: one thread owns it."""

    def __init__(self, sock: socket.socket, max_message_bytes: int, initial_data: bytes = b""):
        self._sock = sock
        self._max_message = max_message_bytes
        self._decoder = FrameDecoder(max_message_bytes)
        self._fragments: List[bytes] = []
        self._fragment_opcode: Optional[int] = None
        self._fragment_size = 0
        self._ready: Deque[Message] = collections.deque()
        self._closed = False
        self._close_sent = False
        self._pending_data = initial_data

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        path: str = "/",
        headers: Optional[Dict[str, str]] = None,
        timeout: float = 5.0,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> "WebSocket":
        """Opens the TCP connection and performs the opening handshake (RFC 6455 section 4.1)."""
        sock = _connect_loopback(host, port, timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            request_headers = {
                "Host": host_header,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
            }
            request_headers.update(headers or {})
            lines = [f"GET {path} HTTP/1.1"] + [f"{name}: {value}" for name, value in request_headers.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            head, rest = cls._read_response_head(sock)
            status, reason, response_headers = _parse_response_head(head)
            if status != 101:
                raise HandshakeError(status, reason, cls._read_error_body(sock, rest, response_headers))
            if response_headers.get("upgrade", "").lower() != "websocket":
                raise WebSocketError("the server did not upgrade to websocket")
            if "upgrade" not in response_headers.get("connection", "").lower():
                raise WebSocketError("the server's Connection header does not say Upgrade")
            if response_headers.get("sec-websocket-accept") != _accept_key(key):
                raise WebSocketError("the server's Sec-WebSocket-Accept does not match the key")
            if response_headers.get("sec-websocket-extensions"):
                raise WebSocketError("the server enabled an extension that was not requested")
            return cls(sock, max_message_bytes, rest)
        except BaseException:
            sock.close()
            raise

    @staticmethod
    def _read_response_head(sock: socket.socket) -> Tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > _MAX_HANDSHAKE_BYTES:
                raise WebSocketError("the handshake response is too long")
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionClosed(1006, "the server closed the connection during the handshake")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        return head, rest

    @staticmethod
    def _read_error_body(sock: socket.socket, rest: bytes, headers: Dict[str, str]) -> str:
        # The body of a refused upgrade explains why (e.g. which check failed); read it best-effort.
        try:
            wanted = min(int(headers.get("content-length", "0")), _MAX_ERROR_BODY_BYTES)
        except ValueError:
            wanted = 0
        body = rest
        sock.settimeout(1.0)
        try:
            while len(body) < wanted:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        return body[:wanted].decode("utf-8", "replace")

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def closed(self) -> bool:
        return self._closed

    def send_text(self, text: str, fragment_size: Optional[int] = None) -> None:
        """Sends a text message, split into continuation frames of fragment_size bytes if given."""
        self._send_message(OP_TEXT, text.encode("utf-8"), fragment_size)

    def send_binary(self, data: bytes, fragment_size: Optional[int] = None) -> None:
        self._send_message(OP_BINARY, data, fragment_size)

    def _send_message(self, opcode: int, payload: bytes, fragment_size: Optional[int]) -> None:
        if self._closed or self._close_sent:
            raise ConnectionClosed(1006, "the connection is closed")
        if not fragment_size or len(payload) <= fragment_size:
            self._send_frame(opcode, payload)
            return
        pieces = [payload[start : start + fragment_size] for start in range(0, len(payload), fragment_size)]
        for index, piece in enumerate(pieces):
            self._send_frame(
                opcode if index == 0 else OP_CONTINUATION, piece, fin=index == len(pieces) - 1
            )

    def ping(self, payload: bytes = b"") -> None:
        self._send_frame(OP_PING, payload[:125])

    def _send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        try:
            self._sock.sendall(encode_frame(opcode, payload, fin=fin, mask_key=os.urandom(4)))
        except OSError as error:
            self._abort()
            raise ConnectionClosed(1006, f"send failed: {error}") from None

    def close(self, code: int = CLOSE_NORMAL, reason: str = "", wait: float = 1.0) -> None:
        """Starts the closing handshake, waits briefly for the server's close frame, then closes."""
        if self._closed:
            return
        try:
            if not self._close_sent:
                self._close_sent = True
                payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
                self._sock.sendall(encode_frame(OP_CLOSE, payload, mask_key=os.urandom(4)))
            if wait > 0:
                self.receive(timeout=wait)
        except (WebSocketError, OSError):
            pass
        self._abort()

    def receive(self, timeout: Optional[float]) -> Optional[Message]:
        """Returns the next message, or None when timeout passes. Raises ConnectionClosed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if not self._pending_data:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                readable, _, _ = select.select([self._sock], [], [], remaining)
                if not readable:
                    return None
            self._read_once()
        return self._ready.popleft()

    def read_available(self) -> List[Message]:
        """Reads what the socket has (call when select says readable) and returns whole messages.

        Answers pings and the closing handshake on the way. Raises ConnectionClosed when the
        connection ends, including ProtocolViolation after failing the connection.
        """
        self._read_once()
        return self._take_ready()

    def _read_once(self) -> None:
        if self._closed:
            raise ConnectionClosed(1006, "the connection is closed")
        if self._pending_data:
            data, self._pending_data = self._pending_data, b""
        else:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError, socket.timeout):
                return
            except OSError as error:
                self._abort()
                raise ConnectionClosed(1006, f"receive failed: {error}") from None
            if not data:
                self._abort()
                raise ConnectionClosed(1006, "the server closed the connection without a close frame")
        try:
            for frame in self._decoder.feed(data):
                self._handle_frame(frame)
        except ProtocolViolation as violation:
            self._fail(violation)

    def _take_ready(self) -> List[Message]:
        messages = list(self._ready)
        self._ready.clear()
        return messages

    def _handle_frame(self, frame: Frame) -> None:
        if frame.opcode == OP_PING:
            self._send_frame(OP_PONG, frame.payload)
        elif frame.opcode == OP_PONG:
            pass  # Any received data already proves the peer alive to the caller.
        elif frame.opcode == OP_CLOSE:
            self._handle_close(frame.payload)
        elif frame.opcode == OP_CONTINUATION:
            if self._fragment_opcode is None:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue")
            self._add_fragment(frame.payload)
            if frame.fin:
                opcode, self._fragment_opcode = self._fragment_opcode, None
                payload = b"".join(self._fragments)
                self._fragments, self._fragment_size = [], 0
                self._deliver(opcode, payload)
        else:
            if self._fragment_opcode is not None:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "new message started inside a fragmented one")
            if frame.fin:
                self._deliver(frame.opcode, frame.payload)
            else:
                self._fragment_opcode = frame.opcode
                self._add_fragment(frame.payload)

    def _add_fragment(self, payload: bytes) -> None:
        self._fragment_size += len(payload)
        if self._fragment_size > self._max_message:
            raise ProtocolViolation(CLOSE_TOO_BIG, f"message exceeds {self._max_message} bytes")
        self._fragments.append(payload)

    def _deliver(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:
            try:
                self._ready.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolViolation(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
        else:
            self._ready.append(payload)

    def _handle_close(self, payload: bytes) -> None:
        code, reason = 1005, ""
        if len(payload) == 1:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "close frame with a one-byte payload")
        if len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            if code < 1000 or code in _RESERVED_CLOSE_CODES or 1016 <= code < 3000 or code >= 5000:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolViolation(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
        if not self._close_sent:
            self._close_sent = True
            echo = struct.pack("!H", code) if code != 1005 else b""
            try:
                self._sock.sendall(encode_frame(OP_CLOSE, echo, mask_key=os.urandom(4)))
            except OSError:
                pass
        self._abort()
        raise ConnectionClosed(code, reason)

    def _fail(self, violation: ProtocolViolation) -> None:
        if not self._close_sent:
            self._close_sent = True
            payload = struct.pack("!H", violation.close_code) + violation.reason.encode("utf-8")[:123]
            try:
                self._sock.sendall(encode_frame(OP_CLOSE, payload, mask_key=os.urandom(4)))
            except OSError:
                pass
        self._abort()
        raise violation

    def _abort(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
