"""events() against botocore: the same bytes in, the same events, errors and dialect bytes out.

Both sides read identical HTTP/1.1 chunked responses through the real stack (http.client, urllib3,
botocore's EventStream and the parser a boto3 bedrock-runtime call uses); the only stand-in is the
socket. One side iterates the EventStream as botocore does, the other goes through ``events()``,
and every dialect then writes both event lists. Payloads come from botocore's own service model:
every event shape of ConverseStreamOutput, well-formed and hostile.
"""

import base64
import binascii
import http.client
import io
import json

import boto3
import pytest
import urllib3
from botocore.eventstream import ChecksumMismatch, EventStream
from botocore.exceptions import EventStreamError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from swiftchat_api import eventstream, wire
from swiftchat_api.emulator import frames
from swiftchat_api.eventstream import compile_events, events
from swiftchat_api.oai.stream import ChunkTranslator, OpenAIStream

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
# conftest points AWS_ENDPOINT_URL at a closed port: this client only lends its model and parser.
CLIENT = boto3.client("bedrock-runtime", region_name="us-west-2")
SERVICE = CLIENT.meta.service_model
STREAM_SHAPE = SERVICE.operation_model("ConverseStream").output_shape.members["stream"]
EVENT_TYPES = [name for name, shape in STREAM_SHAPE.members.items() if shape.serialization.get("event")]
EXCEPTION_TYPES = [name for name, shape in STREAM_SHAPE.members.items() if shape.metadata.get("exception")]
# Bedrock pads every event with a field of random length that no model names.
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
    b"Transfer-Encoding: chunked\r\nx-amzn-RequestId: 0d6f5c5e-test\r\n\r\n"
)
END = b"0\r\n\r\n"


# --- the two sides, from the same bytes ----------------------------------------------------------


def event_parser():
    """The event-stream parser a boto3 call hands its EventStream, made the way its endpoint makes it."""
    factory = CLIENT._endpoint._response_parser_factory
    return factory.create_parser(SERVICE.resolved_protocol)._event_stream_parser


