"""RFC 6455 behaviour of wsclient against a raw server that can misbehave on purpose.

The same client is also run against the real daemon in test_daemon_connection.py.
"""

import json
import struct
import threading
import unittest

from helpers import import_addon_module
from rawserver import RawServer

wsclient = import_addon_module("wsclient")


def connect(server, **kwargs):
    return wsclient.WebSocket.connect("127.0.0.1", server.port, "/ws", timeout=5.0, **kwargs)


class ServerScript:
    """Runs a handler and keeps what it observed for the test thread."""

    def __init__(self, handler):
        self.observed = {}
        self.done = threading.Event()

        def run(connection):
            try:
                handler(connection, self.observed)
            finally:
                self.done.set()

        self.server = RawServer(run)

    def finish(self, test):
        test.assertTrue(self.done.wait(5), "server handler did not finish")
        self.server.close()
        test.assertEqual(self.server.errors, [], "the test server itself failed")
        return self.observed


class HandshakeTest(unittest.TestCase):
    def test_upgrade_request_carries_token_host_and_no_origin(self):
        def handler(connection, observed):
            observed["head"] = connection.request_head
            observed["headers"] = connection.headers()
            connection.accept()
            observed["message"] = connection.read_message()

        script = ServerScript(handler)
        ws = connect(script.server, headers={"Authorization": "Bearer s3cret"})
        ws.send_text("hi")
        observed = script.finish(self)
        ws.close(wait=0)
        headers = observed["headers"]
        self.assertTrue(observed["head"].startswith("GET /ws HTTP/1.1\r\n"))
        self.assertEqual(headers["host"], f"127.0.0.1:{script.server.port}")
        self.assertEqual(headers["authorization"], "Bearer s3cret")
        self.assertEqual(headers["sec-websocket-version"], "13")
        self.assertEqual(headers["upgrade"], "websocket")
        self.assertNotIn("origin", headers)
        self.assertEqual(observed["message"][:2], (wsclient.OP_TEXT, b"hi"))

    def test_refused_upgrade_reports_status_and_body(self):
        script = ServerScript(lambda connection, _: connection.refuse(401, "Unauthorized", "bad token"))
        with self.assertRaises(wsclient.HandshakeError) as caught:
            connect(script.server)
        script.finish(self)
        self.assertEqual(caught.exception.status, 401)
        self.assertIn("bad token", str(caught.exception))

    def test_wrong_accept_key_is_rejected(self):
        script = ServerScript(lambda connection, _: connection.accept(accept_key="d3Jvbmc="))
        with self.assertRaises(wsclient.WebSocketError) as caught:
            connect(script.server)
        script.finish(self)
        self.assertIn("Sec-WebSocket-Accept", str(caught.exception))

    def test_garbage_instead_of_http_is_rejected(self):
        script = ServerScript(lambda connection, _: connection.send_raw(b"\x00\x01garbage\r\n\r\n"))
        with self.assertRaises(wsclient.WebSocketError) as caught:
            connect(script.server)
        script.finish(self)
        self.assertIn("not an HTTP response", str(caught.exception))

    def test_server_hanging_up_during_handshake(self):
        script = ServerScript(lambda connection, _: None)
        with self.assertRaises(wsclient.ConnectionClosed):
            connect(script.server)
        script.finish(self)

    def test_only_loopback_hosts(self):
        with self.assertRaises(ValueError):
            wsclient.WebSocket.connect("192.0.2.1", 80, "/ws", timeout=0.1)
        with self.assertRaises(ValueError):
            wsclient.WebSocket.connect("example.com", 80, "/ws", timeout=0.1)

    def test_frames_after_the_handshake_in_the_same_packet_are_kept(self):
        def handler(connection, observed):
            key = connection.headers()["sec-websocket-key"]
            import base64
            import hashlib

            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            connection.send_raw(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + wsclient.encode_frame(wsclient.OP_TEXT, b"early")
            )
            observed["close"] = connection.read_message()

        script = ServerScript(handler)
        ws = connect(script.server)
        self.assertEqual(ws.receive(timeout=2), "early")
        ws.close(wait=0)
        script.finish(self)


