"""The OpenAI-compatible API (/v1) driven by the real ``openai`` SDK, through gunicorn and the emulator."""

import base64
import json
import math
import os
import sqlite3
import struct
import time

import openai
import pytest
import schemathesis
from conftest import TEST_KEY, Server, emulator_calls, emulator_env, flask_keys, stream_record
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from swiftchat_api.emulator import images

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
THINKING_CLAUDE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
SECRET = "Zq-private-words-7"  # caller text that no error answer may quote
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    },
]


def say(text, directive=""):
    """One user message, with an emulator directive when given."""
    return [{"role": "user", "content": f"{text} [[emulator {directive}]]" if directive else text}]


def streamed(stream):
    """Everything a streamed answer said, put together the way a client does, plus the chunks."""
    text, reasoning, calls, finish, chunks = [], [], {}, None, []
    for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            delta = choice.delta
            text.append(delta.content or "")
            reasoning.append(getattr(delta, "reasoning_content", None) or "")
            for call in delta.tool_calls or []:
                if call.index not in calls:
                    # The first delta of a call names it and starts its arguments empty.
                    assert call.id and call.type == "function" and call.function.name
                    assert call.function.arguments == ""
                    calls[call.index] = {"id": call.id, "name": call.function.name, "arguments": ""}
                else:
                    assert call.id is None and call.function.name is None
                    calls[call.index]["arguments"] += call.function.arguments
            finish = choice.finish_reason or finish
    return {"text": "".join(text), "reasoning": "".join(reasoning), "calls": calls, "finish": finish, "chunks": chunks}


def raw_events(server, body, headers=None):
    """(status, headers, SSE events as bytes) of a streamed chat read straight off the socket."""
    status, received, data = server.request("/v1/chat/completions", {**body, "stream": True}, headers=headers)
    assert data.endswith(b"\n\n"), data[-200:]
    return status, received, data[:-2].split(b"\n\n")


# --- replies ---------------------------------------------------------------------------------

ODD_TEXT = '}{ 你好 🎉 {"a": 1} done'


def test_whole_reply_keeps_braces_cjk_and_emoji(client):
    answer = client.chat.completions.create(
        model=CLAUDE, messages=say("hi", f"reply={json.dumps(ODD_TEXT, ensure_ascii=False)}")
    )
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.model == CLAUDE
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == ODD_TEXT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens == len(ODD_TEXT.split())
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streamed_reply_is_the_same_text_in_chunks_of_one_answer(client):
    stream = client.chat.completions.create(
        model=CLAUDE, messages=say("hi", f"reply={json.dumps(ODD_TEXT, ensure_ascii=False)}"), stream=True
    )
    got = streamed(stream)
    assert got["text"] == ODD_TEXT
    assert got["finish"] == "stop"
    chunks = got["chunks"]
    assert len(chunks) >= len(ODD_TEXT.split())  # the words arrived as they came, not in one piece
    assert {(chunk.id, chunk.created, chunk.object) for chunk in chunks} == {
        (chunks[0].id, chunks[0].created, "chat.completion.chunk")
    }
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)  # no usage chunk unless asked