class _Wire(io.RawIOBase):
    """The upstream connection's bytes; once they run out, ``error`` (None: the peer closed)."""

    def __init__(self, data, error=None):
        self._data = data
        self._error = error

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self._data:
            if self._error is not None:
                raise self._error
            return 0
        size = min(len(buffer), len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


class _Socket:
    """What http.client needs of a socket: a file of the bytes the peer sent."""

    def __init__(self, data, error=None):
        self._data = data
        self._error = error

    def makefile(self, mode):
        if self._error is None:
            return io.BytesIO(self._data)
        return io.BufferedReader(_Wire(self._data, self._error))


def chunked(data, cuts=(), end=END):
    """An HTTP/1.1 chunked body holding ``data``, cut into HTTP chunks at the offsets ``cuts``."""
    edges = [0, *sorted({cut for cut in cuts if 0 < cut < len(data)}), len(data)]
    pieces = [data[start:stop] for start, stop in zip(edges, edges[1:], strict=False) if stop > start]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + end


def event_stream(body, error=None, head=HEAD):
    """A botocore EventStream over an HTTP response carrying ``body``, built as boto3 builds one."""
    original = http.client.HTTPResponse(_Socket(head + body, error), method="POST")
    original.begin()
    raw = urllib3.HTTPResponse(
        body=original,
        headers=urllib3.HTTPHeaderDict(original.msg.items()),
        status=original.status,
        version=original.version,
        reason=original.reason,
        preload_content=False,
        decode_content=False,
        original_response=original,
        request_method="POST",
    )
    return EventStream(raw, STREAM_SHAPE, event_parser(), "ConverseStream")


def drain(iterator):
    """(events, the exception that ended them or None)."""
    got = []
    try:
        for event in iterator:
            got.append(event)
    except Exception as error:  # what the relay sees and renders
        return got, error
    return got, None


def told(error):
    """What a caller can learn of an error: its type, its text and, for a ClientError, its response."""
    if error is None:
        return None
    return type(error), str(error), getattr(error, "response", None)


def outcome(call, *args):
    try:
        return call(*args)
    except Exception as error:
        return ("raised", type(error), str(error))


def dialects():
    """(name, a fresh dialect) for every wire format; stateful ones are new per call."""
    made = [(name, dialect) for name, dialect in wire.DIALECTS.items()]
    translator = ChunkTranslator(MODEL, "chatcmpl-difftest", 1700000000, include_usage=True)
    return [*made, ("openai", OpenAIStream(translator))]


def written(got, error):
    """{dialect: the bytes (or exception) it writes for each event, the error and the end}."""
    out = {}
    for name, dialect in dialects():
        out[name] = [outcome(dialect.event, event) for event in got]
        out[name].append(outcome(dialect.error, error) if error is not None else outcome(dialect.end))
    return out


def assert_same(body, error=None, head=HEAD):
    """Feed ``body`` to botocore and to events(); everything a caller could see must match."""
    expected, expected_error = drain(iter(event_stream(body, error, head)))
    fast = events(event_stream(body, error, head))
    # The fast path, not botocore's iterator handed back: otherwise this test proves nothing.
    assert getattr(fast, "gi_code", None) is eventstream._decode.__code__
    got, got_error = drain(fast)
    assert repr(got) == repr(expected)  # order of keys and types of values too: dialects serialise them
    assert got == expected
    assert told(got_error) == told(expected_error)
    assert written(got, got_error) == written(expected, expected_error)
    return expected, expected_error


# --- frames ------------------------------------------------------------------------------------


def encode(payload):
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def event_frame(event_type, payload, message_type="event"):
    headers = [(":event-type", event_type), (":content-type", "application/json")]
    if message_type is not None:
        headers.append((":message-type", message_type))
    return frames.frame(headers, encode(payload))


def exception_frame(exception_type, payload):
    headers = [(":exception-type", exception_type), (":content-type", "application/json")]
    return frames.frame([*headers, (":message-type", "exception")], encode(payload))


def error_frame(code, message):
    return frames.frame([(":error-code", code), (":error-message", message), (":message-type", "error")], b"")


def padded(body, length=11):
    return {**body, "p": PADDING[:length]}


# --- payloads from the service model -----------------------------------------------------------


def full_value(shape, turn):
    """A value for ``shape`` with every member set; union member ``turn`` (mod their count)."""
    kind = shape.type_name
    if kind == "structure" and shape.is_document_type:
        return {"k": [1, 2.5, None, True, "x"], "n": {"deep": {}}}
    if kind == "structure":
        members = shape.members
        wire_name = {name: member.serialization.get("name", name) for name, member in members.items()}
        if shape.is_tagged_union:
            name = list(members)[turn % len(members)]
            return {wire_name[name]: full_value(members[name], turn)}
        return {
            **{wire_name[name]: full_value(member, turn) for name, member in members.items()},
            "unmodelled": {"nested": [1]},
        }
    if kind == "list":
        return [full_value(shape.member, turn), full_value(shape.member, turn + 1)]
    if kind == "map":
        return {f"key{turn}": full_value(shape.value, turn)}
    if kind == "blob":
        return base64.b64encode(b"\x00\xffblob" + bytes([turn % 256])).decode()
    if kind == "timestamp":
        return 1700000000 + turn
    if kind == "boolean":
        return turn % 2 == 0
    if kind in ("integer", "long"):
        return 7 + turn
    if kind in ("float", "double"):
        return 0.25 + turn
    return f"text{turn}"


def union_sizes(shape, seen=None):
    """The largest member count of any union reachable from ``shape``."""
    seen = set() if seen is None else seen
    if shape.name in seen:
        return 1
    seen.add(shape.name)
    own = len(shape.members) if shape.type_name == "structure" and shape.is_tagged_union else 1
    if shape.type_name == "structure":
        inner = [union_sizes(member, seen) for member in shape.members.values()]
    elif shape.type_name == "list":
        inner = [union_sizes(shape.member, seen)]
    elif shape.type_name == "map":
        inner = [union_sizes(shape.value, seen)]
    else:
        inner = []
    return max([own, *inner])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
UNKNOWN_FIELDS = st.dictionaries(st.sampled_from(["p", "__type", "extra", "x-amz", "tööl", ""]), JSON, max_size=2)
# A value of some other JSON type than the model's, as a buggy or newer service might send.
WRONG = (
    st.text(max_size=5)
    | st.integers(-5, 5)
    | st.booleans()
    | st.lists(JSON, max_size=2)
    | st.dictionaries(st.text(max_size=4), JSON, max_size=2)
)
JUNK_BASE64 = st.sampled_from(["abc", "Zm9v=", "!!!!", "é", "Zm9vYmFy\n", "", "====", "YQ"]) | st.text(max_size=6)
MAX_DEPTH = 7  # the guardrail trace nests deeper than any payload needs to go
_strategies = {}


def value(shape, hostile, depth=0):
    """A Hypothesis strategy for a JSON value of ``shape``; ``hostile`` adds what the model forbids."""
    key = (shape.name, hostile, depth)
    if key not in _strategies:
        right = _right(shape, hostile, depth)
        _strategies[key] = _short_repr(_mostly(right) if hostile else right)
    return _strategies[key]


def _mostly(right):
    # Mostly right: one wrong value sends the whole event to botocore's parser.
    return st.integers(0, 11).flatmap(lambda roll: WRONG if roll == 0 else right)


def _short_repr(strategy):
    # Hypothesis warns (an error in this suite) when a strategy's repr runs past 30 kB, as the
    # guardrail trace's nested shapes would; a deferred one is shown by its lambda's source alone.
    return st.deferred(lambda: strategy)


def _right(shape, hostile, depth):
    kind = shape.type_name
    if kind == "structure" and shape.is_document_type:
        return JSON
    if kind == "structure" and shape.is_tagged_union:
        return _union(shape, hostile, depth)
    if kind == "structure":
        if depth >= MAX_DEPTH:
            return UNKNOWN_FIELDS
        optional = {
            member.serialization.get("name", name): value(member, hostile, depth + 1) | st.none()
            for name, member in shape.members.items()
        }
        known = st.fixed_dictionaries({}, optional=optional)
        return st.tuples(UNKNOWN_FIELDS, known).map(lambda pair: {**pair[0], **pair[1]})
    if kind == "list":
        if depth >= MAX_DEPTH:
            return st.just([])
        return st.lists(value(shape.member, hostile, depth + 1) | st.none(), max_size=2)
    if kind == "map":
        if depth >= MAX_DEPTH:
            return st.just({})
        # botocore keeps None in a list but fails on one in a map of lists: a map's None is hostile.
        item = value(shape.value, hostile, depth + 1)
        return st.dictionaries(st.text(max_size=4), item | st.none() if hostile else item, max_size=2)
    if kind == "blob":
        valid = st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode())
        return valid | JUNK_BASE64 if hostile else valid
    if kind == "timestamp":
        return st.integers(0, 2**33) | st.floats(0, 2**33) | st.sampled_from(["2024-05-01T12:00:00Z"])
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "long"):
        return st.integers(-(2**63), 2**63)
    if kind in ("float", "double"):
        return st.floats(allow_nan=False)
    return st.text(max_size=8)


