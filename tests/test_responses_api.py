"""POST /v1/responses driven by real clients: the ``openai`` SDK, the OpenAI Agents SDK and the Codex CLI,
through gunicorn and the emulator."""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time

import openai
import pytest
import schemathesis
from conftest import ROOT, TEST_KEY, Server, access_lines, emulator_calls, emulator_env, flask_keys, stream_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from pydantic import BaseModel
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from swiftchat_api.emulator import images
from swiftchat_api.exceptions import ApiError
from swiftchat_api.oai import responses
from swiftchat_api.oai.chat import AnswerTool
from swiftchat_api.oai.responses_schema import ResponsesRequest
from swiftchat_api.oai.responses_stream import ResponsesStream

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
THINKING_CLAUDE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
STRUCTURED_CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # outputConfig taken natively
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
ODD_TEXT = '}{ 你好 🎉 {"a": 1} done'


def say(text, directive=""):
    """A user's text, with an emulator directive when given."""
    return f"{text} [[emulator {directive}]]" if directive else text


def sse(data):
    """(event name, parsed data) of each server-sent event in a raw body; keep-alive comments as (":", text)."""
    events = []
    for block in data.split(b"\n\n"):
        if not block:
            continue
        if block.startswith(b":"):
            events.append((":", block.decode()))
            continue
        lines = dict(line.split(b": ", 1) for line in block.split(b"\n"))
        events.append((lines[b"event"].decode(), json.loads(lines[b"data"])))
    return events


def raw_stream(server, body):
    """(status, the events) of a streamed response read straight off the socket."""
    status, headers, data = server.request("/v1/responses", {**body, "stream": True})
    assert status == 200, data[:300]
    assert headers["content-type"].startswith("text/event-stream")
    return sse(data)


# --- answers -----------------------------------------------------------------------------------


def test_whole_response_holds_the_text_usage_and_the_request(client):
    answer = client.responses.create(
        model=CLAUDE,
        input=say("hi", f"reply={json.dumps(ODD_TEXT, ensure_ascii=False)} cache_read=7"),
        instructions="Be brief.",
        metadata={"ticket": "42"},
        max_output_tokens=300,
        temperature=0.5,
    )
    assert answer.object == "response" and answer.id.startswith("resp_")
    assert answer.status == "completed" and answer.error is None
    assert answer.output_text == ODD_TEXT
    assert [item.type for item in answer.output] == ["message"]
    assert answer.output[0].role == "assistant" and answer.output[0].status == "completed"
    assert answer.model == CLAUDE and answer.instructions == "Be brief." and answer.metadata == {"ticket": "42"}
    assert answer.max_output_tokens == 300 and answer.temperature == 0.5
    usage = answer.usage
    assert usage.output_tokens == len(ODD_TEXT.split())
    assert usage.input_tokens_details.cached_tokens == 7 and usage.input_tokens > 7
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_whole_response_reaches_bedrock_as_converse(client, emulator):
    client.responses.create(model=CLAUDE, input=say("hi", "id=whole-call"), instructions="Be brief.",
                            max_output_tokens=300, top_p=0.9)  # fmt: skip
    call = next(call for call in reversed(emulator_calls(emulator)) if "whole-call" in json.dumps(call["body"]))
    assert call["operation"] == "converse" and call["modelId"] == CLAUDE
    assert call["body"]["system"] == [{"text": "Be brief."}]
    assert call["body"]["inferenceConfig"] == {"maxTokens": 300, "topP": 0.9}