class FramingTest(unittest.TestCase):
    def test_client_frames_are_masked_and_fragmented(self):
        text = "ü" * 5000 + "end"  # Fragment boundaries fall inside multi-byte characters.

        def handler(connection, observed):
            connection.accept()
            observed["message"] = connection.read_message()

        script = ServerScript(handler)
        ws = connect(script.server)
        ws.send_text(text, fragment_size=1000)
        observed = script.finish(self)
        ws.close(wait=0)
        opcode, payload, frames = observed["message"]
        self.assertEqual(opcode, wsclient.OP_TEXT)
        self.assertEqual(payload.decode("utf-8"), text)
        self.assertEqual(len(frames), 11)
        self.assertEqual(frames[0][1], wsclient.OP_TEXT)
        self.assertTrue(all(frame[1] == wsclient.OP_CONTINUATION for frame in frames[1:]))
        self.assertEqual([frame[0] for frame in frames], [False] * 10 + [True])
        self.assertTrue(all(frame[3] for frame in frames), "every client frame must be masked")

    def test_fragmented_server_message_with_ping_in_between(self):
        def handler(connection, observed):
            connection.accept()
            connection.send_frame(wsclient.OP_TEXT, b'{"part":', fin=False)
            connection.send_frame(wsclient.OP_PING, b"are you there")
            connection.send_frame(wsclient.OP_CONTINUATION, b' "two"', fin=False)
            connection.send_frame(wsclient.OP_CONTINUATION, b"}", fin=True)
            fin, opcode, payload, masked = connection.read_frame()
            observed["pong"] = (opcode, payload, masked)

        script = ServerScript(handler)
        ws = connect(script.server)
        message = ws.receive(timeout=5)
        observed = script.finish(self)
        ws.close(wait=0)
        self.assertEqual(json.loads(message), {"part": "two"})
        self.assertEqual(observed["pong"], (wsclient.OP_PONG, b"are you there", True))

    def test_long_payload_lengths(self):
        sizes = [125, 126, 65535, 65536, 300000]

        def handler(connection, observed):
            connection.accept()
            for size in sizes:
                connection.send_frame(wsclient.OP_TEXT, b"x" * size)
            observed["echo"] = [len(connection.read_message()[1]) for _ in sizes]

        script = ServerScript(handler)
        ws = connect(script.server)
        received = [ws.receive(timeout=5) for _ in sizes]
        for message in received:
            ws.send_text(message)
        observed = script.finish(self)
        ws.close(wait=0)
        self.assertEqual([len(message) for message in received], sizes)
        self.assertEqual(observed["echo"], sizes)

    def test_binary_message_is_returned_as_bytes(self):
        def handler(connection, observed):
            connection.accept()
            connection.send_frame(wsclient.OP_BINARY, b"\x00\xff")
            connection.read_message()

        script = ServerScript(handler)
        ws = connect(script.server)
        self.assertEqual(ws.receive(timeout=5), b"\x00\xff")
        ws.close(wait=0)
        script.finish(self)


class CloseTest(unittest.TestCase):
    def test_server_close_is_echoed_and_reported(self):
        def handler(connection, observed):
            connection.accept()
            connection.send_frame(wsclient.OP_CLOSE, struct.pack("!H", 1001) + b"daemon stopping")
            observed["echo"] = connection.read_frame()

        script = ServerScript(handler)
        ws = connect(script.server)
        with self.assertRaises(wsclient.ConnectionClosed) as caught:
            ws.receive(timeout=5)
        observed = script.finish(self)
        self.assertEqual((caught.exception.code, caught.exception.reason), (1001, "daemon stopping"))
        fin, opcode, payload, masked = observed["echo"]
        self.assertEqual((opcode, payload[:2]), (wsclient.OP_CLOSE, struct.pack("!H", 1001)))
        self.assertTrue(ws.closed)

    def test_client_close_handshake(self):
        def handler(connection, observed):
            connection.accept()
            fin, opcode, payload, masked = connection.read_frame()
            observed["close"] = (opcode, struct.unpack("!H", payload[:2])[0], payload[2:])
            connection.send_frame(wsclient.OP_CLOSE, payload[:2])

        script = ServerScript(handler)
        ws = connect(script.server)
        ws.close(wsclient.CLOSE_GOING_AWAY, "bye", wait=2)
        observed = script.finish(self)
        self.assertEqual(observed["close"], (wsclient.OP_CLOSE, 1001, b"bye"))
        self.assertTrue(ws.closed)

    def test_abrupt_end_of_stream(self):
        script = ServerScript(lambda connection, _: connection.accept())
        ws = connect(script.server)
        script.finish(self)
        with self.assertRaises(wsclient.ConnectionClosed) as caught:
            ws.receive(timeout=5)
        self.assertEqual(caught.exception.code, 1006)
        with self.assertRaises(wsclient.ConnectionClosed):
            ws.send_text("after the end")


