"""The OpenAI ⇄ Bedrock mapping, rule by rule: pure functions first, then through boto3 and the emulator."""

import base64
import json
import struct

import botocore.session
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import validate_parameters
from conftest import histories, load_outcome, stream_record
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, fields, validate

from swiftchat_api.exceptions import ApiError, Unfulfilled
from swiftchat_api.oai.chat import JSON_INSTRUCTION, OPENING_TURN, completion, converse_args, include_usage
from swiftchat_api.oai.embeddings import embedding_calls, embeddings
from swiftchat_api.oai.errors import answer, body_of, error_body, invalid_body, upstream_error
from swiftchat_api.oai.images import image_answer, image_request
from swiftchat_api.oai.schemas import (
    MAX_MESSAGES,
    MAX_TEXT,
    ChatCompletionRequest,
    EmbeddingsRequest,
    ImagesRequest,
    _Message,
)
from swiftchat_api.oai.stream import ChunkTranslator

CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"  # a Claude that does not think
PNG = b"\x89PNG\r\n\x1a\n-not-really-an-image"
SECRET = "caller-secret-Zq7"


def load(messages, **body):
    return ChatCompletionRequest().load({"model": CLAUDE, "messages": messages, **body})


def args(messages, **body):
    return converse_args(load(messages, **body))


def refusal(messages, **body):
    """The ApiError a body is answered with, whether the schema or the mapping refused it."""
    with pytest.raises((ApiError, ValidationError)) as caught:
        args(messages, **body)
    error = caught.value
    return invalid_body(error) if isinstance(error, ValidationError) else error


def user(content):
    return {"role": "user", "content": content}


def assistant(content=None, *calls):
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in calls
        ]
    return message


def tool(call_id, content):
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def data_url(media="image/png", raw=PNG):
    return f"data:{media};base64,{base64.b64encode(raw).decode()}"


def image(url):
    return {"type": "image_url", "image_url": {"url": url}}


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time.", "strict": True}}
ARGUMENTS = "messages[1].tool_calls[0].function.arguments"
CALLED = [user("Weather?"), assistant("Let me look.", ("call_1", "get_weather", '{"city": "Paris"}'))]
ANSWERED = [*CALLED, tool("call_1", "18 °C")]


# --- messages ---------------------------------------------------------------------------------


class _NestedMessages(ChatCompletionRequest):
    """The request schema as it was declared before messages got a plain-Python reading: the reference."""

    messages = fields.List(fields.Nested(_Message), required=True, validate=validate.Length(min=1, max=MAX_MESSAGES))


def _outcome(schema, messages):
    return load_outcome(schema, {"model": CLAUDE, "messages": messages})


_text_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": st.text(max_size=5)},
    optional={"name": st.just("ann"), "tool_calls": st.none(), "tool_call_id": st.none()},
)
_odd_message = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "tool", "robot", "", None, 1]),
            "content": st.one_of(
                st.none(),
                st.sampled_from(["", "hi", 5, {}]),
                st.lists(st.one_of(st.just({"type": "text", "text": "a"}), st.just(image(data_url())), st.just("x"))),
            ),
            "tool_calls": st.one_of(
                st.sampled_from([[], "x"]), st.just([{"id": "c", "function": {"name": "f", "arguments": "{}"}}])
            ),
            "tool_call_id": st.sampled_from(["c", "", 3]),
        },
    ),
    st.sampled_from([None, "hi", 3, []]),
    st.sampled_from([tool("c", "18 °C"), {"role": "tool", "content": "18 °C"}, {"role": "assistant", "content": None}]),
)


@settings(max_examples=400, deadline=None)
@given(messages=st.one_of(histories(_text_message, _odd_message), st.sampled_from([None, "hi", {}, 3])))
def test_messages_load_exactly_as_the_nested_schema_loads_them(messages):
    """Every history is loaded, or refused with the same error, as marshmallow's nested schema does it."""
    assert _outcome(ChatCompletionRequest(), messages) == _outcome(_NestedMessages(), messages)


@pytest.mark.parametrize(
    "messages",
    [
        [user("x" * MAX_TEXT)],
        [user("x" * (MAX_TEXT + 1))],
        [user("hi")] * MAX_MESSAGES,
        [user("hi")] * (MAX_MESSAGES + 1),
    ],
    ids=["text at the limit", "text over it", "messages at the limit", "messages over it"],
)
def test_limits_on_text_messages_hold_as_before(messages):
    outcome = _outcome(ChatCompletionRequest(), messages)
    assert outcome == _outcome(_NestedMessages(), messages)
    assert outcome[0] == (
        "loaded" if len(messages) <= MAX_MESSAGES and len(messages[0]["content"]) <= MAX_TEXT else "refused"
    )


