"""Amazon event-stream framing (application/vnd.amazon.eventstream), the emulator's side."""

import json
import struct
from zlib import crc32

_STRING = 7


def _headers(pairs):
    out = bytearray()
    for name, value in pairs:
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def frame(headers, payload):
    """Encode one message: prelude, prelude CRC, headers, payload, message CRC."""
    raw_headers = _headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", crc32(message))


def event(event_type, body):
    """Encode an event frame as Bedrock sends it, padding field included."""
    payload = dict(body, p="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: 8 + len(body)])
    return frame(
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception(exception_type, message):
    """Encode an in-stream exception frame (botocore raises it as EventStreamError)."""
    return frame(
        [
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps({"message": message}).encode(),
    )
