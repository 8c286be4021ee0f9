"""The chat request schema and the ConverseStream command built from it."""

import pytest
from conftest import histories, load_outcome
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, fields

from swiftchat_api.schemas import ConverseRequest, Message
from swiftchat_api.services.converse import command
from swiftchat_api.services.images import helper_model

schema = ConverseRequest()


def _load(**fields):
    return schema.load({"modelId": "m", "region": "eu-central-1", **fields})


def test_defaults_when_optional_fields_are_absent():
    assert _load() == {"modelId": "m", "region": "eu-central-1", "messages": [], "enableThinking": None, "system": None}
    assert command(_load()) == {"modelId": "m", "messages": [], "inferenceConfig": {"maxTokens": 4096}}


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("false", False), (True, True), (None, None)])
def test_thinking_accepts_strings_and_null(raw, value):
    assert _load(enableThinking=raw)["enableThinking"] is value


def test_thinking_adds_the_reasoning_budget():
    assert command(_load(enableThinking=True))["additionalModelRequestFields"] == {
        "reasoning_config": {"type": "enabled", "budget_tokens": 16000}
    }
    assert "additionalModelRequestFields" not in command(_load(enableThinking=False))


def test_media_bytes_are_decoded_everywhere_they_appear():
    content = [
        {"image": {"format": "png", "source": {"bytes": "aGVsbG8="}}},
        {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://b/k"}}}},
        {
            "toolResult": {
                "toolUseId": "t1",
                "content": [{"document": {"format": "txt", "name": "n", "source": {"bytes": "eA=="}}}],
            }
        },
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"bytes": "not touched"}}},
    ]
    loaded = _load(messages=[{"role": "user", "content": content}])["messages"][0]["content"]
    assert loaded[0]["image"]["source"]["bytes"] == b"hello"
    assert loaded[1] == content[1]
    assert loaded[2]["toolResult"]["content"][0]["document"]["source"]["bytes"] == b"x"
    assert loaded[3] == content[3]


class _NestedMessages(ConverseRequest):
    """The chat schema as it was declared before messages got a plain-Python reading: the reference."""

    messages = fields.List(fields.Nested(Message), load_default=list)


_nested_schema = _NestedMessages()


def _media(source):
    return st.fixed_dictionaries({"format": st.sampled_from(["png", "pdf"])}, optional={"source": source})


def _blocks(base64_text):
    media = _media(st.fixed_dictionaries({"bytes": base64_text}))
    parts = st.one_of(st.fixed_dictionaries({"image": media}), st.just({"json": 1}), st.just("text"))
    result = st.fixed_dictionaries({"toolUseId": st.just("t"), "content": st.lists(parts, max_size=3)})
    return st.one_of(
        st.fixed_dictionaries({"text": st.text(max_size=5)}),
        st.fixed_dictionaries({st.sampled_from(["image", "document", "video"]): media}),
        st.fixed_dictionaries({"toolResult": result}),
    )


_good_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": st.lists(_blocks(st.just("aGVsbG8=")), max_size=3)},
    optional={"clientTimestamp": st.integers()},
)
_odd_message = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "robot", "User", "", None, 1, ["user"]]),
            "content": st.one_of(
                st.lists(
                    st.one_of(
                        _blocks(st.sampled_from(["eA==", "", "%%%", "aGVsbG8", 7, None])),
                        st.sampled_from([None, "hi", 3, [], {}]),
                    ),
                    max_size=3,
                ),
                st.sampled_from([None, "hi", {}, 5]),
            ),
        },
    ),
    st.sampled_from([None, "hi", 3, []]),
)


@settings(max_examples=400, deadline=None)
@given(messages=st.one_of(histories(_good_message, _odd_message), st.sampled_from([None, "hi", {}, 3])))
def test_messages_load_exactly_as_the_nested_schema_loads_them(messages):
    """Every chat history is loaded, or refused with the same error, as marshmallow's nested schema does it."""
    body = {"modelId": "m", "region": "eu-central-1", "messages": messages}
    assert load_outcome(schema, body) == load_outcome(_nested_schema, body)


def test_invalid_base64_inside_a_tool_result_names_its_place():
    bad = {"toolResult": {"toolUseId": "t", "content": [{"image": {"format": "png", "source": {"bytes": "%%%"}}}]}}
    with pytest.raises(ValidationError) as error:
        _load(messages=[{"role": "user", "content": [bad]}])
    assert error.value.messages == {
        "messages": {
            0: {
                "content": {
                    0: {
                        "toolResult": {
                            "content": {
                                0: {
                                    "image": {
                                        "source": {
                                            "bytes": ["Invalid base64 data in the image block of the tool result."]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }


@pytest.mark.parametrize("region", ["us-west-2", "ap-southeast-1", "us-gov-west-1", "eu-central-2"])
def test_real_region_names_pass(region):
    assert _load(region=region)["region"] == region


@pytest.mark.parametrize("region", ["", "US-WEST-2", "us_west_2", "http://evil", "us-west"])
def test_unreal_region_names_fail(region):
    with pytest.raises(ValidationError):
        _load(region=region)


@pytest.mark.parametrize(
    ("region", "configured", "helper"),
    [
        ("us-east-1", None, "us.amazon.nova-lite-v1:0"),
        ("eu-west-3", None, "eu.amazon.nova-lite-v1:0"),
        ("ap-southeast-2", None, "apac.amazon.nova-lite-v1:0"),
        ("ca-central-1", None, "amazon.nova-lite-v1:0"),
        ("eu-west-3", "eu.anthropic.claude-3-haiku-20240307-v1:0", "eu.anthropic.claude-3-haiku-20240307-v1:0"),
    ],
)
def test_image_helper_model_fits_the_region_or_the_setting(region, configured, helper):
    assert helper_model(region, configured) == helper