def test_usage_chunk_comes_last_when_asked_for(client):
    stream = client.chat.completions.create(
        model=CLAUDE,
        messages=say("hi", 'reply="one two three" cache_read=5'),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = streamed(stream)["chunks"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == 3
    assert last.usage.prompt_tokens_details.cached_tokens == 5
    assert last.usage.prompt_tokens >= 5
    assert last.usage.total_tokens == last.usage.prompt_tokens + 3
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_is_sse_data_lines_ending_with_done(server):
    body = {"model": CLAUDE, "messages": say("hi", f"reply={json.dumps(ODD_TEXT, ensure_ascii=False)}")}
    status, headers, events = raw_events(server, body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert all(event.startswith(b"data: {") for event in events[:-1])
    assert "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks) == ODD_TEXT
    raw = b"".join(events)
    assert "你好".encode() in raw and "🎉".encode() in raw and b"\\u" not in raw  # UTF-8 as is, as OpenAI writes it


def test_keepalive_comments_fill_a_silence_and_the_sdk_skips_them(server, client):
    directive = 'first_delay_ms=1500 reply="Done"'
    status, _, events = raw_events(server, {"model": CLAUDE, "messages": say("hi", directive)})
    assert status == 200
    comments = [event for event in events if event.startswith(b":")]
    assert len(comments) >= 2 and set(comments) == {b": keep-alive"}
    # They fall in the silence: after the role chunk, before the text.
    first_text = next(i for i, event in enumerate(events) if b'"content":"Done"' in event)
    assert events.index(comments[0]) < first_text
    got = streamed(client.chat.completions.create(model=CLAUDE, messages=say("hi", directive), stream=True))
    assert got["text"] == "Done" and got["finish"] == "stop"


# --- tool calls ------------------------------------------------------------------------------

TOOL_CASES = {
    "one tool, as the first block": ("tools=get_weather", "", ["get_weather"]),
    "one tool after text": ('tools=get_weather reply="Let me look that up."', "Let me look that up.", ["get_weather"]),
    "two tools": ("tools=get_weather,get_time", "", ["get_weather", "get_time"]),
    "two tools after text": (
        'tools=get_time,get_weather reply="Checking both."',
        "Checking both.",
        ["get_time", "get_weather"],
    ),
}


@pytest.mark.parametrize("case", TOOL_CASES)
def test_tool_calls_whole(client, case):
    directive, text, names = TOOL_CASES[case]
    answer = client.chat.completions.create(model=CLAUDE, messages=say("weather?", directive), tools=TOOLS)
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls"
    assert message.content == (text or None)  # the text before a call is kept
    assert [call.function.name for call in message.tool_calls] == names
    for position, call in enumerate(message.tool_calls):
        assert call.type == "function" and call.id.startswith("tooluse_")
        assert json.loads(call.function.arguments) == {"city": f"city {position}"}  # made from each tool's schema


@pytest.mark.parametrize("case", TOOL_CASES)
def test_tool_calls_streamed_count_from_zero(client, case):
    directive, text, names = TOOL_CASES[case]
    got = streamed(
        client.chat.completions.create(
            model=CLAUDE, messages=say("weather?", f"{directive} arg_chunk=5"), tools=TOOLS, stream=True
        )
    )
    assert got["finish"] == "tool_calls"
    assert got["text"] == text
    assert sorted(got["calls"]) == list(range(len(names)))  # 0, 1, ... whatever block Bedrock used
    assert [got["calls"][index]["name"] for index in sorted(got["calls"])] == names
    for index, call in got["calls"].items():
        assert call["id"].startswith("tooluse_")
        assert json.loads(call["arguments"]) == {"city": f"city {index}"}


def test_tool_round_trip(client):
    messages = say("weather and time in Paris?", "tools=get_weather,get_time")
    first = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS).choices[0].message
    messages.append(first.model_dump(exclude_none=True))
    results = {"get_weather": "22 C and sunny", "get_time": "14:05"}
    for call in first.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": results[call.function.name]})
    answer = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "Tool results received: 22 C and sunny | 14:05"


def test_tool_history_without_tools_still_works(client):
    messages = say("weather?", "tools=get_weather")
    first = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS).choices[0].message
    messages += [
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "rain"},
    ]
    answer = client.chat.completions.create(model=CLAUDE, messages=messages)  # no tools this time
    assert answer.choices[0].message.content == "Tool results received: rain"


# --- images in, reasoning out ----------------------------------------------------------------


# A caller's picture. Any valid PNG does: the tests compare the bytes Bedrock gets, or look for them in the log.
PICTURE = images.png(2, 2, "v1 image input")


def _with_picture(text):
    """One user message: text and PICTURE as a data URL."""
    url = "data:image/png;base64," + base64.b64encode(PICTURE).decode()
    return [
        {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}
    ]


