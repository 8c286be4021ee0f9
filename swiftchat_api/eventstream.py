"""Bedrock's event stream read on the hot path: the events botocore would give, for less CPU.

botocore reads an event stream through urllib3's chunked reader (two generators and a content
decoder step per chunk) and turns each payload into a dict with its generic shape-driven parser
(a handler looked up by name for every value, two debug logs per event). ``events()`` keeps
botocore for everything else: the call, its signing and errors, and ``EventStreamBuffer`` for
the frames and their checksums. What it replaces is the loop that reads the body (the same
calls urllib3 makes, under urllib3's own error mapping) and, for the event types it was able
to compile, the payload parse.

The converters are compiled from botocore's service model (once per worker, at the first
stream), so a botocore upgrade brings its shapes with it: unknown fields are dropped, members
renamed, blobs and timestamps decoded by the stream's own parser. They mirror botocore only for
payloads in their expected shape: anything else (a value of the wrong type, a union without
exactly one known member, an event shape with header or payload members, exception and error
frames) goes to botocore's own parser for that one message, so the result is botocore's by
construction. tests/test_eventstream.py compares the two over every event shape in the model.
One departure, on purpose: a negative chunk size is refused at once (urllib3 would read to the
end of the connection, however long).
"""

import json

from botocore import parsers
from botocore.eventstream import EventStream, EventStreamBuffer
from urllib3.exceptions import InvalidChunkLength, ProtocolError
from urllib3.response import _MAX_CHUNK_LINE_LENGTH

_READ_SIZE = 65536
# Value types the event-stream JSON parser passes through untouched (it has no handler for them).
_SCALARS = frozenset({"string", "integer", "long", "float", "double", "boolean", "character"})
_MIRRORED = frozenset({"structure", "list", "map", "blob", "timestamp"})


_IN_PROGRESS = object()


class _Unusual(Exception):
    """A payload the compiled converter does not mirror: botocore's parser decides."""


class _NotCompiled(Exception):
    """A shape whose parse is left to botocore for every event of that type."""


def _is_plain(shape):
    """True for a value botocore's event-stream JSON parser returns as it came."""
    if shape.type_name == "structure" and shape.is_document_type:
        return True
    if shape.type_name in _SCALARS:
        if hasattr(parsers.EventStreamJSONParser, f"_handle_{shape.type_name}"):
            raise _NotCompiled(shape.name)  # a newer botocore converts it: do not guess how
        return True
    if shape.type_name not in _MIRRORED:
        raise _NotCompiled(shape.name)
    return False


def _compile(shape, memo):
    """A function (value, parser) -> what botocore's parser gives for value, or None for "as it came"."""
    if _is_plain(shape):
        return None
    done = memo.get(shape.name)
    if done is _IN_PROGRESS:  # a recursive shape: resolved through the memo once compiled
        return lambda value, parser: memo[shape.name](value, parser)
    if done is not None:
        return done
    memo[shape.name] = _IN_PROGRESS
    kind = shape.type_name
    if kind == "blob":
        convert = _blob
    elif kind == "timestamp":
        convert = _timestamp
    elif kind == "list":
        convert = _list(_compile(shape.member, memo))
    elif kind == "map":
        convert = _map(_compile(shape.key, memo), _compile(shape.value, memo))
    elif shape.is_tagged_union:
        members = {
            member.serialization.get("name", name): (name, _compile(member, memo))
            for name, member in shape.members.items()
        }
        convert = _union(members)
    else:
        members = tuple(
            (member.serialization.get("name", name), name, _compile(member, memo))
            for name, member in shape.members.items()
        )
        convert = _structure(members)
    memo[shape.name] = convert
    return convert


def _blob(value, parser):
    return parser._blob_parser(value)


def _timestamp(value, parser):
    return parser._timestamp_parser(value)


def _list(item):
    def convert(value, parser):
        if type(value) is not list:
            raise _Unusual
        if item is None:
            return value
        return [None if entry is None else item(entry, parser) for entry in value]

    return convert


def _map(key, item):
    def convert(value, parser):
        if type(value) is not dict:
            raise _Unusual
        return {k if key is None else key(k, parser): v if item is None else item(v, parser) for k, v in value.items()}

    return convert


def _structure(members):
    def convert(value, parser):
        if type(value) is not dict:
            raise _Unusual
        parsed = {}
        for wire_name, name, member in members:
            raw = value.get(wire_name)
            if raw is not None:
                parsed[name] = raw if member is None else member(raw, parser)
        return parsed

    return convert