def test_system_and_developer_messages_become_system_blocks_in_order_without_empty_ones():
    sent = args(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Use metric."}]},
            user("Hi"),
            {"role": "system", "content": "   "},
        ]
    )
    assert sent["system"] == [{"text": "Be brief."}, {"text": "Use metric."}]
    assert sent["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]


def test_no_system_key_without_system_messages():
    assert "system" not in args([user("Hi")])


@pytest.mark.parametrize(
    ("media", "fmt"), [("image/png", "png"), ("image/jpeg", "jpeg"), ("image/jpg", "jpeg"), ("image/webp", "webp")]
)
def test_image_data_urls_are_decoded_to_bytes_with_their_format(media, fmt):
    sent = args([user([{"type": "text", "text": "What is it?"}, image(data_url(media))])])
    assert sent["messages"][0]["content"][1] == {"image": {"format": fmt, "source": {"bytes": PNG}}}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://example.com/cat.png", "not fetched"),
        ("http://169.254.169.254/latest/meta-data", "not fetched"),
        (data_url("image/bmp"), "PNG, JPEG, GIF or WebP"),
        ("data:image/png," + SECRET, "must be base64"),
        ("data:image/png;base64,%%%" + SECRET, "not valid base64"),
        ("data:image/png;base64,", "not valid base64"),
    ],
)
def test_images_that_cannot_be_sent_inline_are_refused_clearly(url, says):
    error = refusal([user([{"type": "text", "text": "see"}, image(url)])])
    assert error.status == 400
    assert says in error.detail
    assert error.param == "messages[0].content[1].image_url"
    assert SECRET not in json.dumps(body_of(error))


def test_consecutive_messages_of_one_role_are_merged():
    sent = args([user("one"), user([{"type": "text", "text": "two"}]), assistant("a"), assistant("b"), user("c")])
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0]["content"] == [{"text": "one"}, {"text": "two"}]
    assert sent["messages"][1]["content"] == [{"text": "a"}, {"text": "b"}]


@pytest.mark.parametrize("messages", [[user("  ")], [assistant(" ")], [{"role": "system", "content": " "}]])
def test_a_conversation_of_nothing_but_blanks_is_refused(messages):
    error = refusal(messages)
    assert (error.status, error.param) == (400, "messages")
    assert "nothing to answer" in error.detail


def test_a_conversation_that_opens_with_the_assistant_gets_a_user_turn_before_it():
    sent = args([{"role": "system", "content": "Be kind."}, assistant("Hello! How can I help?"), user("Hi")])
    assert sent["system"] == [{"text": "Be kind."}]
    assert [message["role"] for message in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0] == {"role": "user", "content": [{"text": OPENING_TURN}]}


def test_a_conversation_of_system_messages_alone_is_the_user_turn():
    sent = args([{"role": "system", "content": "Write a haiku."}, {"role": "developer", "content": "About tea."}])
    assert "system" not in sent
    assert sent["messages"] == [{"role": "user", "content": [{"text": "Write a haiku."}, {"text": "About tea."}]}]


def test_images_in_a_tool_result_go_inside_the_tool_result():
    result = tool("call_1", [{"type": "text", "text": "The chart:"}, image(data_url())])
    sent = args([*CALLED, result], tools=[WEATHER])
    content = sent["messages"][2]["content"][0]["toolResult"]["content"]
    assert content == [{"text": "The chart:"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]
    as_text = args([*CALLED, result], tools=[WEATHER], tool_choice="none")["messages"][2]["content"]
    assert as_text[0]["text"].endswith(": The chart:") and as_text[1] == {
        "image": {"format": "png", "source": {"bytes": PNG}}
    }


def test_images_stay_out_of_system_and_assistant_messages():
    for role in ("system", "assistant"):
        error = refusal([{"role": role, "content": [image(data_url())]}, user("x")])
        assert error.status == 400 and "Only user and tool messages carry images" in error.detail


def test_a_final_assistant_message_is_a_prefill_without_trailing_whitespace():
    sent = args([user("Say it"), assistant("The answer is \n")])
    assert sent["messages"][-1] == {"role": "assistant", "content": [{"text": "The answer is"}]}


def test_a_cache_point_after_a_tool_result_stays_with_it_when_results_go_first():
    called = assistant(None, ("call_1", "get_weather", "{}"), ("call_2", "get_weather", "{}"))
    marked = {"role": "tool", "tool_call_id": "call_1", "content": "sun", "cache_control": {"type": "ephemeral"}}
    sent = args([user("Weather?"), called, marked, tool("call_2", "rain"), user("Both?")], tools=[WEATHER])
    kinds = [next(iter(block)) for block in sent["messages"][2]["content"]]
    assert kinds == ["toolResult", "cachePoint", "toolResult", "text"]


def test_cache_control_marks_become_cache_points():
    cached = {"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}
    sent = args([{"role": "system", "content": [cached]}, user([cached, {"type": "text", "text": "Question"}])])
    assert sent["system"] == [{"text": "A long manual."}, {"cachePoint": {"type": "default"}}]
    assert sent["messages"][0]["content"] == [
        {"text": "A long manual."},
        {"cachePoint": {"type": "default"}},
        {"text": "Question"},
    ]


# --- tools ------------------------------------------------------------------------------------


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks():
    sent = args([*ANSWERED, user("And tomorrow?")], tools=[WEATHER])
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"text": "Let me look."},
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
        ],
    }
    # The results lead their user turn (Claude's rule), the user's words follow in the same turn.
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18 °C"}]}},
            {"text": "And tomorrow?"},
        ],
    }