def test_streamed_response_is_the_sequence_openais_parsers_expect(client):
    stream = client.responses.create(
        model=CLAUDE, input=say("hi", f"reply={json.dumps(ODD_TEXT, ensure_ascii=False)}"), stream=True
    )
    events = list(stream)
    kinds = [event.type for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas == len(ODD_TEXT.split())  # the words arrived as they came, not in one piece
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(event.delta for event in events if event.type == "response.output_text.delta") == ODD_TEXT
    item_id = events[2].item.id
    assert {event.item_id for event in events if hasattr(event, "item_id")} == {item_id}
    final = events[-1].response
    assert final.status == "completed" and final.output_text == ODD_TEXT and final.output[0].id == item_id
    assert final.id == events[0].response.id and events[0].response.status == "in_progress"
    assert final.usage.output_tokens == deltas


def test_stream_helper_accumulates_to_the_final_response(client):
    with client.responses.stream(model=CLAUDE, input=say("hi", "words=12"), tools=[WEATHER]) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(texts) and len(final.output_text.split()) == 12


def test_raw_stream_has_event_names_and_utf8_as_is(server):
    events = raw_stream(server, {"model": CLAUDE, "input": say("hi", f"reply={json.dumps(ODD_TEXT)}")})
    assert all(name == data["type"] for name, data in events)
    assert events[-1][0] == "response.completed"
    _, _, data = server.request("/v1/responses", {"model": CLAUDE, "input": say("hi", "reply=你好"), "stream": True})
    assert "你好".encode() in data and b"\\u" not in data


def test_keepalive_comments_fill_a_silence(server, client):
    events = raw_stream(server, {"model": CLAUDE, "input": say("hi", 'first_delay_ms=1500 reply="Done"')})
    names = [name for name, _ in events]
    assert names.count(":") >= 2 and {text for name, text in events if name == ":"} == {": keep-alive"}
    assert names.index(":") < names.index("response.output_text.delta")  # in the silence before the text
    final = client.responses.create(model=CLAUDE, input=say("hi", 'first_delay_ms=1500 reply="Done"'), stream=True)
    assert [event.response.output_text for event in final if event.type == "response.completed"] == ["Done"]


# --- tools ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_function_calls_come_as_items_after_the_text(client, stream):
    directive = 'tools=get_weather,get_time reply="Checking both." args=\'{"city": "Paris"}\''
    request = {"model": CLAUDE, "input": say("weather?", directive), "tools": [WEATHER, TIME]}
    if stream:
        with client.responses.stream(**request) as events:
            added = [event.item.type for event in events if event.type == "response.output_item.added"]
            answer = events.get_final_response()
        assert added == ["message", "function_call", "function_call"]
    else:
        answer = client.responses.create(**request)
    assert [item.type for item in answer.output] == ["message", "function_call", "function_call"]
    assert answer.output_text == "Checking both."
    calls = answer.output[1:]
    assert [call.name for call in calls] == ["get_weather", "get_time"]
    assert all(json.loads(call.arguments) == {"city": "Paris"} for call in calls)
    assert all(call.call_id.startswith("tooluse_") and call.id.startswith("fc_") for call in calls)
    assert len({call.call_id for call in calls}) == 2


def test_tool_loop_sends_the_results_back(client, emulator):
    first = client.responses.create(
        model=CLAUDE, input=say("weather?", "tools=get_weather"), tools=[WEATHER], store=False
    )
    call = first.output[0]
    assert call.type == "function_call"
    history = [
        {"role": "user", "content": say("weather?", "tools=get_weather")},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 °C"},
    ]
    second = client.responses.create(model=CLAUDE, input=history, tools=[WEATHER], store=False)
    assert second.output_text == "Tool results received: Sunny, 21 °C"
    sent = emulator_calls(emulator)[-1]["body"]["messages"]
    assert [message["role"] for message in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][0]["toolUse"]["toolUseId"] == call.call_id
    assert sent[2]["content"][0]["toolResult"]["toolUseId"] == call.call_id


PICTURE = images.png(2, 2, "a function's picture")


def test_a_function_output_with_an_image_reaches_bedrock_in_the_tool_result(client, emulator):
    """As Codex's view_image answers: the output is a list of parts, text and a picture."""
    picture = "data:image/png;base64," + base64.b64encode(PICTURE).decode()
    output = [{"type": "input_text", "text": "Here it is"}, {"type": "input_image", "image_url": picture}]
    history = [
        {"role": "user", "content": "look"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": output},
    ]
    answer = client.responses.create(model=CLAUDE, input=history, tools=[WEATHER], store=False)
    assert answer.output_text == "Tool results received: Here it is"
    result = emulator_calls(emulator)[-1]["body"]["messages"][2]["content"][0]["toolResult"]
    assert result["content"][0] == {"text": "Here it is"}
    assert base64.b64decode(result["content"][1]["image"]["source"]["bytes"]) == PICTURE
    remote = [*history[:2], {**history[2], "output": [{"type": "input_image", "image_url": "https://x.test/a.png"}]}]
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=CLAUDE, input=remote, tools=[WEATHER])
    assert raised.value.param == "input[2].output[0].image_url"


def test_named_tool_choice_forces_that_call(client):
    answer = client.responses.create(
        model=CLAUDE, input="anything", tools=[WEATHER, TIME], tool_choice={"type": "function", "name": "get_time"}
    )
    assert [(item.type, item.name) for item in answer.output] == [("function_call", "get_time")]


def test_tool_choice_none_calls_nothing(client):
    answer = client.responses.create(
        model=CLAUDE, input=say("weather?", "tools=get_weather"), tools=[WEATHER], tool_choice="none"
    )
    assert [item.type for item in answer.output] == ["message"]


# --- structured output ----------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


@pytest.mark.parametrize("model", [CLAUDE, STRUCTURED_CLAUDE], ids=["by answer tool", "native outputConfig"])
def test_parse_gives_the_pydantic_model(client, emulator, model):
    answer = client.responses.parse(model=model, input=say("Paris weather?", "id=parse-call"), text_format=Weather)
    assert isinstance(answer.output_parsed, Weather)
    assert [item.type for item in answer.output] == ["message"]
    call = next(call for call in reversed(emulator_calls(emulator)) if "parse-call" in json.dumps(call["body"]))
    if model == STRUCTURED_CLAUDE:
        schema = call["body"]["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
        assert schema["name"] == "Weather" and "temperature_c" in json.loads(schema["schema"])["properties"]
    else:
        assert call["body"]["toolConfig"]["toolChoice"] == {"tool": {"name": "Weather"}}


def test_streamed_parse_gives_the_pydantic_model(client):
    with client.responses.stream(model=CLAUDE, input="Paris weather?", text_format=Weather) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert isinstance(final.output_parsed, Weather)
    assert Weather.model_validate_json("".join(deltas)) == final.output_parsed


def test_json_object_format_answers_a_json_object(client):
    answer = client.responses.create(model=CLAUDE, input="a JSON please", text={"format": {"type": "json_object"}})
    assert isinstance(json.loads(answer.output_text), dict)


# --- reasoning -----------------------------------------------------------------------------------


def test_reasoning_streams_as_a_summarised_reasoning_item(client):
    stream = client.responses.create(
        model=THINKING_CLAUDE,
        input=say("think", "reasoning=5 reply=ok"),
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    summary = "".join(event.delta for event in events if event.type == "response.reasoning_summary_text.delta")
    assert len(summary.split()) == 5
    final = events[-1].response
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == summary
    assert reasoning.encrypted_content
    assert final.output_text == "ok"
    assert 0 < final.usage.output_tokens_details.reasoning_tokens <= final.usage.output_tokens


def test_reasoning_in_a_whole_answer_is_an_item_before_the_message(client):
    answer = client.responses.create(
        model=THINKING_CLAUDE,
        input=say("think", "reasoning=6 reply=ok"),
        reasoning={"effort": "low", "summary": "auto"},
    )
    assert [item.type for item in answer.output] == ["reasoning", "message"]
    assert len(answer.output[0].summary[0].text.split()) == 6 and answer.output[0].encrypted_content
    assert answer.output_text == "ok" and answer.usage.output_tokens_details.reasoning_tokens > 0


def test_reasoning_without_a_summary_asked_shows_none_but_keeps_it(client):
    answer = client.responses.create(
        model=THINKING_CLAUDE, input=say("think", "reasoning=5 reply=ok"), reasoning={"effort": "low"}, stream=True
    )
    events = list(answer)
    assert "response.reasoning_summary_text.delta" not in [event.type for event in events]
    reasoning = events[-1].response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary == [] and reasoning.encrypted_content


def test_reasoning_goes_back_signed_in_a_tool_loop(client, emulator):
    """The reasoning item sent back reaches Bedrock as the signed thinking block of the assistant's turn."""
    first = client.responses.create(
        model=THINKING_CLAUDE,
        input=say("weather?", "tools=get_weather reasoning=4"),
        tools=[WEATHER],
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
    )
    output = [event.response for event in first if event.type == "response.completed"][0].output
    assert [item.type for item in output] == ["reasoning", "function_call"]
    history = [
        {"role": "user", "content": say("weather?", "tools=get_weather reasoning=4")},
        *[item.model_dump(exclude_none=True) for item in output],
        {"type": "function_call_output", "call_id": output[1].call_id, "output": "Sunny"},
    ]
    second = client.responses.create(
        model=THINKING_CLAUDE, input=history, tools=[WEATHER], reasoning={"effort": "low", "summary": "auto"}
    )
    assert second.output_text == "Tool results received: Sunny"  # the emulator checks signatures, as Claude does
    call = emulator_calls(emulator)[-1]["body"]
    assert call["additionalModelRequestFields"]["reasoning_config"]["type"] == "enabled"  # thinking in the tool loop
    assistant = call["messages"][1]["content"]
    assert assistant[0]["reasoningContent"]["reasoningText"]["text"] == output[0].summary[0].text
    assert "toolUse" in assistant[1]


def test_a_tool_loop_continued_by_previous_response_id_keeps_thinking(client, emulator):
    """Only the function's output is sent: the stored turn (its reasoning item, its call) goes back to Bedrock."""
    first = client.responses.create(
        model=THINKING_CLAUDE,
        input=say("weather?", "tools=get_weather reasoning=4"),
        tools=[WEATHER],
        reasoning={"effort": "low"},
        stream=True,
    )
    stored = [event.response for event in first if event.type == "response.completed"][0]
    call = stored.output[1]
    second = client.responses.create(
        model=THINKING_CLAUDE,
        previous_response_id=stored.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Rain"}],
        tools=[WEATHER],
        reasoning={"effort": "low"},
    )
    assert second.output_text == "Tool results received: Rain" and second.previous_response_id == stored.id
    sent = emulator_calls(emulator)[-1]["body"]
    assert sent["additionalModelRequestFields"]["reasoning_config"]["type"] == "enabled"
    assert [list(block) for block in sent["messages"][1]["content"]] == [["reasoningContent"], ["toolUse"]]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "web_search"),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type", "code_interpreter"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice", "file_search"),
        ({"truncation": "auto"}, "truncation", "never drops"),
        ({"background": True}, "background", "Background"),
        ({"temperature": 1.5}, "temperature", "0 to 1"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "item_reference"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0]", "Unsupported input item"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x.test/a.png"}]}]},
            "input[0].content[0].image_url",
            "data URL",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
            "input_file",
        ),  # fmt: skip
        (
            {"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]},
            "input[0]",
            "answers no function_call",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "not json"},
                    {"type": "function_call_output", "call_id": "c1", "output": "x"},
                ]
            },
            "input[1].arguments",
            "JSON object",
        ),  # fmt: skip
        (
            {"input": [{"type": "reasoning", "summary": [], "encrypted_content": "someone else's"}]},
            "input[0].encrypted_content",
            "not made by this server",
        ),
    ],
)
def test_what_the_server_cannot_do_is_a_bad_request_naming_it(client, extra, param, words):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(**{"model": CLAUDE, "input": "hi", **extra})
    assert raised.value.param == param
    assert words in raised.value.message
    assert raised.value.type == "invalid_request_error"