def _union(members):
    def convert(value, parser):
        if type(value) is not dict:
            raise _Unusual
        set_members = [key for key, raw in value.items() if raw is not None and key != "__type"]
        if len(set_members) != 1 or set_members[0] not in members:
            raise _Unusual  # botocore refuses it, or names an unknown member its own way
        name, member = members[set_members[0]]
        raw = value[set_members[0]]
        return {name: raw if member is None else member(raw, parser)}

    return convert


def compile_events(stream_shape):
    """``{event type: converter or None}`` for an event-stream union shape; None: botocore parses it."""
    memo = {}
    compiled = {}
    for name, shape in stream_shape.members.items():
        serialization = [member.serialization for member in shape.members.values()]
        if not shape.serialization.get("event") or any(
            s.get("eventheader") or s.get("eventpayload") for s in serialization
        ):
            compiled[name] = None
            continue
        try:
            compiled[name] = _compile(shape, memo)
        except _NotCompiled:
            compiled[name] = None
    return compiled


# By the stream shape's name: every client of a service builds its own shape objects from the same
# model, so keying by object would grow with every client made (regions come and go).
_compiled = {}


def events(stream):
    """Iterate ``stream`` (a botocore ``EventStream``) as iterating it would, for less CPU."""
    raw = getattr(stream, "_raw_stream", None)
    if type(stream) is not EventStream or not getattr(raw, "chunked", False) or getattr(raw, "_fp", None) is None:
        return iter(stream)  # not the HTTP/1.1 chunked body the fast path reads: botocore reads it
    shape = stream._output_shape
    converters = _compiled.get(shape.name)
    if converters is None:
        converters = _compiled[shape.name] = compile_events(shape)
    return _decode(stream, converters)


def _decode(stream, converters):
    raw = stream._raw_stream
    parser = stream._parser
    body = raw._fp
    frames = EventStreamBuffer()
    # The chunked body read with the very calls urllib3's read_chunked(65536) makes, so every
    # failure is raised alike and reads the same, without its generator and decoder steps per chunk.
    raw._init_decoder()  # urllib3 refuses some Content-Encoding chains here, before reading
    # The last reads of the response's headers and retry history: each open stream would keep
    # them (two copies of the headers, one a whole email.message) for as long as it is open.
    raw.retries = raw.headers = None
    if raw._original_response is not None:
        raw._original_response.msg = raw._original_response.headers = None
    with raw._error_catcher():  # urllib3's: the same errors, and the connection released at the end
        if body.fp is None:
            return
        read = body._safe_read
        left = None  # what remains of the current chunk
        while True:
            if left is None:
                line = body.fp.readline(_MAX_CHUNK_LINE_LENGTH + 1)
                if len(line) > _MAX_CHUNK_LINE_LENGTH:
                    raw.close()
                    raise ProtocolError("Response chunk size line exceeded maximum allowed length")
                line = line.split(b";", 1)[0]
                try:
                    left = int(line, 16)
                except ValueError:
                    raw.close()
                    if line:
                        raise InvalidChunkLength(raw, line) from None
                    raise ProtocolError("Response ended prematurely") from None
                if left < 0:  # urllib3 would read to the end of the connection, however long
                    raw.close()
                    raise InvalidChunkLength(raw, line)
                if left == 0:
                    break
            if left > _READ_SIZE:
                data = read(_READ_SIZE)
                left -= _READ_SIZE
            else:
                data = read(left)
                read(2)  # the CRLF after a chunk
                left = None
            frames.add_data(data)
            for message in frames:
                event = None
                headers = message.headers
                if headers.get(":message-type") == "event":
                    event_type = headers.get(":event-type")
                    if event_type not in converters:
                        continue  # botocore yields nothing for an event type its model lacks
                    convert = converters[event_type]
                    if convert is not None:
                        payload = message.payload
                        try:
                            event = {event_type: convert(json.loads(payload.decode()) if payload else {}, parser)}
                        except Exception:  # not in the expected shape: botocore's parser decides below
                            event = None
                if event is None:
                    event = stream._parse_event(message)  # botocore's own: exceptions, errors, the unusual
                    if not event:
                        continue
                yield event
            # Nothing of this event stays referenced while the next read waits (thousands of streams do).
            data = message = headers = payload = event = None
        while raw._fp is not None:  # the trailer, as urllib3 reads it
            line = raw._fp.fp.readline(_MAX_CHUNK_LINE_LENGTH + 1)
            if len(line) > _MAX_CHUNK_LINE_LENGTH:
                raise ProtocolError("Response chunk trailer line exceeded maximum allowed length")
            if not line or line == b"\r\n":
                break
        if raw._original_response:
            raw._original_response.close()