def test_several_tool_results_share_one_user_turn():
    calls = [("a", "get_weather", "{}"), ("b", "get_time", "")]
    sent = args(
        [user("Both?"), assistant(None, *calls), tool("a", "sunny"), tool("b", [{"type": "text", "text": "9"}])]
    )
    results = sent["messages"][2]["content"]
    assert [block["toolResult"]["toolUseId"] for block in results] == ["a", "b"]
    assert sent["messages"][1]["content"][1]["toolUse"]["input"] == {}  # no arguments at all is {}


def test_tool_call_ids_bedrock_would_refuse_are_rewritten_the_same_way_in_call_and_result():
    odd = "call/with spaces+and*stars"
    sent = args([user("x"), assistant(None, (odd, "get_weather", "{}")), tool(odd, "ok")])
    used = sent["messages"][1]["content"][0]["toolUse"]["toolUseId"]
    assert used != odd
    assert sent["messages"][2]["content"][0]["toolResult"]["toolUseId"] == used


@pytest.mark.parametrize(
    ("messages", "param", "says"),
    [
        ([user("x"), assistant(None, ("c", "get_weather", "{not json"))], ARGUMENTS, "JSON object"),
        ([user("x"), assistant(None, ("c", "get_weather", "[1, 2]"))], ARGUMENTS, "JSON object"),
        ([user("x"), tool("nobody", "result")], "messages[1]", "no open tool call"),
        ([*ANSWERED, tool("call_1", "again")], "messages[3]", "no open tool call"),
        ([*CALLED, user("never mind")], "messages[2]", "not all answered"),
        (CALLED, "messages", "not answered"),
    ],
)  # fmt: skip
def test_tool_histories_that_do_not_add_up_are_refused(messages, param, says):
    error = refusal(messages, tools=[WEATHER])
    assert (error.status, error.param) == (400, param)
    assert says in error.detail


def test_tools_become_tool_specs_and_auto_leaves_the_choice_to_the_model():
    sent = args([user("x")], tools=[WEATHER, TIME], tool_choice="auto")
    assert sent["toolConfig"] == {
        "tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}},
            {
                "toolSpec": {
                    "name": "get_time",
                    "inputSchema": {"json": {"type": "object"}},
                    "description": "The time.",
                    "strict": True,
                }
            },
        ]
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_time"}}, {"tool": {"name": "get_time"}}),
    ],
)
def test_tool_choice_that_forces_a_call(choice, expected):
    assert args([user("x")], tools=[WEATHER, TIME], tool_choice=choice)["toolConfig"]["toolChoice"] == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}, "tools": [WEATHER]}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "sometimes", "tools": [WEATHER]}, "tool_choice"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "no spaces allowed"}}]}, "tools[0].function.name"),
    ],
)
def test_tool_settings_that_cannot_work_are_refused(body, param):
    error = refusal([user("x")], **body)
    assert (error.status, error.param) == (400, param)


def test_history_with_tools_but_no_tools_in_the_request_declares_the_tools_it_used():
    sent = args([*ANSWERED, user("Thanks")])
    assert [tool["toolSpec"]["name"] for tool in sent["toolConfig"]["tools"]] == ["get_weather"]
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}
    assert "toolChoice" not in sent["toolConfig"]


def test_tool_choice_none_sends_no_tools_and_the_tool_history_as_text():
    sent = args([*ANSWERED, user("Summarise")], tools=[WEATHER], tool_choice="none")
    assert "toolConfig" not in sent
    blocks = [block for message in sent["messages"] for block in message["content"]]
    assert all("toolUse" not in block and "toolResult" not in block for block in blocks)
    said = " ".join(block["text"] for message in sent["messages"] for block in message["content"])
    assert "get_weather" in said and '{"city": "Paris"}' in said and "18 °C" in said


def test_no_tools_and_no_tool_history_means_no_tool_config():
    assert "toolConfig" not in args([user("x")])


# --- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body", "max_tokens"),
    [
        (CLAUDE, {}, 64000),
        ("us.meta.llama3-1-70b-instruct-v1:0", {}, 2048),  # the table's prefix rule sees through the profile
        ("amazon.nova-pro-v1:0", {}, 4096),
        (CLAUDE, {"max_tokens": 300}, 300),
        (CLAUDE, {"max_completion_tokens": 200, "max_tokens": 300}, 200),
    ],
)
def test_max_tokens_come_from_the_request_or_the_models_table(model, body, max_tokens):
    assert args([user("x")], model=model, **body)["inferenceConfig"]["maxTokens"] == max_tokens


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2, "topP": 0.9}),
        ({"temperature": 0}, {"temperature": 0}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"stop": [""]}, {}),
        ({"user": "someone", "seed": 7, "frequency_penalty": 1, "a_field_from_the_future": {}}, {}),
    ],
)
def test_sampling_parameters_map_to_the_inference_config(body, expected):
    inference = args([user("x")], max_tokens=100, **body)["inferenceConfig"]
    assert inference == {"maxTokens": 100, **expected}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1, 2]}, "stop"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ],
)
def test_parameters_out_of_range_are_refused_by_name(body, param):
    error = refusal([user("x")], **body)
    assert (error.status, error.param, body_of(error)["error"]["type"]) == (400, param, "invalid_request_error")