def _union(shape, hostile, depth):
    members = {member.serialization.get("name", name): member for name, member in shape.members.items()}
    if depth >= MAX_DEPTH + 2:
        return st.just({})
    one = st.sampled_from(sorted(members)).flatmap(
        lambda name: value(members[name], hostile, depth + 1).map(lambda got, name=name: {name: got})
    )
    well = one | one.map(lambda got: {"__type": "com.amazon#Member", **got})
    if not hostile:
        return well
    odd = st.one_of(
        st.just({}),
        st.just({"__type": "com.amazon#Nothing"}),
        st.tuples(one, one).map(lambda pair: {**pair[0], **pair[1]}),  # two members (or one, if they collide)
        st.tuples(st.sampled_from(["futureMember", "p"]), JSON).map(lambda pair: {pair[0]: pair[1]}),
        one.map(lambda got: {"futureMember": None, **got}),
        one.map(lambda got: {**got, "futureMember": 1}),
    )
    return st.integers(0, 3).flatmap(lambda roll: odd if roll == 0 else well)


def event_frames(hostile):
    """A frame of a modelled event type, its payload drawn from the model, padded as Bedrock pads."""
    return (
        st.sampled_from(EVENT_TYPES)
        .flatmap(lambda name: st.tuples(st.just(name), value(STREAM_SHAPE.members[name], hostile), st.integers(0, 30)))
        .map(
            lambda drawn: event_frame(drawn[0], padded(drawn[1], drawn[2]) if isinstance(drawn[1], dict) else drawn[1])
        )
    )