def test_image_input_reaches_bedrock_as_bytes(client, emulator):
    url = "data:image/png;base64," + base64.b64encode(PICTURE).decode()
    content = [
        {"type": "text", "text": "What is this? [[emulator id=v1-image]]"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    got = streamed(
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": content}], stream=True)
    )
    assert got["finish"] == "stop"
    sent = stream_record(emulator, "v1-image")["request"]["messages"][0]["content"]
    image = next(block["image"] for block in sent if "image" in block)
    assert image["format"] == "png" and base64.b64decode(image["source"]["bytes"]) == PICTURE


def test_remote_image_url_is_refused_not_fetched(client):
    content = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": content}])
    assert raised.value.code == "image_url_not_supported"
    assert raised.value.param == "messages[0].content[1].image_url"


def test_an_image_a_tool_returns_reaches_bedrock_inside_its_result(client, emulator):
    url = "data:image/png;base64," + base64.b64encode(PICTURE).decode()
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [
        *say("Show me the map"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "image_url", "image_url": {"url": url}}]},
        *say("What does it show?", "id=v1-tool-image"),
    ]
    got = streamed(client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS, stream=True))
    assert got["finish"] == "stop"
    result = stream_record(emulator, "v1-tool-image")["request"]["messages"][2]["content"][0]["toolResult"]
    assert base64.b64decode(result["content"][0]["image"]["source"]["bytes"]) == PICTURE


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "assistant", "content": "Hello! What can I do?"}, *say("Hi", "reply=Fine.")],
        [{"role": "system", "content": "Greet me. [[emulator reply=Fine.]]"}],
    ],
)
def test_a_chat_that_opens_with_the_assistant_or_holds_only_system_is_answered(client, messages):
    answer = client.chat.completions.create(model=CLAUDE, messages=messages)
    assert answer.choices[0].message.content == "Fine."


def test_reasoning_streams_as_reasoning_content(client, emulator):
    stream = client.chat.completions.create(
        model=THINKING_CLAUDE, messages=say("think", 'id=v1-think reply="42"'), reasoning_effort="low", stream=True
    )
    got = streamed(stream)
    assert got["reasoning"] == "fox jumps over lazy dogs while streams of tokens flow from a"
    assert got["text"] == "42"
    thinking = stream_record(emulator, "v1-think")["request"]["additionalModelRequestFields"]["reasoning_config"]
    assert thinking == {"type": "enabled", "budget_tokens": 16000}  # a quarter of Claude 3.7's 64,000 tokens


def test_reasoning_effort_in_a_whole_answer_sets_the_budget(client, emulator):
    answer = client.chat.completions.create(
        model=THINKING_CLAUDE, messages=say("think", 'reply="42"'), reasoning_effort="medium"
    )
    assert answer.choices[0].message.content == "42"
    sent = next(call for call in reversed(emulator_calls(emulator)) if call["operation"] == "converse")["body"]
    assert sent["additionalModelRequestFields"]["reasoning_config"] == {"type": "enabled", "budget_tokens": 32000}


# --- errors ----------------------------------------------------------------------------------

REFUSALS = {
    "validation": (openai.BadRequestError, 400, None),
    "notfound": (openai.NotFoundError, 404, "model_not_found"),
    "access": (openai.PermissionDeniedError, 403, "permission_denied"),
    "throttling": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "internal": (openai.InternalServerError, 502, None),
    "unavailable": (openai.InternalServerError, 503, None),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("refusal", REFUSALS)
def test_bedrock_refusal_raises_the_matching_sdk_error(client, refusal, stream):
    kind, status, code = REFUSALS[refusal]
    with pytest.raises(kind) as raised:
        answer = client.chat.completions.create(model=CLAUDE, messages=say(SECRET, f"error={refusal}"), stream=stream)
        streamed(answer) if stream else None
    error = raised.value
    assert error.status_code == status and error.code == code
    assert f"The emulator refused the call ({refusal})." in error.message
    assert "operation:" not in error.message  # botocore's "An error occurred (...) when calling" is dropped
    assert SECRET not in error.response.text
    assert error.response.headers["content-type"] == "application/json"


def test_refusal_as_the_streams_first_event_gets_its_status(client):
    # Bedrock accepted the call, then its first frame is an exception (as throttling often is).
    directive = "fail_after=0 fail_with=throttlingException"
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=CLAUDE, messages=say("hi", directive), stream=True)
    assert raised.value.code == "rate_limit_exceeded"
    assert "The emulator failed the stream as asked." in raised.value.message