@pytest.mark.parametrize(
    ("effort", "body", "budget", "max_tokens"),
    [
        ("low", {}, 16000, 64000),
        ("medium", {}, 32000, 64000),
        ("high", {}, 48000, 64000),
        ("minimal", {}, 1024, 64000),
        ("high", {"max_tokens": 2000}, 1500, 2000),
        ("low", {"max_tokens": 2000}, 1024, 2000),
    ],
)
def test_reasoning_effort_sets_a_thinking_budget_below_max_tokens(effort, body, budget, max_tokens):
    sent = args([user("x")], reasoning_effort=effort, **body)
    assert sent["additionalModelRequestFields"] == {"reasoning_config": {"type": "enabled", "budget_tokens": budget}}
    assert sent["inferenceConfig"]["maxTokens"] == max_tokens > budget


@pytest.mark.parametrize(
    ("model", "messages", "effort"),
    [
        (CLAUDE, [user("x")], "none"),
        (HAIKU, [user("x")], "high"),  # a model that cannot think is not asked to
        ("amazon.nova-pro-v1:0", [user("x")], "high"),
        (CLAUDE, ANSWERED, "high"),  # mid tool loop: Claude would want its signed thinking back
    ],
)
def test_reasoning_effort_is_left_out_where_it_cannot_apply(model, messages, effort):
    assert "additionalModelRequestFields" not in args(messages, model=model, reasoning_effort=effort, tools=[WEATHER])


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_reasoning_effort_is_left_out_when_a_tool_call_is_forced(choice):
    sent = args([user("x")], reasoning_effort="high", tools=[WEATHER], tool_choice=choice)
    assert "additionalModelRequestFields" not in sent
    assert "additionalModelRequestFields" in args([user("x")], reasoning_effort="high", tools=[WEATHER])


def test_reasoning_effort_with_too_few_tokens_is_refused():
    error = refusal([user("x")], reasoning_effort="low", max_tokens=1024)
    assert (error.status, error.param) == (400, "max_tokens")


def test_json_schema_response_format_becomes_bedrocks_structured_output():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "count", "description": "A count.", "schema": schema},
    }
    sent = args([user("x")], response_format=response_format, model="openai.gpt-oss-120b-1:0")
    structure = sent["outputConfig"]["textFormat"]
    assert structure["type"] == "json_schema"
    assert structure["structure"]["jsonSchema"]["name"] == "count"
    assert structure["structure"]["jsonSchema"]["description"] == "A count."
    assert json.loads(structure["structure"]["jsonSchema"]["schema"]) == schema


def test_json_object_response_format_is_asked_for_in_the_system_prompt_of_a_model_without_tools():
    messages = [{"role": "system", "content": "Be brief."}, user("x")]
    sent = args(messages, response_format={"type": "json_object"}, model="us.deepseek.r1-v1:0")
    assert sent["system"] == [{"text": "Be brief."}, {"text": JSON_INSTRUCTION}]
    assert "outputConfig" not in args([user("x")], response_format={"type": "text"})


def test_the_arguments_are_ones_boto3_accepts():
    """botocore validates every argument against Bedrock's model before sending: a full body passes."""
    sent = args(
        [
            {"role": "system", "content": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]},
            user([{"type": "text", "text": "x"}, image(data_url())]),
            *ANSWERED[1:],
        ],
        tools=[WEATHER, TIME],
        tool_choice="required",
        stop=["END"],
        temperature=0.5,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
    )
    operation = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")
    validate_parameters(sent, operation.input_shape)  # raises ParamValidationError naming what does not fit


# --- request validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "robot", "content": SECRET}], "messages[0].role"),
        ([{"role": "function", "content": SECRET, "name": "f"}], "messages[0].role"),
        ([user([{"type": "input_audio", "input_audio": {"data": SECRET}}])], "messages[0].content[0]"),
        ([user([{"type": "text", "text": 7}])], "messages[0].content[0]"),
        ([user(None)], "messages[0].content"),
        ([user("x"), {"role": "assistant", "content": None}], "messages[1].content"),
        ([user("x"), assistant([{"type": "image_url", "image_url": {"url": data_url()}}])], "messages[1].content"),
        ([user("x"), {"role": "tool", "content": "r"}], "messages[1].tool_call_id"),
        ([{"role": "user", "content": "x", "tool_calls": []}, user("y")], None),
        ([], "messages"),
    ],
)
def test_malformed_messages_are_refused_by_position_without_quoting_them(messages, param):
    if param is None:  # an empty tool_calls list on a user message is harmless
        assert args(messages)["messages"][0]["content"] == [{"text": "x"}, {"text": "y"}]
        return
    error = refusal(messages)
    assert (error.status, error.param) == (400, param)
    assert SECRET not in json.dumps(body_of(error))


def test_message_counts_and_sizes_are_bounded():
    assert refusal([user("x")] * 2001).param == "messages"
    assert refusal([user([{"type": "text", "text": "x"}] * 257)]).param == "messages[0].content"


def test_include_usage_follows_stream_options():
    assert include_usage(load([user("x")], stream=True, stream_options={"include_usage": True}))
    assert not include_usage(load([user("x")], stream=True))


# --- answers ----------------------------------------------------------------------------------


def converse_answer(content, stop="end_turn", usage=None):
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage or {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
    }


