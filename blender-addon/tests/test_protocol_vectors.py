"""Runs every shared protocol vector through the Python codec (the TypeScript side runs the same)."""

import json
import os
import unittest

from helpers import REPO_ROOT, import_addon_module

codec = import_addon_module("codec")

VECTORS_DIR = os.path.join(REPO_ROOT, "protocol", "vectors")


def load_vectors(name):
    with open(os.path.join(VECTORS_DIR, name), "r", encoding="utf-8") as handle:
        vectors = json.load(handle)
    for vector in vectors:
        raw = vector["raw"] + " " * vector.get("padSpaces", 0)
        yield vector, raw


class ProtocolVectorTest(unittest.TestCase):
    def check_vectors(self, file_name, decode):
        count = 0
        for vector, raw in load_vectors(file_name):
            count += 1
            with self.subTest(vector=vector["name"]):
                verdict = decode(raw)
                self.assertEqual(verdict.ok, vector["valid"], f"{vector['name']}: {verdict.code} {verdict.error}")
                if not vector["valid"]:
                    self.assertEqual(verdict.code, vector["code"], verdict.error)
                    self.assertTrue(verdict.error, "a refusal must say why")
                    if "id" in vector:
                        self.assertEqual(verdict.id, vector["id"], "the verdict names the request")
        self.assertGreater(count, 10, f"{file_name} holds too few vectors to mean anything")

    def test_client_vectors(self):
        self.check_vectors("client.json", codec.decode_client_message)

    def test_server_vectors(self):
        self.check_vectors("server.json", codec.decode_server_message)

    def test_bytes_and_text_give_the_same_verdict(self):
        for vector, raw in load_vectors("server.json"):
            with self.subTest(vector=vector["name"]):
                self.assertEqual(
                    codec.decode_server_message(raw.encode("utf-8")).code, codec.decode_server_message(raw).code
                )


class CodecDetailTest(unittest.TestCase):
    def test_reply_error_carries_the_request_id(self):
        verdict = codec.decode_server_message('{"type":"reply","id":"r7","method":"jobs.list","result":{"jobs":1}}')
        self.assertFalse(verdict.ok)
        self.assertEqual(verdict.id, "r7")
        self.assertIn("result.jobs", verdict.error)

    def test_nan_is_not_json(self):
        verdict = codec.decode_server_message(
            '{"type":"event","event":"upload.progress","data":{"jobId":null,"filesDone":0,"filesTotal":0,'
            '"bytesDone":0,"bytesTotal":0,"bytesPerSecond":NaN,"etaSeconds":null}}'
        )
        self.assertEqual(verdict.code, "BAD_MESSAGE")

    def test_integral_float_counts_as_integer_like_in_json_schema(self):
        verdict = codec.decode_client_message(
            '{"type":"request","id":"1","method":"render.submit","params":{"blendFile":"/a.blend","chunkSize":5.0}}'
        )
        self.assertTrue(verdict.ok, verdict.error)

    def test_boolean_is_not_an_integer(self):
        verdict = codec.decode_client_message('{"type":"hello","protocol":true,"client":{"name":"a","version":"1"}}')
        self.assertEqual(verdict.code, "INVALID_MESSAGE")

    def test_encode_request_refuses_what_the_daemon_would_refuse(self):
        with self.assertRaises(ValueError) as caught:
            codec.encode_request("1", "render.submit", {"blendFile": "/a.blend", "backend": "gcp"})
        self.assertIn("INVALID_MESSAGE", str(caught.exception))
        text = codec.encode_request("1", "jobs.cancel", {"jobId": "j_1"})
        self.assertEqual(json.loads(text)["params"], {"jobId": "j_1"})

    def test_encode_hello_speaks_the_generated_protocol_version(self):
        hello = json.loads(codec.encode_hello("blender-addon", "0.1.0"))
        self.assertEqual(hello["protocol"], codec.protocol.PROTOCOL_VERSION)


if __name__ == "__main__":
    unittest.main()