def test_bedrock_refusal_is_the_matching_sdk_error(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.create(model=CLAUDE, input=say("hi", "error=notfound"), stream=True)
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=CLAUDE, input=say("hi", "error=throttling"))


def test_failure_mid_stream_is_response_failed(client):
    events = list(client.responses.create(model=CLAUDE, input=say("hi", "words=20 fail_after=4"), stream=True))
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and "The emulator failed the stream as asked." in failed.error.message
    assert failed.output[0].status == "incomplete" and failed.output[0].content[0].text.split() == [
        "the", "quick", "brown"]  # fmt: skip
    assert [event.sequence_number for event in events] == list(range(len(events)))
    with pytest.raises(RuntimeError), client.responses.stream(model=CLAUDE, input=say("hi", "fail_after=4")) as s:
        s.get_final_response()


@pytest.mark.parametrize(
    ("reason", "why"), [("max_tokens", "max_output_tokens"), ("content_filtered", "content_filter")]
)
def test_a_cut_answer_is_incomplete_with_its_reason(client, reason, why):
    whole = client.responses.create(model=CLAUDE, input=say("hi", f"words=5 stop_reason={reason}"))
    assert whole.status == "incomplete" and whole.incomplete_details.reason == why
    events = list(client.responses.create(model=CLAUDE, input=say("hi", f"stop_reason={reason}"), stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.incomplete_details.reason == why


def test_leaving_a_stream_cancels_it_upstream(client, emulator):
    stream = client.responses.create(model=CLAUDE, input=say("hi", "words=400 delay_ms=30 id=resp-leave"), stream=True)
    for _, _event in zip(range(6), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 10
    while (record := stream_record(emulator, "resp-leave"))["state"] == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record["state"] == "cancelled"
    assert record["events"] < 100


# --- keys, limits and usage, as on chat -----------------------------------------------------------


def test_usage_is_recorded_for_the_key_whole_and_streamed(server, client):
    client.responses.create(model=CLAUDE, input=say("hi", "words=7 id=usage-whole"))
    list(client.responses.create(model=CLAUDE, input=say("hi", "words=9"), stream=True))
    deadline = time.monotonic() + 10
    while len(lines := [line for line in access_lines(server) if line["route"] == "/v1/responses"
                        and line["output_tokens"] in (7, 9)]) < 2 and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.05)
    assert sorted(line["output_tokens"] for line in lines[-2:]) == [7, 9]
    assert all(line["model"] == CLAUDE and line["input_tokens"] > 0 for line in lines[-2:])


@pytest.fixture(scope="module")
def keyed(emulator, tmp_path_factory):
    """A server on its own key store, with a per-person key of one request a minute."""
    path = tmp_path_factory.mktemp("responses-keys") / "keys.db"
    env = {**emulator_env(emulator), "API_KEY": TEST_KEY, "SWIFTCHAT_STORE": f"sqlite:///{path}",
           "BEDROCK_MAX_ATTEMPTS": "1"}  # fmt: skip
    made = flask_keys({**os.environ, **env}, "create", "one-a-minute", "--rpm", "1")
    assert made.returncode == 0, made.stderr
    live = Server(env)
    live.key = made.stdout.strip().splitlines()[-1]
    yield live
    live.stop()


def test_a_personal_keys_limit_holds_on_responses(keyed):
    url = f"http://127.0.0.1:{keyed.port}/v1"
    with openai.OpenAI(base_url=url, api_key=keyed.key, max_retries=0, timeout=30) as sdk:
        assert sdk.responses.create(model=CLAUDE, input=say("hi", "reply=ok")).output_text == "ok"
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.responses.create(model=CLAUDE, input="hi", stream=True)
    assert raised.value.code == "rate_limit_exceeded" and int(raised.value.response.headers["retry-after"]) >= 1


# --- the OpenAPI document describes what /v1/responses answers --------------------------------------

DOCUMENTED = {
    "whole": ({"model": CLAUDE, "input": "hi"}, TEST_KEY, 200),
    "streamed": ({"model": CLAUDE, "input": "hi", "stream": True}, TEST_KEY, 200),
    "refused by Bedrock": ({"model": CLAUDE, "input": say("x", "error=access")}, TEST_KEY, 403),
    "a built-in tool": ({"model": CLAUDE, "input": "hi", "tools": [{"type": "web_search"}]}, TEST_KEY, 400),
    "wrong key": ({"model": CLAUDE, "input": "hi"}, "wrong", 401),
}


@pytest.fixture(scope="module")
def documented(server):
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{server.port}/openapi.json")


@pytest.mark.parametrize("answer", DOCUMENTED)
def test_answers_match_the_openapi_document(documented, answer):
    body, key, status = DOCUMENTED[answer]
    headers = {"Authorization": f"Bearer {key}"}
    case = documented["/v1/responses"]["POST"].Case(headers=headers, body=body, media_type="application/json")
    response = case.call(timeout=20)
    checks = [response_schema_conformance, status_code_conformance, content_type_conformance]
    try:
        case.validate_response(response, checks=checks, headers=headers)
    except (Failure, FailureGroup) as error:
        # schemathesis reads a text/event-stream schema as each event's (OpenAPI 3.2); in this 3.0 document it is
        # the whole body's, a string, as for the other streaming routes.
        found = [each for each in getattr(error, "exceptions", [error]) if each.title != "SSE event violates schema"]
        assert not found, [f"{each.code} {each.title}" for each in found]
    assert response.status_code == status


# --- whatever arrives: a 400 or an answer, never a crash (in process, no server) --------------------

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(max_size=4),
    st.sampled_from(
        ["message", "function_call", "function_call_output", "reasoning", "user", "assistant", "developer", "c1",
         "input_text", "input_image", "output_text", "refusal", "{}", "data:image/png;base64,iVBORw0KGgo=",
         responses.seal("thought", "sig", [b"\x00"]), responses.SEALED + "!"]
    ),
)  # fmt: skip
_KEYS = st.sampled_from(
    ["type", "role", "content", "call_id", "name", "arguments", "output", "summary", "encrypted_content", "text",
     "image_url", "id", "file_id"]
)  # fmt: skip
_JSON = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
                     max_leaves=25)  # fmt: skip