def test_wrong_key_is_authentication_error(server):
    bad = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        bad.models.list()
    assert raised.value.code == "invalid_api_key"
    assert "not-the-key" not in raised.value.response.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no key", "not a Bearer key"],
)
def test_missing_key_is_401_in_openai_shape(server, headers):
    status, _, data = server.request(
        "/v1/chat/completions", {"model": CLAUDE, "messages": say("hi")}, headers=headers, key=None
    )
    assert status == 401
    error = json.loads(data)["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert "Bearer" in error["message"]


def test_x_api_key_is_accepted(server):
    status, _, data = server.request("/v1/models", method="GET", key=None, headers={"x-api-key": TEST_KEY})
    assert status == 200 and json.loads(data)["object"] == "list"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "audio", "text": SECRET}]}]}, "messages[0].content[0]"),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
    ids=["temperature above 1", "n above 1", "unsupported part", "required without tools"],
)
def test_invalid_body_is_bad_request_naming_the_param(client, extra, param):
    body = {"model": CLAUDE, "messages": say(SECRET), **extra}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(**body)
    assert raised.value.param == param
    assert raised.value.type == "invalid_request_error"
    assert SECRET not in raised.value.response.text


def test_body_that_is_not_json_is_bad_request(server):
    status, _, data = server.request("/v1/chat/completions", raw=b'{"model": "' + SECRET.encode() + b'", [')
    assert status == 400
    error = json.loads(data)["error"]
    assert error["type"] == "invalid_request_error" and SECRET not in error["message"]


def test_failure_mid_stream_raises_api_error_while_iterating(client, server):
    messages = say("hi", "words=20 fail_after=4")
    stream = client.chat.completions.create(model=CLAUDE, messages=messages, stream=True)
    seen = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert "".join(text or "" for text in seen).split() == ["the", "quick", "brown"]
    assert "The emulator failed the stream as asked." in raised.value.message
    assert raised.value.body["type"] == "api_error"
    # On the wire: the error is the last event, with no [DONE] after it.
    _, _, events = raw_events(server, {"model": CLAUDE, "messages": messages})
    assert json.loads(events[-1].removeprefix(b"data: "))["error"]["code"] is None
    assert b"[DONE]" not in b"".join(events)


def test_leaving_a_stream_cancels_it_upstream(client, emulator):
    stream = client.chat.completions.create(
        model=CLAUDE, messages=say("hi", "words=400 delay_ms=30 id=v1-leave"), stream=True
    )
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 10
    while (record := stream_record(emulator, "v1-leave"))["state"] == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record["state"] == "cancelled"
    assert record["events"] < 100


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/no-such-thing", 404),
        ("GET", "/v1", 404),
        ("GET", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
    ],
)
def test_unknown_paths_and_methods_answer_in_openai_shape(server, method, path, status):
    got, headers, data = server.request(path, method=method)
    assert got == status
    assert set(json.loads(data)["error"]) == {"message", "type", "param", "code"}
    if status == 405:
        assert "allow" in headers


# --- models ----------------------------------------------------------------------------------


def test_models_lists_the_regions_chat_models_with_profile_ids(client):
    models = {model.id: model for model in client.models.list()}
    # us-west-2 is the server's default region: Claude goes by its us. profile, Nova Pro too.
    assert "us.anthropic.claude-3-5-sonnet-20240620-v1:0" in models
    assert (
        "global.anthropic.claude-sonnet-4-20250514-v1:0" in models
        or "us.anthropic.claude-sonnet-4-20250514-v1:0" in models
    )
    assert models["us.anthropic.claude-3-5-sonnet-20240620-v1:0"].owned_by == "anthropic"
    assert all(model.object == "model" and model.created > 0 for model in models.values())
    kinds = {model_id: model.kind for model_id, model in models.items()}  # chat, embedding or image: its route
    assert {kinds[i] for i in kinds if "embed" in i} == {"embedding"} and kinds["amazon.nova-canvas-v1:0"] == "image"


def test_models_region_header_picks_another_region(client):
    european = client.with_options(default_headers={"X-Bedrock-Region": "eu-central-1"})
    ids = [model.id for model in european.models.list()]
    assert "eu.anthropic.claude-3-5-sonnet-20240620-v1:0" in ids
    assert not any(model_id.startswith("us.") for model_id in ids)