RAW_PAYLOADS = st.sampled_from([b"", b"null", b"[]", b"[1]", b'"text"', b"7", b"{", b"\xff\xfe{}", b"not json", b"{}"])
ODD_FRAMES = st.one_of(
    st.tuples(st.sampled_from(EVENT_TYPES + EXCEPTION_TYPES + ["futureEvent"]), RAW_PAYLOADS).map(
        lambda drawn: event_frame(*drawn)
    ),
    st.tuples(st.sampled_from(EVENT_TYPES), JSON, st.sampled_from([None, "ping", "EVENT"])).map(
        lambda drawn: event_frame(drawn[0], drawn[1], message_type=drawn[2])
    ),
    st.tuples(st.sampled_from(EXCEPTION_TYPES + ["unmodelledException", ""]), JSON | RAW_PAYLOADS).map(
        lambda drawn: exception_frame(drawn[0], {"message": drawn[1]} if not isinstance(drawn[1], bytes) else drawn[1])
    ),
    st.tuples(st.text(max_size=8), st.text(max_size=12)).map(lambda drawn: error_frame(*drawn)),
)
# Mostly modelled events, so a stream often gets past its first frame before an exception ends it.
HOSTILE_FRAMES = st.integers(0, 3).flatmap(lambda roll: ODD_FRAMES if roll == 0 else event_frames(hostile=True))


@st.composite
def cut_streams(draw, frame_strategy):
    """(the frames' bytes, where the HTTP chunks are cut): whole frames, several a chunk, or pieces of one."""
    data = b"".join(draw(st.lists(frame_strategy, min_size=1, max_size=5)))
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=6)) if len(data) > 1 else []
    return data, cuts


FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the model is all compiled ------------------------------------------------------------------


def test_every_modelled_event_type_is_compiled():
    """Each event member of ConverseStreamOutput gets a converter: none silently left to botocore."""
    assert {"messageStart", "contentBlockDelta", "metadata"} <= set(EVENT_TYPES)
    compiled = compile_events(STREAM_SHAPE)
    assert set(compiled) == set(STREAM_SHAPE.members)
    assert [name for name in EVENT_TYPES if compiled[name] is None] == []
    assert [name for name in EXCEPTION_TYPES if compiled[name] is not None] == []


# --- every event shape, every member ------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_shape_with_every_member(event_type):
    """Every member of every event shape, each union member in turn, unknown fields all the way down."""
    shape = STREAM_SHAPE.members[event_type]
    data = b"".join(
        event_frame(event_type, padded(full_value(shape, turn), turn)) for turn in range(union_sizes(shape))
    )
    got, error = assert_same(chunked(data))
    assert error is None
    assert len(got) == union_sizes(shape) and all(event[event_type] for event in got)


