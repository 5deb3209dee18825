"""A scriptable WebSocket server for the cases the real daemon never produces.

The real daemon (tests drive it too) sends well-formed, unfragmented frames. To prove the client
copes with fragmented messages, pings, bad frames and garbage, this server runs one handler per
connection with raw access to the socket. Binds 127.0.0.1 on a free port.
"""

import base64
import hashlib
import socket
import struct
import threading

from helpers import import_addon_module

wsclient = import_addon_module("wsclient")

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawConnection:
    def __init__(self, sock, request_head):
        self.sock = sock
        self.request_head = request_head
        self.buffer = b""

    def headers(self):
        lines = self.request_head.split("\r\n")[1:]
        return {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in lines if ":" in line}

    def accept(self, accept_key=None):
        key = self.headers()["sec-websocket-key"]
        accept = accept_key or base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )

    def refuse(self, status, reason, body):
        data = body.encode()
        self.sock.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + data
        )

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(wsclient.encode_frame(opcode, payload, fin=fin))

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_frame(self, timeout=5.0):
        """Reads one client frame and unmasks it. Returns (fin, opcode, payload, was_masked)."""
        self.sock.settimeout(timeout)
        head = self._read_exact(2)
        fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        masked, length = bool(head[1] & 0x80), head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read_exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read_exact(8))[0]
        key = self._read_exact(4) if masked else b""
        payload = self._read_exact(length)
        if masked:
            payload = wsclient.mask_payload(payload, key)
        return fin, opcode, payload, masked

    def read_message(self, timeout=5.0):
        """Reads one whole client data message, answering nothing. Returns (opcode, payload, frames)."""
        frames = []
        opcode = None
        parts = []
        while True:
            fin, frame_opcode, payload, masked = self.read_frame(timeout)
            frames.append((fin, frame_opcode, len(payload), masked))
            if frame_opcode >= 0x8:
                if frame_opcode == wsclient.OP_CLOSE:
                    return frame_opcode, payload, frames
                continue
            if opcode is None:
                opcode = frame_opcode
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts), frames

    def _read_exact(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


class RawServer:
    """Calls handler(RawConnection) on its own thread for every connection."""

    def __init__(self, handler):
        self.handler = handler
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.errors = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock):
        try:
            sock.settimeout(5.0)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, rest = data.split(b"\r\n\r\n", 1)
            connection = RawConnection(sock, head.decode("latin-1"))
            connection.buffer = rest
            self.handler(connection)
        except Exception as error:  # Recorded so a test can fail on a broken fixture.
            self.errors.append(error)
        finally:
            sock.close()

    def close(self):
        self.listener.close()