_SCHEMA = ResponsesRequest()


@settings(max_examples=400, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(_JSON, min_size=1, max_size=6), tools=_JSON, choice=_JSON, text=_JSON)
def test_any_input_items_are_translated_or_refused(items, tools, choice, text):
    body = {"model": CLAUDE, "input": items, "tools": tools, "tool_choice": choice, "text": text}
    try:
        turn = responses.Turn(_SCHEMA.load(body), [], "resp_" + "0" * 48)
    except (ValidationError, ApiError):
        return
    assert turn.args["messages"] and json.dumps(turn.input)


_INDEX = st.integers(0, 3)
_EVENTS = st.one_of(
    st.just({"messageStart": {"role": "assistant"}}),
    st.builds(lambda i, t: {"contentBlockDelta": {"contentBlockIndex": i, "delta": {"text": t}}}, _INDEX, st.text()),
    st.builds(lambda i, t: {"contentBlockDelta": {"contentBlockIndex": i, "delta": {"reasoningContent": {"text": t}}}},
              _INDEX, st.text()),
    st.builds(lambda i, d: {"contentBlockDelta": {"contentBlockIndex": i, "delta": {"reasoningContent": d}}},
              _INDEX, st.sampled_from([{"signature": "s"}, {"redactedContent": b"\x00"}])),
    st.builds(lambda i, n: {"contentBlockStart": {"contentBlockIndex": i,
                                                  "start": {"toolUse": {"toolUseId": "t", "name": n}}}},
              _INDEX, st.sampled_from(["f", "Answer"])),
    st.builds(lambda i, t: {"contentBlockDelta": {"contentBlockIndex": i, "delta": {"toolUse": {"input": t}}}},
              _INDEX, st.text()),
    st.builds(lambda i: {"contentBlockStop": {"contentBlockIndex": i}}, _INDEX),
    st.builds(lambda r: {"messageStop": {"stopReason": r}},
              st.sampled_from(["end_turn", "tool_use", "max_tokens", "content_filtered", "malformed_tool_use"])),
    st.just({"metadata": {"usage": {"inputTokens": 3, "outputTokens": 5}}}),
)  # fmt: skip