def test_a_completion_keeps_every_text_block_and_the_tool_calls_after_them():
    answer = converse_answer(
        [
            {"reasoningContent": {"reasoningText": {"text": "They want weather.", "signature": "sig"}}},
            {"text": "Let me check "},
            {"text": "both cities."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "東京"}}},
        ],
        stop="tool_use",
    )
    done = completion(answer, "m", "chatcmpl-1", 1700000000)
    assert (done["id"], done["object"], done["created"], done["model"]) == (
        "chatcmpl-1",
        "chat.completion",
        1700000000,
        "m",
    )
    choice = done["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me check both cities."
    assert message["reasoning_content"] == "They want weather."
    assert message["tool_calls"] == [
        {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "tooluse_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "東京"}'}},
    ]


def test_a_completion_with_only_tool_calls_has_null_content():
    answer = converse_answer([{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}], stop="tool_use")
    message = completion(answer, "m", "c", 1)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"]["arguments"] == "{}"
    assert "reasoning_content" not in message


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
        ("tool_use", "stop"),  # tool_use with no call the client can make
        ("something_new", "stop"),
    ],
)
def test_finish_reason_follows_the_stop_reason(stop, finish):
    assert completion(converse_answer([{"text": "x"}], stop=stop), "m", "c", 1)["choices"][0]["finish_reason"] == finish


def test_usage_counts_cached_prompt_tokens_as_openai_does():
    usage = {"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20}
    assert completion(converse_answer([{"text": "x"}], usage=usage), "m", "c", 1)["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def start(index, tool_use_id, name, **more):
    tool_use = {"toolUseId": tool_use_id, "name": name, **more}
    return {"contentBlockStart": {"start": {"toolUse": tool_use}, "contentBlockIndex": index}}


def delta(index, **what):
    return {"contentBlockDelta": {"delta": what, "contentBlockIndex": index}}


def stop(index):
    return {"contentBlockStop": {"contentBlockIndex": index}}


MESSAGE_START = {"messageStart": {"role": "assistant"}}
METADATA = {"metadata": {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}, "metrics": {"latencyMs": 1}}}


def translate(events, include=False):
    translator = ChunkTranslator("m", "chatcmpl-9", 1700000001, include_usage=include)
    return [chunk for event in events for chunk in translator.chunks(event)]


def deltas(chunks):
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def test_a_text_stream_opens_with_the_role_and_ends_with_the_finish_reason():
    ended = {"messageStop": {"stopReason": "end_turn"}}
    chunks = translate([MESSAGE_START, delta(0, text="Hel"), delta(0, text="lo"), stop(0), ended, METADATA])
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    assert {(c["id"], c["created"], c["object"], c["model"]) for c in chunks} == {
        ("chatcmpl-9", 1700000001, "chat.completion.chunk", "m")
    }


def test_a_tool_call_as_the_first_block_is_index_0():
    chunks = translate(
        [
            MESSAGE_START,
            start(0, "tu_a", "get_weather"),
            delta(0, toolUse={"input": '{"ci'}),
            delta(0, toolUse={"input": 'ty": "Paris"}'}),
            stop(0),
            {"messageStop": {"stopReason": "tool_use"}},
        ]
    )
    first = {"index": 0, "id": "tu_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert deltas(chunks)[1:] == [
        {"tool_calls": [first]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_calls_after_reasoning_and_text_count_from_0_without_gaps():
    chunks = translate(
        [
            MESSAGE_START,
            delta(0, reasoningContent={"text": "Two cities."}),
            delta(0, reasoningContent={"signature": "sig"}),
            stop(0),
            delta(1, text="Checking both."),
            stop(1),
            start(2, "tu_a", "get_weather"),
            delta(2, toolUse={"input": '{"city": "Paris"}'}),
            stop(2),
            start(3, "tu_b", "get_time"),
            delta(3, toolUse={"input": ""}),
            delta(3, toolUse={"input": "{}"}),
            stop(3),
            {"messageStop": {"stopReason": "tool_use"}},
        ]
    )
    got = deltas(chunks)
    assert got[1] == {"reasoning_content": "Two cities."}
    # The signed block whole, once its signature came: what a client sends back to go on thinking.
    assert got[2] == {"thinking_blocks": [{"type": "thinking", "thinking": "Two cities.", "signature": "sig"}]}
    assert got[3] == {"content": "Checking both."}
    calls = [call for d in got for call in d.get("tool_calls", [])]
    assert [(call["index"], call.get("id")) for call in calls] == [(0, "tu_a"), (0, None), (1, "tu_b"), (1, None)]
    assert calls[2]["function"] == {"name": "get_time", "arguments": ""}


def test_the_role_travels_in_the_first_chunk_even_without_message_start():
    assert deltas(translate([delta(0, text="Hi")])) == [{"role": "assistant", "content": "Hi"}]


def test_a_tool_bedrock_ran_itself_is_not_a_call_for_the_client():
    server_tool = start(0, "s", "web", type="server_tool_use")
    chunks = translate([MESSAGE_START, server_tool, delta(0, toolUse={"input": "{}"}), stop(0), start(1, "c", "f")])
    calls = [call for d in deltas(chunks) for call in d.get("tool_calls", [])]
    assert [(call["index"], call["id"]) for call in calls] == [(0, "c")]


def test_usage_arrives_in_a_last_chunk_without_choices_only_when_asked():
    cached = {
        "metadata": {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 57, "cacheReadInputTokens": 50}}
    }
    with_usage = translate([MESSAGE_START, {"messageStop": {"stopReason": "end_turn"}}, cached], include=True)
    assert with_usage[-1]["choices"] == []
    assert with_usage[-1]["usage"] == {
        "prompt_tokens": 53,
        "completion_tokens": 4,
        "total_tokens": 57,
        "prompt_tokens_details": {"cached_tokens": 50},
    }
    assert all(chunk["usage"] is None for chunk in with_usage[:-1])
    without = translate([MESSAGE_START, {"messageStop": {"stopReason": "end_turn"}}, cached])
    assert all(chunk["choices"] and "usage" not in chunk for chunk in without)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, None, "invalid_request_error"),
        (413, None, "invalid_request_error"),
        (401, None, "authentication_error"),
        (403, None, "permission_error"),
        (404, None, "not_found_error"),
        (429, "rate_limit_exceeded", "rate_limit_exceeded"),
        (429, "insufficient_quota", "insufficient_quota"),
        (500, None, "server_error"),
        (502, None, "api_error"),
        (503, None, "api_error"),
    ],
)
def test_error_bodies_have_openais_shape_and_type(status, code, kind):
    assert error_body(status, "Nope.", code=code) == {
        "error": {"message": "Nope.", "type": kind, "param": None, "code": code}
    }


