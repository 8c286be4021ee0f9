"""The bytes each client generation parses: one dialect object per wire format.

A dialect owns all of its framing — one boto3 ``converse_stream`` event → bytes (possibly
empty), the keep-alive, the in-band error and the end of the stream — so the relay writes
no bytes of its own. The relay writes each event's bytes alone: it never joins or splits
events (Android's reader takes at most 8 KiB and never crosses an HTTP chunk).
"""

import base64
import json
import re

from .exceptions import describe

KEEPALIVE = b"\n\n"
# Every streamed answer's: never cached, never buffered by a proxy (nginx reads X-Accel-Buffering).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def jsonable(value):
    """json.dumps fallback: Bedrock's binary fields (bytes) travel as base64 text."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(event):
    """The event as Python's json.dumps default renders it (binary as base64)."""
    return json.dumps(event, default=jsonable)


def _holds_brace(value):
    if isinstance(value, str):
        return "{" in value or "}" in value
    if isinstance(value, dict):
        return any(_holds_brace(k) or _holds_brace(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_brace(v) for v in value)
    return False


def _escape_braces(match):
    return match.group(0).replace("{", "\\u007b").replace("}", "\\u007d")


def v1(event):
    """First generation: delta text raw, then ``\\n`` + usage JSON; nothing for other events."""
    delta = event.get("contentBlockDelta")
    if delta is not None:
        text = delta.get("delta", {}).get("text")
        return text.encode() if isinstance(text, str) else b""
    metadata = event.get("metadata")
    if metadata is not None and "usage" in metadata:
        return b"\n" + json.dumps(metadata["usage"]).encode()
    return b""


def v2(event):
    """Second generation: events back to back; braces inside strings escaped so ``}{`` only
    ever stands between two events (the app splits on it)."""
    text = dumps(event)
    if _holds_brace(event):
        text = _JSON_STRING.sub(_escape_braces, text)
    return text.encode()


def v3(event):
    """Current generation: each event followed by a blank line."""
    return dumps(event).encode() + b"\n\n"


class Dialect:
    """A wire format: how events, keep-alives, an in-band error and the end of a stream look."""

    def __init__(self, encode, keepalive=None):
        self.event = encode
        self.keepalive = keepalive

    def error(self, error):
        """The in-band error after the last event; the relay writes it alone (the apps need that)."""
        return b"Error: " + describe(error).encode()

    def end(self):
        """Bytes that close a stream that ended normally."""
        return b""


# v1 and v2 have no byte the apps would ignore, so they have no keep-alive.
DIALECTS = {"v1": Dialect(v1), "v2": Dialect(v2), "v3": Dialect(v3, KEEPALIVE)}