@settings(max_examples=400, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    events=st.lists(_EVENTS, max_size=16),
    answer_tool=st.sampled_from([None, AnswerTool("Answer", True), AnswerTool("Answer", False)]),
    fails=st.booleans(),
)
def test_any_bedrock_stream_gives_numbered_events_and_one_ending_last(events, answer_tool, fails):
    """Whatever order Bedrock's events come in, each SSE event is named as its type, numbered from 0, and one
    terminal event ends the stream."""
    body = _SCHEMA.load({"model": CLAUDE, "input": "hi", "reasoning": {"summary": "auto"}})
    dialect = ResponsesStream(responses.draft(body, "resp_x", 0), answer_tool)
    written = b"".join(dialect.event(event) for event in events)
    written += dialect.error(RuntimeError("cut")) if fails else dialect.end()
    parsed = sse(written)
    assert all(name == data["type"] for name, data in parsed)
    assert [data["sequence_number"] for _, data in parsed] == list(range(len(parsed)))
    endings = [name for name, _ in parsed if name in ("response.completed", "response.incomplete", "response.failed")]
    assert endings == [parsed[-1][0]]
    opened = [data["output_index"] for name, data in parsed if name == "response.output_item.added"]
    closed = [data["output_index"] for name, data in parsed if name == "response.output_item.done"]
    assert opened == list(range(len(opened))) and sorted(closed) == opened