class GarbageTest(unittest.TestCase):
    """Each bad server frame fails the connection with the code RFC 6455 prescribes."""

    def expect_failure(self, send, expected_code, **connect_kwargs):
        def handler(connection, observed):
            connection.accept()
            send(connection)
            try:
                fin, opcode, payload, masked = connection.read_frame()
                observed["close"] = (opcode, struct.unpack("!H", payload[:2])[0])
            except ConnectionError:
                observed["close"] = None

        script = ServerScript(handler)
        ws = connect(script.server, **connect_kwargs)
        with self.assertRaises(wsclient.ProtocolViolation) as caught:
            ws.receive(timeout=5)
        observed = script.finish(self)
        self.assertEqual(caught.exception.close_code, expected_code)
        self.assertEqual(observed["close"], (wsclient.OP_CLOSE, expected_code))
        self.assertTrue(ws.closed)
        return caught.exception

    def test_masked_server_frame(self):
        self.expect_failure(
            lambda c: c.send_raw(wsclient.encode_frame(wsclient.OP_TEXT, b"hi", mask_key=b"abcd")),
            wsclient.CLOSE_PROTOCOL_ERROR,
        )

    def test_reserved_bits(self):
        self.expect_failure(lambda c: c.send_raw(b"\xc1\x02hi"), wsclient.CLOSE_PROTOCOL_ERROR)

    def test_unknown_opcode(self):
        self.expect_failure(lambda c: c.send_raw(b"\x83\x00"), wsclient.CLOSE_PROTOCOL_ERROR)

    def test_random_bytes(self):
        self.expect_failure(lambda c: c.send_raw(b"\x00\x01garbage garbage"), wsclient.CLOSE_PROTOCOL_ERROR)

    def test_continuation_without_start(self):
        self.expect_failure(
            lambda c: c.send_frame(wsclient.OP_CONTINUATION, b"orphan"), wsclient.CLOSE_PROTOCOL_ERROR
        )

    def test_new_message_inside_fragmented_one(self):
        def send(connection):
            connection.send_frame(wsclient.OP_TEXT, b"a", fin=False)
            connection.send_frame(wsclient.OP_TEXT, b"b")

        self.expect_failure(send, wsclient.CLOSE_PROTOCOL_ERROR)

    def test_fragmented_control_frame(self):
        self.expect_failure(lambda c: c.send_frame(wsclient.OP_PING, b"x", fin=False), wsclient.CLOSE_PROTOCOL_ERROR)

    def test_oversized_control_frame(self):
        self.expect_failure(lambda c: c.send_frame(wsclient.OP_PING, b"x" * 126), wsclient.CLOSE_PROTOCOL_ERROR)

    def test_invalid_utf8_text(self):
        self.expect_failure(lambda c: c.send_frame(wsclient.OP_TEXT, b"\xff\xfe"), wsclient.CLOSE_INVALID_DATA)

    def test_invalid_close_code(self):
        self.expect_failure(
            lambda c: c.send_frame(wsclient.OP_CLOSE, struct.pack("!H", 1005)), wsclient.CLOSE_PROTOCOL_ERROR
        )

    def test_message_over_the_limit_in_one_frame(self):
        self.expect_failure(
            lambda c: c.send_frame(wsclient.OP_TEXT, b"x" * 2000), wsclient.CLOSE_TOO_BIG, max_message_bytes=1000
        )

    def test_message_over_the_limit_in_fragments(self):
        def send(connection):
            for _ in range(5):
                connection.send_frame(wsclient.OP_TEXT if _ == 0 else wsclient.OP_CONTINUATION, b"x" * 300, fin=False)

        self.expect_failure(send, wsclient.CLOSE_TOO_BIG, max_message_bytes=1000)


class BackoffTest(unittest.TestCase):
    def test_grows_caps_and_resets(self):
        backoff = wsclient.Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0)
        self.assertEqual([round(backoff.next_delay(), 3) for _ in range(6)], [0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
        backoff.reset()
        self.assertEqual(backoff.next_delay(), 0.1)

    def test_jitter_stays_in_bounds(self):
        backoff = wsclient.Backoff(initial=1.0, maximum=1.0, jitter=0.2)
        delays = [backoff.next_delay() for _ in range(200)]
        self.assertTrue(all(0.8 <= delay <= 1.2 for delay in delays))
        self.assertGreater(len(set(delays)), 1, "jitter should spread reconnects out")


if __name__ == "__main__":
    unittest.main()
