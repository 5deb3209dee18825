"""Decodes and encodes skyfarm wire messages, checked against protocol.SCHEMA_DEFINITIONS.

Mirrors daemon/src/protocol/codec.ts: the same inputs give the same verdict and error code, which
tests/test_protocol_vectors.py proves with the shared vectors. Only the subset of JSON Schema that
protocol/schema.json uses is implemented. No bpy here.
"""

import hashlib
import json
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

from . import protocol

_METHODS = frozenset(protocol.METHODS)
_EVENTS = frozenset(protocol.EVENTS)
_REF_PREFIX = "#/definitions/"


@dataclass(frozen=True)
class Decoded:
    ok: bool
    message: Optional[Dict[str, Any]] = None
    code: Optional[str] = None
    error: str = ""
    # The request id the message refers to, when it carries a usable one.
    id: Optional[str] = None


class SchemaViolation(Exception):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where} {problem}")
        self.where = where


def _reject_constant(name: str) -> Any:
    # JSON.parse rejects NaN and Infinity, so must we.
    raise ValueError(f"{name} is not valid JSON")


def _is_integer(value: Any) -> bool:
    # JSON has one number type: 3.0 is an integer to ajv, so it must be here too.
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _resolve(schema: Dict[str, Any]) -> Dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith(_REF_PREFIX):
            raise KeyError(f"unsupported $ref {ref}")
        schema = protocol.SCHEMA_DEFINITIONS[ref[len(_REF_PREFIX):]]
    return schema


