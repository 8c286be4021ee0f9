"""The dialect encoders, byte for byte."""

import json

import pytest

from swiftchat_api import wire

DELTA = {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}
USAGE = {"metadata": {"usage": {"inputTokens": 8, "outputTokens": 12, "totalTokens": 20}, "metrics": {"latencyMs": 5}}}


def test_v1_writes_delta_text_raw():
    assert wire.v1({"contentBlockDelta": {"delta": {"text": "héllo\n"}, "contentBlockIndex": 0}}) == "héllo\n".encode()


def test_v1_writes_usage_after_a_newline():
    assert wire.v1(USAGE) == b'\n{"inputTokens": 8, "outputTokens": 12, "totalTokens": 20}'


@pytest.mark.parametrize(
    "event",
    [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": ""}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "hmm"}}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
    ],
)
def test_v1_writes_nothing_for_other_events(event):
    assert wire.v1(event) == b""


def test_v2_is_json_dumps_default():
    assert wire.v2(DELTA) == b'{"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}'


def test_v3_adds_a_blank_line():
    assert wire.v3(DELTA) == b'{"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}\n\n'


def test_v3_escapes_like_json_dumps_default():
    event = {"contentBlockDelta": {"delta": {"text": 'é "q" \\ \n {}'}, "contentBlockIndex": 0}}
    assert wire.v3(event) == (json.dumps(event) + "\n\n").encode()
    assert b"{}" in wire.v3(event)


def test_v2_escapes_braces_only_inside_strings():
    event = {"contentBlockDelta": {"delta": {"text": 'f() {return "}{";}'}, "contentBlockIndex": 0}}
    encoded = wire.v2(event)
    assert encoded == (
        b'{"contentBlockDelta": {"delta": {"text": "f() \\u007breturn \\"\\u007d\\u007b\\";\\u007d"}, '
        b'"contentBlockIndex": 0}}'
    )
    assert json.loads(encoded) == event


def test_v2_escapes_braces_in_nested_strings():
    event = {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"city": "Paris"}'}}, "contentBlockIndex": 1}}
    encoded = wire.v2(event)
    assert b"}{" not in encoded
    assert encoded.count(b"{") == 4 and json.loads(encoded) == event


def test_binary_fields_travel_as_base64():
    event = {
        "contentBlockDelta": {"delta": {"reasoningContent": {"redactedContent": b"\x00\xff"}}, "contentBlockIndex": 0}
    }
    expected = (
        b'{"contentBlockDelta": {"delta": {"reasoningContent": {"redactedContent": "AP8="}}, "contentBlockIndex": 0}}'
    )
    assert wire.v2(event) == expected
    assert wire.v3(event) == expected + b"\n\n"


def test_v2_escapes_braces_inside_lists():
    # Citations and tool results put text in lists; a "}{" there would tear the event apart in the app.
    event = {
        "contentBlockDelta": {
            "delta": {"citation": {"sourceContent": [{"text": "a}{b"}], "title": "x"}},
            "contentBlockIndex": 0,
        }
    }
    encoded = wire.v2(event)
    assert b"a\\u007d\\u007bb" in encoded
    assert encoded.count(b"}{") == 0 and json.loads(encoded) == event


@pytest.mark.parametrize("name", ["v1", "v2", "v3"])
def test_in_band_error_hides_what_botocore_would_quote(name):
    from botocore.exceptions import ParamValidationError

    error = ParamValidationError(
        report="Invalid type for parameter messages[0].content[0].text, value: ['my private text'], "
        "type: <class 'list'>, valid types: <class 'str'>"
    )
    written = wire.DIALECTS[name].error(error)
    assert written == b"Error: Parameter validation failed: Invalid type for parameter messages[0].content[0].text."