# --- the OpenAI Agents SDK -------------------------------------------------------------------------


def _agents(server):
    """Two agents on this server: a triage agent that looks up the weather and hands off, a booking agent."""
    from agents import Agent, ModelSettings, OpenAIResponsesModel, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    sdk = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=TEST_KEY, max_retries=0)
    model = OpenAIResponsesModel(model=CLAUDE, openai_client=sdk)
    ran = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        ran.append(("get_weather", city))
        return f"Sunny in {city}"

    @function_tool
    def book_hotel(city: str) -> str:
        """Book a hotel in a city."""
        ran.append(("book_hotel", city))
        return f"Hotel booked in {city}"

    booking = Agent(
        name="Booking agent",
        instructions="Book what the traveller asks for.",
        model=model,
        tools=[book_hotel],
        model_settings=ModelSettings(tool_choice="book_hotel"),  # its first turn books; the SDK then resets it
    )
    triage = Agent(
        name="Triage agent",
        instructions="Look up the weather, then hand over to the booking agent.",
        model=model,
        tools=[get_weather],
        handoffs=[booking],
    )
    return triage, booking, ran, sdk


# The triage agent calls its tool and the handoff in one turn; the booking agent is forced to book,
# then answers (the emulator's answer after tool results quotes them).
TRIP = say("A trip to Paris", 'tools=get_weather,transfer_to_booking_agent args=\'{"city": "Paris"}\'')


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
def test_agents_sdk_runs_a_two_tool_loop_with_a_handoff(server, streamed):
    from agents import Runner

    triage, booking, ran, sdk = _agents(server)

    async def run():
        try:
            if not streamed:
                return await Runner.run(triage, TRIP)
            result = Runner.run_streamed(triage, TRIP)
            async for _event in result.stream_events():
                pass
            return result
        finally:
            await sdk.close()

    result = asyncio.run(run())
    assert [name for name, _ in ran] == ["get_weather", "book_hotel"] and ran[0][1] == "Paris"
    assert result.last_agent is booking
    # The booking agent's forced call has arguments the model made up from the tool's schema.
    assert result.final_output == f"Tool results received: Hotel booked in {ran[1][1]}"