def test_models_retrieve_one_and_an_unknown_one(client):
    found = client.models.retrieve("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert found.id == "us.anthropic.claude-3-5-sonnet-20240620-v1:0" and found.owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("gpt-" + SECRET)
    assert raised.value.code == "model_not_found" and SECRET not in raised.value.response.text


def test_models_in_a_region_bedrock_refuses(client):
    refused = client.with_options(default_headers={"X-Bedrock-Region": "me-south-1"})
    with pytest.raises(openai.PermissionDeniedError):
        refused.models.list()


def test_bad_region_header_is_bad_request(client):
    odd = client.with_options(default_headers={"X-Bedrock-Region": "not a region " + SECRET})
    with pytest.raises(openai.BadRequestError) as raised:
        odd.models.list()
    assert raised.value.param == "X-Bedrock-Region" and SECRET not in raised.value.response.text


# --- embeddings and images -------------------------------------------------------------------


def test_embeddings_float_and_base64_agree(client):
    texts = ["the quick brown fox", "你好 world"]
    floats = client.embeddings.create(
        model="amazon.titan-embed-text-v2:0", input=texts, dimensions=256, encoding_format="float"
    )
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    decoded = client.embeddings.create(model="amazon.titan-embed-text-v2:0", input=texts, dimensions=256)
    assert [item.index for item in floats.data] == [0, 1]
    for plain, packed in zip(floats.data, decoded.data, strict=True):
        assert len(plain.embedding) == len(packed.embedding) == 256
        assert math.isclose(sum(v * v for v in plain.embedding), 1.0, rel_tol=1e-4)
        assert all(
            math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
            for a, b in zip(plain.embedding, packed.embedding, strict=True)
        )
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == 6 and floats.usage.total_tokens == 6


def test_cohere_embeddings_in_batches_keep_their_order(client):
    texts = [f"text number {i}" for i in range(100)]  # Cohere takes 96 a call: two calls
    answer = client.embeddings.create(model="cohere.embed-english-v3", input=texts, encoding_format="float")
    assert [item.index for item in answer.data] == list(range(100))
    single = client.embeddings.create(model="cohere.embed-english-v3", input=texts[97], encoding_format="float")
    assert single.data[0].embedding == answer.data[97].embedding
    assert answer.usage.prompt_tokens == 300


def test_embeddings_with_a_chat_model_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model=CLAUDE, input="hi")
    assert raised.value.param == "model"


def test_images_generate_b64_json(client):
    answer = client.images.generate(
        model="amazon.nova-canvas-v1:0", prompt="a lighthouse", size="512x512", response_format="b64_json"
    )
    png = base64.b64decode(answer.data[0].b64_json)
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == (512, 512)


def test_images_size_the_model_cannot_draw(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="amazon.titan-image-generator-v2:0", prompt="a lighthouse", size="333x333")
    assert raised.value.param == "size"


# --- the OpenAPI document describes what /v1 answers ----------------------------------------

CHAT = "/v1/chat/completions"
# name -> (method, path, body, key, the status it answers with)
KNOWN_ANSWERS = {
    "chat": ("POST", CHAT, {"model": CLAUDE, "messages": say("hi")}, TEST_KEY, 200),
    "chat stream": ("POST", CHAT, {"model": CLAUDE, "messages": say("hi"), "stream": True}, TEST_KEY, 200),
    "chat refused": ("POST", CHAT, {"model": CLAUDE, "messages": say("x", "error=access")}, TEST_KEY, 403),
    "chat bad body": ("POST", CHAT, {"model": CLAUDE, "messages": []}, TEST_KEY, 400),
    "chat wrong key": ("POST", CHAT, {"model": CLAUDE, "messages": say("hi")}, "wrong", 401),
    "models": ("GET", "/v1/models", None, TEST_KEY, 200),
    "unknown model": ("GET", "/v1/models/nope", None, TEST_KEY, 404),
    "embeddings": ("POST", "/v1/embeddings", {"model": "amazon.titan-embed-text-v2:0", "input": "hi"}, TEST_KEY, 200),
    "images": (
        "POST",
        "/v1/images/generations",
        {"model": "amazon.nova-canvas-v1:0", "prompt": "a cat"},
        TEST_KEY,
        200,
    ),
}


@pytest.fixture(scope="module")
def documented(server):
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{server.port}/openapi.json")


@pytest.mark.parametrize("answer", KNOWN_ANSWERS)
def test_answers_match_the_openapi_document(documented, answer):
    method, path, body, key, status = KNOWN_ANSWERS[answer]
    headers = {"Authorization": f"Bearer {key}"}
    extra = {} if body is None else {"body": body, "media_type": "application/json"}
    template = "/v1/models/{model_id}" if path.startswith("/v1/models/") else path
    params = {"path_parameters": {"model_id": path.rsplit("/", 1)[1]}} if template != path else {}
    case = documented[template][method].Case(headers=headers, **params, **extra)
    response = case.call(timeout=20)
    try:
        case.validate_response(
            response,
            checks=[response_schema_conformance, status_code_conformance, content_type_conformance],
            headers=headers,
        )
    except (Failure, FailureGroup) as error:
        # schemathesis reads a text/event-stream schema as each event's (OpenAPI 3.2); in this 3.0
        # document it is the whole body's, a string, as for the /api chat routes.
        found = [each for each in getattr(error, "exceptions", [error]) if each.title != "SSE event violates schema"]
        assert not found, [f"{each.code} {each.title}" for each in found]
    assert response.status_code == status