@pytest.mark.parametrize(
    ("code", "message", "status", "openai_code"),
    [
        ("ValidationException", "Malformed input request.", 400, None),
        ("ValidationException", "Input is too long for requested model.", 400, "context_length_exceeded"),
        ("AccessDeniedException", "You don't have access.", 403, "permission_denied"),
        ("ResourceNotFoundException", "Model not found.", 404, "model_not_found"),
        ("ThrottlingException", "Too many requests.", 429, "rate_limit_exceeded"),
        ("throttlingException", "Too many requests.", 429, "rate_limit_exceeded"),  # in-stream spelling
        ("ServiceUnavailableException", "Busy.", 503, None),
        ("modelStreamErrorException", "The model broke.", 502, None),
    ],
)
def test_bedrock_errors_map_through_the_projects_status_table(code, message, status, openai_code):
    error = upstream_error(ClientError({"Error": {"Code": code, "Message": message}}, "ConverseStream"))
    assert (error.status, error.detail, error.code) == (status, message, openai_code)


def test_botocore_parameter_errors_do_not_quote_the_value():
    report = f"Invalid type for parameter messages[0].content, value: {SECRET}, type: <class 'str'>"
    error = upstream_error(ParamValidationError(report=report))
    assert error.status == 400
    assert SECRET not in error.detail


# --- embeddings -------------------------------------------------------------------------------


def embedding_body(**body):
    return EmbeddingsRequest().load({"model": "amazon.titan-embed-text-v2:0", "input": "hello", **body})


def sent(calls):
    return [json.loads(call["body"]) for call in calls]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [{"inputText": "hello", "normalize": True}]),
        ({"input": ["a", "b"], "dimensions": 256}, [{"inputText": "a", "dimensions": 256, "normalize": True},
                                                    {"inputText": "b", "dimensions": 256, "normalize": True}]),
        ({"model": "amazon.titan-embed-text-v1"}, [{"inputText": "hello"}]),
        ({"model": "amazon.titan-embed-image-v1", "dimensions": 384},
         [{"inputText": "hello", "embeddingConfig": {"outputEmbeddingLength": 384}}]),
        ({"model": "cohere.embed-english-v3", "input": ["a", "b"]},
         [{"texts": ["a", "b"], "input_type": "search_document", "embedding_types": ["float"]}]),
        ({"model": "cohere.embed-v4:0", "dimensions": 512},
         [{"texts": ["hello"], "input_type": "search_document", "embedding_types": ["float"],
           "output_dimension": 512}]),
    ],
)  # fmt: skip
def test_embedding_requests_per_model_family(body, expected):
    calls = embedding_calls(embedding_body(**body))
    assert sent(calls) == expected
    assert {call["modelId"] for call in calls} == {body.get("model", "amazon.titan-embed-text-v2:0")}


def test_cohere_embeds_96_texts_a_call():
    calls = embedding_calls(embedding_body(model="cohere.embed-english-v3", input=[f"t{i}" for i in range(200)]))
    assert [len(body["texts"]) for body in sent(calls)] == [96, 96, 8]
    assert sent(calls)[2]["texts"][-1] == "t199"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"dimensions": 300}, "dimensions"),
        ({"model": "amazon.titan-embed-text-v1", "dimensions": 256}, "dimensions"),
        ({"model": "cohere.embed-english-v3", "dimensions": 256}, "dimensions"),
        ({"model": "anthropic.claude-3-haiku-20240307-v1:0"}, "model"),
        ({"input": [[15339, 100256]]}, "input[0][1]"),  # a gap in cl100k_base, between its ranks and specials
        ({"input": ["ok", ""]}, "input"),
        ({"input": []}, "input"),
        ({"encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_embedding_requests_that_cannot_work_are_refused(body, param):
    with pytest.raises((ApiError, ValidationError)) as caught:
        embedding_calls(embedding_body(**body))
    error = caught.value if isinstance(caught.value, ApiError) else invalid_body(caught.value)
    assert (error.status, error.param) == (400, param)


def test_embeddings_answer_in_float_or_little_endian_base64():
    answers = [
        {"embedding": [0.5, -0.25], "inputTextTokenCount": 3},
        {"embedding": [1.0, 0.0], "inputTextTokenCount": 2},
    ]
    floats = embeddings(embedding_body(input=["a", "b"]), answers)
    assert floats == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]},
        ],
        "model": "amazon.titan-embed-text-v2:0",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    packed = embeddings(embedding_body(input=["a", "b"], encoding_format="base64"), answers)
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert raw == struct.pack("<2f", 0.5, -0.25)