def validate(schema: Dict[str, Any], value: Any, where: str) -> None:
    """Raises SchemaViolation naming the first field that does not match."""
    schema = _resolve(schema)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPE_CHECKS[name](value) for name in types):
            raise SchemaViolation(where, f"must be {' or '.join(types)}")
    if "const" in schema and not _json_equal(value, schema["const"]):
        raise SchemaViolation(where, f"must be {json.dumps(schema['const'])}")
    if "enum" in schema and not any(_json_equal(value, option) for option in schema["enum"]):
        allowed = ", ".join(json.dumps(option) for option in schema["enum"])
        raise SchemaViolation(where, f"must be one of {allowed}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaViolation(where, f"must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaViolation(where, f"must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaViolation(where, f"must match {schema['pattern']}")
    if _is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaViolation(where, f"must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaViolation(where, f"must be <= {schema['maximum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaViolation(where, f"must have at most {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                validate(schema["items"], item, f"{where}.{index}")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaViolation(where, f"must have required property '{name}'")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                validate(properties[name], item, f"{where}.{name}")
            elif extra is False:
                raise SchemaViolation(where, f"has unknown field \"{name}\"")
            elif isinstance(extra, dict):
                validate(extra, item, f"{where}.{name}")


def _json_equal(left: Any, right: Any) -> bool:
    # Python says True == 1; JSON does not.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return left == right


_PEEKED = ("type", "id", "method")
_SPACE = re.compile(r"[ \t\n\r]*")
# Inside a value being skipped, only these characters matter.
_STRUCTURE = re.compile(r'["{}\[\],]')


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string starting at text[start] (a quote), or -1."""
    at = start + 1
    while True:
        quote = text.find('"', at)
        if quote < 0:
            return -1
        slashes = 0
        while quote - 1 - slashes >= 0 and text[quote - 1 - slashes] == "\\":
            slashes += 1
        if slashes % 2 == 0:
            return quote + 1
        at = quote + 1


def _skip_value(text: str, at: int) -> int:
    """The index after the value starting at `at`, or -1 when the text ends or breaks inside it."""
    depth = 0
    while True:
        match = _STRUCTURE.search(text, at)
        if match is None:
            return len(text) if depth == 0 else -1
        at = match.start()
        char = text[at]
        if char == '"':
            at = _string_end(text, at)
            if at < 0:
                return -1
            if depth == 0:
                return at
        elif char in "{[":
            depth += 1
            at += 1
        elif char in "}]":
            if depth == 0:
                return at  # the enclosing object ends: a literal ended
            depth -= 1
            at += 1
            if depth == 0:
                return at
        else:  # ","
            if depth == 0:
                return at
            at += 1


def peek_envelope(text: str) -> Dict[str, str]:
    """The top-level type, id and method of a message that cannot be decoded in full (too large, or
    malformed after them), found without building it, so an error about it can name its request.
    Mirrors peekEnvelope in daemon/src/protocol/codec.ts. Fields after the first syntax error are not seen.
    """
    found: Dict[str, str] = {}
    at = _SPACE.match(text, 0).end()
    if not text.startswith("{", at):
        return found
    at += 1
    while True:
        at = _SPACE.match(text, at).end()
        if not text.startswith('"', at):
            return found
        key_end = _string_end(text, at)
        if key_end < 0:
            return found
        try:
            key = json.loads(text[at:key_end])
        except ValueError:
            key = None
        at = _SPACE.match(text, key_end).end()
        if not text.startswith(":", at):
            return found
        at = _SPACE.match(text, at + 1).end()
        if key in _PEEKED and text.startswith('"', at):
            end = _string_end(text, at)
            if end < 0:
                return found
            try:
                value = json.loads(text[at:end])
            except ValueError:
                value = None
            if isinstance(value, str) and key not in found:
                found[key] = value
            at = end
        else:
            at = _skip_value(text, at)
            if at < 0:
                return found
        if all(name in found for name in _PEEKED):
            return found
        at = _SPACE.match(text, at).end()
        if not text.startswith(",", at):
            return found
        at += 1


def _usable_id(request_id: Any) -> Optional[str]:
    if isinstance(request_id, str) and 0 < len(request_id) <= 64:
        return request_id
    return None


def _peek_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _parse_object(raw: Union[str, bytes]) -> Decoded:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > protocol.MAX_MESSAGE_BYTES:
        # Read the id anyway, so the error ends that request instead of leaving it waiting.
        envelope = peek_envelope(raw if isinstance(raw, str) else _peek_text(data))
        what = f"{envelope['method'][:64]} {envelope.get('type', 'message')}" if "method" in envelope else "message"
        return Decoded(
            ok=False,
            code="MESSAGE_TOO_LARGE",
            error=f"{what} of {len(data)} bytes exceeds the limit of {protocol.MAX_MESSAGE_BYTES} bytes",
            id=_usable_id(envelope.get("id")),
        )
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        envelope = peek_envelope(raw if isinstance(raw, str) else _peek_text(data))
        return Decoded(ok=False, code="BAD_MESSAGE", error=f"not valid JSON: {error}", id=_usable_id(envelope.get("id")))
    if not isinstance(value, dict):
        return Decoded(ok=False, code="BAD_MESSAGE", error="a message must be a JSON object")
    return Decoded(ok=True, message=value)


def _request_id_of(value: Dict[str, Any]) -> Optional[str]:
    return _usable_id(value.get("id"))


def _check(key: str, value: Any, where: str, request_id: Optional[str]) -> Optional[Decoded]:
    """None when value matches SCHEMA_DEFINITIONS[key], else the INVALID_MESSAGE verdict."""
    try:
        validate(protocol.SCHEMA_DEFINITIONS[key], value, where)
    except SchemaViolation as violation:
        return Decoded(ok=False, code="INVALID_MESSAGE", error=str(violation), id=request_id)
    return None


def _unknown_type(kind: str, name: str, request_id: Optional[str]) -> Decoded:
    return Decoded(ok=False, code="UNKNOWN_TYPE", error=f"unknown {kind} \"{name[:64]}\"", id=request_id)


def decode_server_message(raw: Union[str, bytes]) -> Decoded:
    """Decodes a message the daemon sent to a client."""
    parsed = _parse_object(raw)
    if not parsed.ok:
        return parsed
    value = parsed.message
    message_type = value.get("type")
    request_id = _request_id_of(value)
    if message_type == "welcome":
        failure = _check("message.welcome", value, "welcome", None)
    elif message_type == "error":
        failure = _check("message.error", value, "error", request_id)
    elif message_type == "reply":
        failure = _check("message.reply", value, "reply", request_id)
        if failure is None:
            method = value["method"]
            if method not in _METHODS:
                return Decoded(ok=False, code="UNKNOWN_METHOD", error=f"unknown method \"{method}\"", id=request_id)
            failure = _check(f"result.{method}", value["result"], "result", request_id)
    elif message_type == "event":
        failure = _check("message.event", value, "event", None)
        if failure is None:
            event = value["event"]
            if event not in _EVENTS:
                return _unknown_type("event", event, None)
            failure = _check(f"event.{event}", value["data"], "data", None)
    elif isinstance(message_type, str):
        return _unknown_type("message type", message_type, request_id)
    else:
        return Decoded(ok=False, code="INVALID_MESSAGE", error="message.type must be a string", id=request_id)
    if failure is not None:
        return failure
    return Decoded(ok=True, message=value, id=request_id)


def decode_client_message(raw: Union[str, bytes]) -> Decoded:
    """Decodes a message a client sends to the daemon (used to check what the add-on sends)."""
    parsed = _parse_object(raw)
    if not parsed.ok:
        return parsed
    value = parsed.message
    message_type = value.get("type")
    request_id = _request_id_of(value)
    if not isinstance(message_type, str):
        return Decoded(ok=False, code="INVALID_MESSAGE", error="message.type must be a string", id=request_id)
    if message_type == "hello":
        failure = _check("message.hello", value, "hello", None)
        return failure or Decoded(ok=True, message=value)
    if message_type != "request":
        return _unknown_type("message type", message_type, request_id)
    envelope = dict(value)
    envelope.setdefault("params", {})
    failure = _check("message.request", envelope, "request", request_id)
    if failure is not None:
        return failure
    method = envelope["method"]
    if method not in _METHODS:
        return Decoded(ok=False, code="UNKNOWN_METHOD", error=f"unknown method \"{method}\"", id=request_id)
    failure = _check(f"params.{method}", envelope["params"], "params", request_id)
    return failure or Decoded(ok=True, message=envelope, id=request_id)


def encode_hello(client_name: str, client_version: str) -> str:
    return _encode_checked(
        {"type": "hello", "protocol": protocol.PROTOCOL_VERSION, "client": {"name": client_name, "version": client_version}}
    )


def encode_request(request_id: str, method: str, params: Dict[str, Any]) -> str:
    """Raises ValueError when the request would be refused, so bugs show up before sending."""
    return _encode_checked({"type": "request", "id": request_id, "method": method, "params": params})


def _encode_checked(message: Dict[str, Any]) -> str:
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    verdict = decode_client_message(text)
    if not verdict.ok:
        raise ValueError(f"{verdict.code}: {verdict.error}")
    return text


# Requests whose dependency list may travel by reference (DependencyListRef in protocol/schema.json).
LISTED_METHODS = ("render.submit", "project.upload")


def write_dependency_list(state_dir: str, dependencies: list) -> Dict[str, Any]:
    """Writes a dependency list too large for one message where the daemon reads it (JSON Lines in
    <state dir>/lists/, mode 0600) and returns the DependencyListRef to send instead.
    Mirrors writeDependencyList in daemon/src/protocol/dependency-list.ts.
    """
    folder = os.path.join(state_dir, "lists")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{int(time.time() * 1000)}-{secrets.token_hex(8)}.jsonl")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    digest = hashlib.sha256()
    handle = os.fdopen(os.open(path, flags, 0o600), "wb")
    try:
        with handle:
            for start in range(0, len(dependencies), 5000):
                lines = [
                    json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
                    for item in dependencies[start:start + 5000]
                ]
                data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
                digest.update(data)
                handle.write(data)
    except BaseException:
        discard_dependency_list(path)
        raise
    return {"path": path, "sha256": digest.hexdigest(), "count": len(dependencies)}


def discard_dependency_list(path: str) -> None:
    """Removes a list the daemon did not take (it deletes the ones it reads)."""
    try:
        os.remove(path)
    except OSError:
        pass