# --- LangChain ---------------------------------------------------------------------------------------


def test_langchain_chat_openai_on_the_responses_api(server):
    from langchain_openai import ChatOpenAI

    # A client of its own, closed after: a kept-alive connection would hold up the server's graceful stop.
    with openai.DefaultHttpxClient() as http:
        llm = ChatOpenAI(model=CLAUDE, base_url=f"http://127.0.0.1:{server.port}/v1", api_key=TEST_KEY,
                         use_responses_api=True, max_retries=0, http_client=http)  # fmt: skip
        assert llm.invoke(say("hi", "reply=hello")).text == "hello"
        chunks = list(llm.stream(say("hi", "words=5")))
        assert "".join(chunk.text for chunk in chunks).split() == ["the", "quick", "brown", "fox", "jumps"]

        def get_weather(city: str) -> str:
            """The weather in a city."""
            return "sunny"

        asked = say("weather?", 'tools=get_weather args=\'{"city": "Oslo"}\'')
        called = llm.bind_tools([get_weather]).invoke(asked)
    assert [(call["name"], call["args"]) for call in called.tool_calls] == [("get_weather", {"city": "Oslo"})]


# --- the Codex CLI ----------------------------------------------------------------------------------

CODEX_VERSION = "0.169.0"
CODEX_DIR = ROOT / ".pytest_cache" / "codex"  # .ci/run installs it here too


@pytest.fixture(scope="module")
def codex():
    """The Codex CLI, installed from npm as a user would (``npm install @openai/codex``)."""
    binary = CODEX_DIR / "node_modules" / ".bin" / "codex"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: the Codex CLI comes from the npm registry")
        installed = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(CODEX_DIR),
             f"@openai/codex@{CODEX_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr[-2000:]
    return binary


def test_codex_exec_completes_a_task_with_a_shell_call(server, codex, tmp_path):
    """``codex exec`` with a custom provider (wire_api "responses"): the model runs ``cat`` through Codex's shell
    tool, and its answer quotes what the command printed."""
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    secret = f"pass-{os.getpid()}-{time.monotonic_ns()}"
    (work / "note.txt").write_text(secret + "\n")
    (home / "config.toml").write_text(
        f'model = "{CLAUDE}"\nmodel_provider = "swiftchat"\nweb_search = "disabled"\n\n'
        "[agents]\nenabled = false\n\n"
        "[model_providers.swiftchat]\n"
        'name = "swiftchat-api"\n'
        f'base_url = "http://127.0.0.1:{server.port}/v1"\n'
        'env_key = "SWIFTCHAT_API_KEY"\n'
        'wire_api = "responses"\n'
    )
    task = say("What does note.txt say?", 'tools=exec_command args=\'{"cmd": "cat note.txt"}\'')
    done = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "--cd", str(work), task],
        env={**os.environ, "CODEX_HOME": str(home), "SWIFTCHAT_API_KEY": TEST_KEY},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Tool results received:" in done.stdout and secret in done.stdout, done.stdout[-2000:]