def test_cohere_answers_are_split_back_into_one_embedding_per_input():
    body = embedding_body(model="cohere.embed-english-v3", input=["a", "b", "c"])
    answers = [{"embeddings": {"float": [[1.0], [2.0]]}}, {"embeddings": [[3.0]]}]
    answer = embeddings(body, answers, token_counts=[4, 1])
    assert [item["embedding"] for item in answer["data"]] == [[1.0], [2.0], [3.0]]
    assert answer["usage"]["prompt_tokens"] == 5
    with pytest.raises(ApiError) as caught:
        embeddings(body, answers[:1])
    assert caught.value.status == 502


# --- images -----------------------------------------------------------------------------------


def images_body(**body):
    return ImagesRequest().load({"prompt": "a lighthouse", "model": "amazon.nova-canvas-v1:0", **body})


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({}, (1024, 1024)),
        ({"size": "auto"}, (1024, 1024)),
        ({"size": "1280x720", "quality": "hd", "style": "vivid"}, (1280, 720)),
    ],
)
def test_image_requests_become_the_image_services_request(body, size):
    assert image_request(images_body(**body)) == {
        "prompt": "a lighthouse",
        "modelId": "amazon.nova-canvas-v1:0",
        "refImages": None,
        "width": size[0],
        "height": size[1],
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"response_format": "url"}, "response_format"),
        ({"size": "big"}, "size"),
        ({"size": "1000x1000"}, "size"),  # Nova Canvas draws multiples of 16 only
        ({"model": "amazon.titan-image-generator-v2:0", "size": "1000x1000"}, "size"),
        ({"model": "dall-e-3"}, "model"),
    ],
)
def test_image_requests_that_cannot_be_drawn_are_refused(body, param):
    with pytest.raises((ApiError, ValidationError)) as caught:
        image_request(images_body(**body))
    error = caught.value if isinstance(caught.value, ApiError) else invalid_body(caught.value)
    assert (error.status, error.param) == (400, param)


def test_image_answers_carry_b64_json_and_refusals_keep_their_status():
    assert image_answer({"image": "aGk="}, 5) == {"created": 5, "data": [{"b64_json": "aGk="}]}
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeModel")
    body, status, _ = answer(Unfulfilled(str(throttled), cause=throttled))
    assert (status, body["error"]["code"]) == (429, "rate_limit_exceeded")
    assert body["error"]["message"] == "slow down"  # Bedrock's words, without botocore's "An error occurred (...)"
    body, status, _ = answer(Unfulfilled("The model did not finish the image: Filter reason: prompt"))
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")


# --- through boto3 and the emulator -----------------------------------------------------------


def streamed(bedrock, body):
    """The chunks of a streamed answer, as the /v1 route will produce them."""
    translator = ChunkTranslator(body["model"], "chatcmpl-e2e", 1, include_usage=include_usage(body))
    stream = bedrock.converse_stream(**converse_args(body))["stream"]
    return [chunk for event in stream for chunk in translator.chunks(event)]


def assembled(chunks):
    """What an OpenAI client makes of a stream: text, and tool calls put together by index."""
    text, calls = "", {}
    for d in deltas(chunks):
        text += d.get("content") or ""
        for call in d.get("tool_calls", []):
            slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
            slot["id"] = call.get("id") or slot["id"]
            slot["name"] = call.get("function", {}).get("name") or slot["name"]
            slot["arguments"] += call["function"].get("arguments", "")
    return text, [calls[index] for index in sorted(calls)]


def test_streamed_tool_calls_with_text_before_them_reach_the_client_whole(bedrock):
    arguments = {"city": "}{ 東京 🌧"}
    directive = (
        f"[[emulator reply=\"Checking.\" tools=get_weather,get_time args='{json.dumps(arguments)}' arg_chunk=3]]"
    )
    body = load([user(f"Weather? {directive}")], stream=True, tools=[WEATHER, TIME])
    chunks = streamed(bedrock, body)
    text, calls = assembled(chunks)
    assert text == "Checking."
    assert [call["name"] for call in calls] == ["get_weather", "get_time"]
    assert all(call["id"].startswith("tooluse_") for call in calls)
    assert [json.loads(call["arguments"]) for call in calls] == [arguments, arguments]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_streamed_tool_call_that_comes_first_is_index_0(bedrock):
    body = load([user("[[emulator tools=get_weather]]")], stream=True, tools=[WEATHER])
    chunks = streamed(bedrock, body)
    firsts = [call for d in deltas(chunks) for call in d.get("tool_calls", []) if "id" in call]
    assert [call["index"] for call in firsts] == [0]
    assert assembled(chunks)[0] == ""


