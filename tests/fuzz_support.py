"""What the fuzz suite sends and what it accepts back.

Every free-text string the suite sends carries MARKER, so an answer that holds it echoed what the
caller sent. Hostile JSON is spliced into otherwise valid bodies as raw text, since the point
is bytes that no JSON serialiser (and no schema) would produce.
"""

import http.client
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import TEST_KEY

# Only base64 letters, 12 of them: prefixed to base64 text it leaves the text valid base64.
MARKER = "ZqFuzzMark7Q"
CHAT_ROUTES = ("/api/converse", "/api/converse/v2", "/api/converse/v3")
API_ROUTES = (*CHAT_ROUTES, "/api/image", "/api/models", "/api/upgrade", "/api/token")
# The OpenAI-compatible relay routes.
PROXY_ROUTES = ("/api/gpt", "/api/openai")
# The issue asks for error answers that stay small whatever was sent: a few entries, no values.
SMALL = 4096
# Enough of an answer to judge it; a runaway error answer is measured by Content-Length instead.
READ_AT_MOST = 1 << 20
HOLE = "@@fuzz-hole@@"
# The emulator answers with this instead of quoting the prompt, so a chat answer holding the
# marker is the server's doing, not the model's.
QUIET = '[[emulator reply="fine"]] '
CHAT_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
# What the relay routes carry as Authorization: the provider's key, never this server's.
PROVIDER_KEY = "sk-fuzz-provider-key"


def template(route):
    """A valid body for ``route`` whose free-text strings all carry MARKER."""
    if route in CHAT_ROUTES:
        return {
            "messages": [{"role": "user", "content": [{"text": QUIET + MARKER}]}],
            "modelId": CHAT_MODEL,
            "region": "us-west-2",
            "enableThinking": False,
            "system": [{"text": "Be brief. " + MARKER}],
        }
    if route == "/api/image":
        return {
            "prompt": "a lighthouse " + MARKER,
            "refImages": None,
            "modelId": "amazon.nova-canvas-v1:0",
            "region": "us-west-2",
            "width": 320,
            "height": 320,
        }
    if route in ("/api/models", "/api/token"):
        return {"region": "us-west-2"}
    if route == "/api/upgrade":
        return {"os": "android" + MARKER, "version": "2.1.0" + MARKER}
    if route in PROXY_ROUTES:
        return {
            "model": "gpt-4o-mini" + MARKER,
            "messages": [{"role": "user", "content": "hello " + MARKER}],
            "stream": True,
        }
    raise KeyError(route)


def positions(value, path=()):
    """Every path (tuple of keys and indexes) to a value inside ``value``, containers included."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += positions(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += positions(item, (*path, index))
    return found


def string_positions(value):
    """The paths to every string inside ``value``."""
    return [path for path in positions(value) if isinstance(_at(value, path), str)]


def _at(value, path):
    for step in path:
        value = value[step]
    return value


def _replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


def splice(body, path, raw):
    """``body`` as JSON bytes with the value at ``path`` replaced by the raw JSON text (or bytes) ``raw``."""
    text = json.dumps(_replaced(body, path, HOLE), ensure_ascii=False).encode()
    raw = raw.encode() if isinstance(raw, str) else raw
    return text.replace(json.dumps(HOLE).encode(), raw, 1)


def splice_into_string(body, path, raw):
    """``body`` as JSON bytes with raw bytes (or JSON escape text) added to the end of the string at ``path``."""
    text = json.dumps(_replaced(body, path, _at(body, path) + HOLE), ensure_ascii=False).encode()
    raw = raw.encode() if isinstance(raw, str) else raw
    return text.replace(HOLE.encode(), raw, 1)


def nested(depth, kind):
    """JSON text nested ``depth`` deep: arrays, objects, or both in turn."""
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "0" + "}" * depth
    opening = "".join('{"a":[' if level % 2 else "[" for level in range(depth))
    closing = "".join("]}" if level % 2 else "]" for level in reversed(range(depth)))
    return opening + closing


def request(port, path, body=b"", method="POST", headers=None, key=TEST_KEY, timeout=20):
    """Send one request on its own connection; (status, lower-case headers, body, declared length)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent = {"Content-Type": "application/json"}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    sent.update(headers or {})
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read(READ_AT_MOST)
        received = {name.lower(): value for name, value in response.getheaders()}
        length = int(received.get("content-length", len(data)))
        return response.status, received, data, max(length, len(data))
    finally:
        connection.close()


def exchange(port, data, timeout=10):
    """Send raw bytes as a whole request on a fresh connection; (status, lower-case headers, body, length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read(READ_AT_MOST)
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body, max(int(headers.get("content-length", len(body))), len(body))


def problems(path, status, headers, body, length=None, echo_allowed=False):
    """What is wrong with one answer from an /api route, as readable lines (empty when nothing is)."""
    found = []
    length = len(body) if length is None else length
    if status >= 500:
        found.append(f"{status} server error: {body[:200]!r}")
    for name, value in headers.items():
        if MARKER in name or MARKER in value:
            found.append(f"header {name} echoes the input")
    if MARKER.encode() in body and not echo_allowed:
        found.append(f"{status} answer echoes the input: {_around(body, MARKER.encode())!r}")
    if 400 <= status < 500:
        found += _error_shape(path, status, headers, body, length)
    return found


def _around(body, needle):
    at = body.find(needle)
    return body[max(0, at - 100) : at + len(needle) + 40]


def _error_shape(path, status, headers, body, length):
    if length >= SMALL:
        return [f"{status} error answer of {length} bytes (at most {SMALL})"]
    content_type = headers.get("content-type", "")
    # README "Errors": Bedrock refused a chat call (or a proxied one failed) → text/plain "Error: ...".
    if content_type.startswith("text/plain") and path in (*CHAT_ROUTES, *PROXY_ROUTES):
        return [] if body.startswith(b"Error: ") else [f"{status} text/plain answer without 'Error: ': {body[:120]!r}"]
    if content_type != "application/json":
        return [f"{status} answered as {content_type or 'no content type'}: {body[:120]!r}"]
    try:
        answer = json.loads(body)
    except ValueError:
        return [f"{status} answer is not JSON: {body[:120]!r}"]
    if not isinstance(answer, dict) or set(answer) != {"detail"}:
        return [f"{status} answer is not {{'detail': ...}}: {body[:200]!r}"]
    detail = answer["detail"]
    if isinstance(detail, str) and detail:
        return []
    if isinstance(detail, list) and detail and all(_is_item(item) for item in detail):
        return []
    return [f"{status} detail is neither text nor a list of {{loc, msg, type}}: {body[:200]!r}"]


def _is_item(item):
    return (
        isinstance(item, dict)
        and set(item) == {"loc", "msg", "type"}
        and isinstance(item["loc"], list)
        and isinstance(item["msg"], str)
        and isinstance(item["type"], str)
    )


def metric_series(text):
    """The series (name and labels, without values) of a Prometheus exposition."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def worker_boots(log):
    """How many times gunicorn booted a worker, as its log tells (a replaced worker shows as one more)."""
    return len(re.findall(r"Booting worker", log))


class _ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ANSWER = b'data: {"choices": [{"index": 0, "delta": {"content": "fine"}}]}\n\ndata: [DONE]\n\n'

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(self.ANSWER)))
        self.end_headers()
        self.wfile.write(self.ANSWER)

    def log_message(self, *args):
        pass


class Provider:
    """A stand-in OpenAI-compatible provider on 127.0.0.1 for the relay routes: one short stream, never an echo."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProviderHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.authority = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.authority}/v1/chat/completions"

    def close(self):
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