def test_every_event_shape_cut_at_every_byte():
    """One frame over many HTTP chunks, and every frame boundary inside a chunk."""
    data = b"".join(event_frame(name, padded(full_value(STREAM_SHAPE.members[name], 1))) for name in EVENT_TYPES)
    got, _ = assert_same(chunked(data, cuts=range(1, len(data))))
    assert [next(iter(event)) for event in got] == EVENT_TYPES
    assert_same(chunked(data))  # every frame in one chunk
    assert_same(chunked(data, cuts=range(5, len(data), 97)))


# --- named cases ----------------------------------------------------------------------------------

DELTA = "contentBlockDelta"


def delta(body, index=0):
    return event_frame(DELTA, padded({"contentBlockIndex": index, "delta": body}))


def metadata_trace(guardrail):
    return event_frame(
        "metadata", padded({"usage": {"inputTokens": 1}, "metrics": {}, "trace": {"guardrail": guardrail}})
    )


def flipped_last_byte(frame):
    return frame[:-1] + bytes([frame[-1] ^ 1])


CASES = {
    "padding field p at event level": (frames.event("messageStart", {"role": "assistant"}), None),
    "unknown fields nested": (
        event_frame(
            "contentBlockStart",
            padded({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f", "new": {"a": 1}}}}),
        ),
        None,
    ),
    "redactedContent valid base64": (
        delta({"reasoningContent": {"redactedContent": base64.b64encode(b"\x00\x01secret\xff").decode()}}),
        None,
    ),
    "redactedContent bad padding": (delta({"reasoningContent": {"redactedContent": "abc"}}), binascii.Error),
    "redactedContent not ASCII": (delta({"reasoningContent": {"redactedContent": "é"}}), ValueError),
    "redactedContent a number": (delta({"reasoningContent": {"redactedContent": 5}}), TypeError),
    "image bytes valid base64": (delta({"image": {"source": {"bytes": base64.b64encode(b"\x89PNG").decode()}}}), None),
    "image bytes invalid base64": (delta({"image": {"source": {"bytes": "Zm9"}}}), binascii.Error),
    "unmodelled exception type": (exception_frame("brandNewException", {"message": "m"}), EventStreamError),
    "exception with a non-JSON body": (exception_frame(EXCEPTION_TYPES[0], b"not json"), EventStreamError),
    "error frame": (error_frame("InternalFailure", "the model fell over"), EventStreamError),
    "unknown event type": (event_frame("futureEvent", padded({"a": 1})), None),
    "exception member sent as an event": (event_frame(EXCEPTION_TYPES[0], {"message": "m"}), None),
    "missing message-type": (event_frame(DELTA, {"contentBlockIndex": 0, "delta": {"text": "x"}}, None), None),
    "other message-type": (event_frame(DELTA, {"contentBlockIndex": 0, "delta": {"text": "x"}}, "ping"), None),
    "empty payload": (event_frame("contentBlockStop", b""), None),
    "non-JSON payload": (event_frame("messageStop", b"stop!"), None),
    "invalid UTF-8 payload": (event_frame("messageStop", b'{"stopReason": "\xff"}'), UnicodeDecodeError),
    "JSON null payload": (event_frame("messageStop", b"null"), TypeError),
    "JSON list payload": (event_frame("messageStop", b"[1, 2]"), AttributeError),
    "JSON string payload": (event_frame("messageStop", b'"end_turn"'), AttributeError),
    "string where a structure is expected": (delta("text"), AttributeError),
    "list where a structure is expected": (delta([{"text": "x"}]), TypeError),
    "string where a list is expected": (delta({"toolResult": "abc"}), AttributeError),
    "dict where a list is expected": (delta({"toolResult": {"text": "x"}}), AttributeError),
    # botocore makes a list of a string's characters, or of a dict's keys.
    "string where a list of strings is expected": (metadata_trace({"modelOutput": "abc"}), None),
    "dict where a list of strings is expected": (metadata_trace({"modelOutput": {"a": 1, "b": 2}}), None),
    "metadata usage a list": (event_frame("metadata", {"usage": [1], "metrics": {"latencyMs": 1}}), AttributeError),
    "scalar of the wrong type": (delta({"text": {"not": "text"}}, index="seven"), None),
    "union with no member": (delta({}), Exception),
    "union with two members": (delta({"text": "a", "toolUse": {"input": "{}"}}), Exception),
    "union with an unknown member": (delta({"futureDelta": {"x": 1}}), None),
    "union with __type": (delta({"__type": "com.amazon#ContentBlockDelta", "text": "a"}), None),
    "union with only __type": (delta({"__type": "com.amazon#ContentBlockDelta"}), Exception),
    "union member None beside one": (delta({"toolUse": None, "text": "a"}), None),
    "nested union unknown member": (delta({"toolResult": [{"futureBlock": 1}, {"text": "t"}]}), None),
    "None values": (event_frame("contentBlockStart", {"contentBlockIndex": None, "start": None, "p": None}), None),
    "None entries in a list": (delta({"toolResult": [None, {"json": {"a": None}}]}), None),
    "None value in a map": (
        event_frame(
            "metadata",
            {"usage": {}, "metrics": {}, "trace": {"guardrail": {"inputAssessment": {"g1": None, "g2": {}}}}},
        ),
        None,
    ),
    "checksum mismatch": (flipped_last_byte(frames.event("messageStart", {"role": "assistant"})), ChecksumMismatch),
}
CASES.update(
    {
        f"exception frame {name}": (exception_frame(name, {"message": f"{name} happened"}), EventStreamError)
        for name in EXCEPTION_TYPES
    }
)


@pytest.mark.parametrize("name", list(CASES))
def test_named_case(name):
    """Each case after a normal event and before another, split mid-frame, then all in one chunk."""
    frame, raised = CASES[name]
    before = frames.event("messageStart", {"role": "assistant"})
    after = delta({"text": "after"})
    data = before + frame + after
    got, error = assert_same(chunked(data, cuts=[len(before) + len(frame) // 2, len(before) + 3]))
    assert_same(chunked(data))
    # The case is what it says on botocore's side, so the comparison above is not between two no-ops.
    assert got[0] == {"messageStart": {"role": "assistant"}}
    if raised is None:
        assert error is None and got[-1] == {DELTA: {"delta": {"text": "after"}, "contentBlockIndex": 0}}
    else:
        assert isinstance(error, raised)


# --- generated from the model --------------------------------------------------------------------


@settings(FAST, max_examples=400)
@given(cut_streams(event_frames(hostile=False)))
def test_well_formed_events_from_the_model(stream):
    """Payloads in the model's shape (unknown fields, None values, base64 blobs) cut anywhere into chunks."""
    data, cuts = stream
    got, error = assert_same(chunked(data, cuts))
    assert error is None and got


@settings(FAST, max_examples=500)
@given(cut_streams(HOSTILE_FRAMES))
def test_hostile_frames_from_the_model(stream):
    """Wrong types, odd unions, bad base64, raw payloads, exception and error frames, cut anywhere."""
    data, cuts = stream
    assert_same(chunked(data, cuts))


# --- the transport -----------------------------------------------------------------------------

STREAM = frames.event("messageStart", {"role": "assistant"}) + delta({"text": "hello"})


@pytest.mark.parametrize(
    "error", [ConnectionResetError(104, "Connection reset by peer"), TimeoutError("timed out")], ids=repr
)
def test_connection_failure_mid_stream(error):
    """A reset or a read timeout: urllib3's exception, as botocore's reading raises it."""
    got, raised = assert_same(chunked(STREAM, cuts=[9], end=b""), error=error)
    assert len(got) == 2 and isinstance(raised, (ProtocolError, ReadTimeoutError))


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(b"", id="peer closes between chunks"),
        pytest.param(b"5\r\nab", id="peer closes mid-chunk"),
        pytest.param(b"zz\r\n", id="unreadable chunk size"),
    ],
)
def test_broken_chunked_body(end):
    """A body that ends without its last chunk: the same error, whose text the dialects write in-band."""
    got, raised = assert_same(chunked(STREAM, cuts=[9], end=end))
    assert len(got) == 2 and isinstance(raised, ProtocolError)


def test_a_content_encoding_chain_urllib3_refuses():
    """urllib3 refuses more than five content codings before reading a byte; so does events()."""
    head = HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: " + b",".join([b"gzip"] * 6) + b"\r\n\r\n")
    got, raised = assert_same(chunked(STREAM), head=head)
    assert got == [] and "content encodings" in str(raised)


def test_a_negative_chunk_size_is_refused_at_once():
    """urllib3 would read a chunk sized -1 to the end of the connection; events() refuses it (unlike botocore)."""
    stream = event_stream(chunked(STREAM, cuts=[9], end=b"-1\r\n" + b"x" * 100_000))
    got, raised = drain(events(stream))
    # urllib3's own reading takes the 100 kB as the chunk and fails later, on the missing CRLF.
    assert len(got) == 2 and isinstance(raised, ProtocolError) and "InvalidChunkLength" in str(raised)


# --- end to end ------------------------------------------------------------------------------------


WEATHER = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}


@pytest.mark.parametrize(
    ("directive", "more", "shows"),
    [
        ("[[emulator words=30]]", {}, "'text': ' lazy'"),
        ("[[emulator words=5 reasoning=6 redacted=1 chunk=2]]", {}, "'redactedContent': b'\\x00\\x01redacted"),
        ("[[emulator words=3 tools=get_weather arg_chunk=3]]", {"toolConfig": {"tools": [WEATHER]}}, "'toolUseId'"),
        ("[[emulator words=20 fail_after=4 fail_with=throttlingException]]", {}, "'text': ' brown'"),
    ],
    ids=["text", "reasoning", "tool use", "exception"],
)
def test_real_boto3_stream_from_the_emulator(bedrock, directive, more, shows):
    """boto3's own call against the emulator: events() gives what iterating the stream gives."""
    messages = [{"role": "user", "content": [{"text": directive}]}]
    reference = bedrock.converse_stream(modelId=MODEL, messages=messages, **more)["stream"]
    stream = bedrock.converse_stream(modelId=MODEL, messages=messages, **more)["stream"]
    # The harness above builds its streams the way this real call did.
    assert type(stream._parser) is type(event_parser())
    assert stream._parser._timestamp_parser is event_parser()._timestamp_parser
    assert stream._parser._blob_parser.__func__ is event_parser()._blob_parser.__func__
    real_shape = stream._output_shape
    assert (real_shape.name, list(real_shape.members)) == (STREAM_SHAPE.name, list(STREAM_SHAPE.members))
    assert type(stream._raw_stream) is urllib3.HTTPResponse and stream._raw_stream.chunked
    fast = events(stream)
    assert getattr(fast, "gi_code", None) is eventstream._decode.__code__
    expected, expected_error = drain(iter(reference))
    got, got_error = drain(fast)
    reference.close()  # as the relay does: botocore leaves a failed stream's connection open
    stream.close()
    assert repr(got) == repr(expected) and len(got) >= 4 and shows in repr(got)
    assert told(got_error) == told(expected_error)
    assert written(got, got_error) == written(expected, expected_error)
    if "fail_after" in directive:
        assert isinstance(got_error, EventStreamError)
    else:
        assert got_error is None and "metadata" in got[-1]