# --- per-person keys: limits as the SDKs understand them -------------------------------------


def _create_key(env, name, *options):
    made = flask_keys({**os.environ, **env}, "create", name, *options)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def keyed(emulator, tmp_path_factory):
    """A server on its own key store, with per-person keys made by the operator's CLI."""
    path = tmp_path_factory.mktemp("v1-keys") / "keys.db"
    env = {
        **emulator_env(emulator),
        "API_KEY": TEST_KEY,
        "SWIFTCHAT_STORE": f"sqlite:///{path}",
        "SWIFTCHAT_STORE_TIMEOUT": "0.5",
        "BEDROCK_MAX_ATTEMPTS": "1",
    }
    keys = {
        "rpm": _create_key(env, "one-a-minute", "--rpm", "1"),
        "budget": _create_key(env, "tiny-budget", "--tokens-per-day", "1"),
        "patient": _create_key(env, "patient", "--rpm", "1000"),
    }
    live = Server(env)
    live.keys, live.store_path = keys, path
    yield live
    live.stop()


def _sdk(server, key):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=key, max_retries=0, timeout=30)


def test_over_the_request_rate_is_rate_limit_error(keyed):
    with _sdk(keyed, keyed.keys["rpm"]) as sdk:
        assert sdk.chat.completions.create(model=CLAUDE, messages=say("hi")).choices[0].message.content
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.chat.completions.create(model=CLAUDE, messages=say("hi"), stream=True)
    error = raised.value
    assert error.code == "rate_limit_exceeded" and error.type == "rate_limit_exceeded"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert "x-should-retry" not in error.response.headers  # a retry after Retry-After works


def test_a_spent_daily_budget_is_insufficient_quota_and_not_retried(keyed):
    with _sdk(keyed, keyed.keys["budget"]) as sdk:
        sdk.chat.completions.create(model=CLAUDE, messages=say("hi"))  # admitted: nothing spent yet
        deadline = time.monotonic() + 5
        while True:  # the tokens are written to the store just after the answer
            try:
                sdk.embeddings.create(model="amazon.titan-embed-text-v2:0", input="hi")
            except openai.RateLimitError as error:
                raised = error
                break
            assert time.monotonic() < deadline, "the budget was never enforced"
            time.sleep(0.05)
    assert raised.code == "insufficient_quota" and raised.type == "insufficient_quota"
    assert raised.response.headers["x-should-retry"] == "false"
    assert int(raised.response.headers["retry-after"]) > 0


def test_a_store_that_is_down_is_503_for_personal_keys(keyed):
    holder = sqlite3.connect(keyed.store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with _sdk(keyed, keyed.keys["patient"]) as sdk, pytest.raises(openai.InternalServerError) as raised:
            sdk.models.list()
        assert raised.value.status_code == 503 and raised.value.type == "api_error"
        with _sdk(keyed, TEST_KEY) as sdk:
            assert sdk.models.list().data  # the shared key needs no store
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- nothing the caller sent in the log ---------------------------------------------------------


def test_log_never_holds_the_callers_text_or_pictures(server, client):
    """After the tests above, a picture chat and a refused chat, the server's log holds neither SECRET nor PICTURE."""
    answer = client.chat.completions.create(model=CLAUDE, messages=_with_picture(SECRET + ' [[emulator reply="ok"]]'))
    assert answer.choices[0].message.content == "ok"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CLAUDE, messages=_with_picture(SECRET + " [[emulator error=validation]]"))
    time.sleep(0.2)  # let the worker's last lines reach the log file
    log = server.output()
    assert "/v1/chat/completions" in log  # the requests were logged: there was a log to leak into
    encoded = base64.b64encode(PICTURE).decode()
    for private in (SECRET, encoded, encoded.rstrip("=")):
        assert private not in log
