"""/v1/chat/completions inputs OpenAI takes that Bedrock has no word for: the legacy functions API is
read as tools and answered in its own words; log probabilities are refused by name.

Driven by the real ``openai`` SDK through gunicorn and the emulator.
"""

import json

import openai
import pytest
from conftest import emulator_calls
from marshmallow import ValidationError

from swiftchat_api.oai.errors import invalid_body
from swiftchat_api.oai.schemas import ChatCompletionRequest

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def last_converse(emulator):
    return next(call for call in reversed(emulator_calls(emulator)) if call.get("operation") == "converse")


@pytest.mark.parametrize(("extra", "param"), [({"logprobs": True}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs")])
def test_log_probabilities_are_refused_by_name(client, extra, param):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "hi"}], **extra)
    assert refused.value.body["param"] == param
    assert "log probabilities" in refused.value.body["message"]


def test_asking_for_no_log_probabilities_is_fine(client):
    answer = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "hi"}], logprobs=False, top_logprobs=0
    )
    assert answer.choices[0].message.content


def test_legacy_functions_are_offered_as_tools_and_the_call_comes_back_as_function_call(client, emulator):
    answer = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        functions=[WEATHER],
        function_call={"name": "get_weather"},
    )
    sent = last_converse(emulator)["body"]["toolConfig"]
    assert [tool["toolSpec"]["name"] for tool in sent["tools"]] == ["get_weather"]
    assert sent["toolChoice"] == {"tool": {"name": "get_weather"}}
    choice = answer.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments)["city"]
    assert choice.message.tool_calls is None


def test_a_legacy_round_trip_sends_the_result_back_as_a_tool_result(client, emulator):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"role": "function", "name": "get_weather", "content": "Sunny, 24 C"},
    ]
    answer = client.chat.completions.create(model=CLAUDE, messages=messages, functions=[WEATHER])
    assert "Sunny, 24 C" in answer.choices[0].message.content  # the emulator quotes the results it got
    turns = last_converse(emulator)["body"]["messages"]
    call = turns[1]["content"][0]["toolUse"]
    assert (call["name"], call["input"]) == ("get_weather", {"city": "Paris"})
    result = turns[2]["content"][0]["toolResult"]
    assert result["toolUseId"] == call["toolUseId"]
    assert result["content"] == [{"text": "Sunny, 24 C"}]


def test_a_legacy_call_streams_as_function_call_deltas(client):
    stream = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "Weather in Paris? [[emulator tools=get_weather arg_chunk=4]]"}],
        functions=[WEATHER],
        stream=True,
    )
    name, arguments, finish = None, "", None
    for chunk in stream:
        delta = chunk.choices[0].delta
        assert not delta.tool_calls
        if delta.function_call:
            name = delta.function_call.name or name
            arguments += delta.function_call.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and isinstance(json.loads(arguments), dict)
    assert finish == "function_call"


def test_function_call_none_sends_no_tools(client, emulator):
    client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "hi"}], functions=[WEATHER], function_call="none"
    )
    assert "toolConfig" not in last_converse(emulator)["body"]


def _refusal(**body):
    try:
        ChatCompletionRequest().load({"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}], **body})
    except ValidationError as error:
        return invalid_body(error).param
    return None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"functions": [WEATHER], "tools": [{"type": "function", "function": WEATHER}]}, "functions"),
        ({"functions": [WEATHER], "function_call": {"name": "get_time"}}, "function_call"),
        ({"functions": [WEATHER], "function_call": "required"}, "function_call"),
        ({"functions": [{"name": "not valid"}]}, "functions[0].name"),
        ({"functions": "get_weather"}, "functions"),
        ({"function_call": "auto", "tool_choice": "auto"}, "function_call"),
        ({"messages": [{"role": "function", "name": "get_weather", "content": "Sunny"}]}, "messages[0].role"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "function_call": {"name": "get_weather", "arguments": "{}"}},
                    {"role": "function", "name": "get_time", "content": "noon"},
                ]
            },
            "messages[2].name",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "function_call": "x"}]},
            "messages[1].function_call",
        ),
    ],
)
def test_legacy_requests_that_do_not_add_up_are_refused_in_their_own_words(body, param):
    assert _refusal(**body) == param