def test_a_tool_round_trip_is_accepted_and_the_results_reach_the_model(bedrock):
    first = load([user("[[emulator tools=get_weather]]")], tools=[WEATHER])
    answer = completion(bedrock.converse(**converse_args(first)), first["model"], "c1", 1)
    message = answer["choices"][0]["message"]
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    call = message["tool_calls"][0]
    follow_up = load(
        [user("[[emulator tools=get_weather]]"), message, tool(call["id"], "18 °C and sunny")], tools=[WEATHER]
    )
    reply = completion(bedrock.converse(**converse_args(follow_up)), first["model"], "c2", 2)
    assert reply["choices"][0]["message"]["content"] == "Tool results received: 18 °C and sunny"
    assert reply["choices"][0]["finish_reason"] == "stop"


def test_tool_choice_none_gets_no_tool_call_even_from_a_model_that_wants_one(bedrock):
    history = [user("[[emulator tools=get_weather]]"), *ANSWERED[1:], user("[[emulator tools=get_weather]] again")]
    body = load(history, stream=True, tools=[WEATHER], tool_choice="none")
    text, calls = assembled(streamed(bedrock, body))
    assert calls == []
    assert "SwiftChat Bedrock emulator" in text


def test_forced_tool_choice_makes_the_model_call_that_tool(bedrock):
    body = load([user("hi")], tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}})
    answer = completion(bedrock.converse(**converse_args(body)), "m", "c", 1)
    assert [call["function"]["name"] for call in answer["choices"][0]["message"]["tool_calls"]] == ["get_time"]


def test_cached_tokens_and_reasoning_come_through_a_stream(bedrock):
    body = load(
        [user("[[emulator reply=Done cache_read=40 reasoning=3]]")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = streamed(bedrock, body)
    assert "".join(d.get("reasoning_content", "") for d in deltas(chunks)) == "fox jumps over"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 40}
    assert chunks[-1]["usage"]["prompt_tokens"] == chunks[-1]["usage"]["total_tokens"] - 1


@pytest.mark.parametrize(("stop_reason", "finish"), [("max_tokens", "length"), ("content_filtered", "content_filter")])
def test_finish_reasons_come_through_a_stream(bedrock, stop_reason, finish):
    chunks = streamed(bedrock, load([user(f"[[emulator reply=cut stop_reason={stop_reason}]]")], stream=True))
    assert chunks[-1]["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    "messages",
    [
        [assistant("Hello! How can I help?"), user("[[emulator reply=Fine.]]")],
        [{"role": "system", "content": "[[emulator reply=Fine.]]"}],
        [*CALLED, tool("call_1", [image(data_url())]), user("[[emulator reply=Fine.]]")],
    ],
)
def test_conversations_openai_takes_are_ones_bedrock_takes(bedrock, messages):
    body = load(messages, tools=[WEATHER])
    answer = completion(bedrock.converse(**converse_args(body)), body["model"], "c1", 1)
    assert answer["choices"][0]["message"]["content"] == "Fine."


def test_an_image_reaches_bedrock_as_the_bytes_sent(bedrock, emulator):
    body = load([user([{"type": "text", "text": "[[emulator id=oai-image]] what?"}, image(data_url())])], stream=True)
    streamed(bedrock, body)
    sent_block = stream_record(emulator, "oai-image")["request"]["messages"][0]["content"][1]
    assert base64.b64decode(sent_block["image"]["source"]["bytes"]) == PNG


@pytest.mark.parametrize(
    ("model", "encoding", "dimensions", "size"),
    [
        ("amazon.titan-embed-text-v2:0", "float", 256, 256),
        ("amazon.titan-embed-text-v2:0", "base64", None, 1024),
        ("cohere.embed-english-v3", "float", None, 1024),
        ("cohere.embed-v4:0", "base64", 512, 512),
    ],
)
def test_embeddings_through_the_emulator(bedrock, model, encoding, dimensions, size):
    body = embedding_body(
        model=model, input=["the quick fox", "a lazy dog"], encoding_format=encoding, dimensions=dimensions
    )
    answers, counts = [], []
    for call in embedding_calls(body):
        answer = bedrock.invoke_model(**call)
        answers.append(json.loads(answer["body"].read()))
        counts.append(int(answer["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-bedrock-input-token-count", 0)))
    result = embeddings(body, answers, counts)
    vectors = [item["embedding"] for item in result["data"]]
    if encoding == "base64":
        vectors = [struct.unpack(f"<{size}f", base64.b64decode(v)) for v in vectors]
    assert [len(v) for v in vectors] == [size, size]
    assert vectors[0] != vectors[1]
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-4)
    assert result["usage"]["prompt_tokens"] == 6


@pytest.mark.parametrize("name", ["get_weather\n", "get weather", "", "x" * 65, "wetter_für_morgen"])
def test_a_function_name_bedrock_would_refuse_is_a_400_naming_it(name):
    tools = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]
    error = refusal([user("hi")], tools=tools)
    assert error.status == 400 and "tools" in error.param
