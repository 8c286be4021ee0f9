"""Prompt caching: the emulator plays Bedrock's cache, and the server's cache points show in what users see."""

import json
import uuid

import openai
import pytest
from botocore.exceptions import ClientError
from conftest import TEST_KEY, Server, emulator_env, sdk, stream_record

from swiftchat_api import prompt_cache
from swiftchat_api.emulator.cache import PromptCache

ADAPTED_HEADER = "x-swiftchat-adapted"  # what the server says it changed to fit the model
CACHING = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # caches from 1,024 tokens
NOVA = "us.amazon.nova-pro-v1:0"  # caches, but looks back at no block boundary and takes no tool cache point
NOT_CACHING = "anthropic.claude-3-5-sonnet-20240620-v1:0"
POINT = {"cachePoint": {"type": "default"}}
WEATHER = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}


def long_text(words=1500):
    """A text of ``words`` emulator tokens that no other test sends (the emulator's cache lives all session)."""
    salt = uuid.uuid4().hex
    return " ".join(f"{salt}-{i}" for i in range(words))


def said(*blocks):
    return {"role": "user", "content": [{"text": b} if isinstance(b, str) else b for b in blocks]}


def answered(text):
    return {"role": "assistant", "content": [{"text": text}]}


def usage_of(bedrock, model, messages, streaming=False, **more):
    """Bedrock's usage of one call, whole or streamed."""
    if not streaming:
        return bedrock.converse(modelId=model, messages=messages, **more)["usage"]
    events = list(bedrock.converse_stream(modelId=model, messages=messages, **more)["stream"])
    return next(event["metadata"]["usage"] for event in events if "metadata" in event)


def refused(bedrock, model, messages, **more):
    with pytest.raises(ClientError) as caught:
        bedrock.converse(modelId=model, messages=messages, **more)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ValidationException", 400)
    return error["Error"]["Message"]


# --- the emulator's cache, as boto3 sees it ---------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_a_repeated_prefix_is_written_once_then_read(bedrock, streaming):
    system = [{"text": long_text()}, POINT]
    first = usage_of(bedrock, CACHING, [said("Hello")], streaming, system=system)
    second = usage_of(bedrock, CACHING, [said("Something else")], streaming, system=system)
    assert first["cacheWriteInputTokens"] == 1500 and "cacheReadInputTokens" not in first
    assert second["cacheReadInputTokens"] == 1500 and "cacheWriteInputTokens" not in second
    assert second["inputTokens"] == 2  # "Something else": only what follows the cached prefix
    assert second["totalTokens"] == second["inputTokens"] + second["outputTokens"] + 1500


def test_a_changed_prefix_misses(bedrock):
    text = long_text()
    usage_of(bedrock, CACHING, [said("Hi")], system=[{"text": text}, POINT])
    again = usage_of(bedrock, CACHING, [said("Hi")], system=[{"text": text + " changed"}, POINT])
    assert again["cacheWriteInputTokens"] == 1501 and "cacheReadInputTokens" not in again


def test_the_cache_is_per_model(bedrock):
    system = [{"text": long_text()}, POINT]
    usage_of(bedrock, CACHING, [said("Hi")], system=system)
    other = usage_of(bedrock, "us.anthropic.claude-sonnet-4-20250514-v1:0", [said("Hi")], system=system)
    assert other["cacheWriteInputTokens"] == 1500 and "cacheReadInputTokens" not in other


def test_a_prefix_under_the_minimum_is_not_cached_and_the_call_succeeds(bedrock):
    system = [{"text": long_text(1000)}, POINT]  # Claude 3.7 Sonnet caches from 1,024
    for _ in range(2):
        usage = usage_of(bedrock, CACHING, [said("Hi")], system=system)
        assert "cacheWriteInputTokens" not in usage and "cacheReadInputTokens" not in usage
        assert usage["inputTokens"] == 1001


def test_claude_finds_an_earlier_prefix_within_twenty_blocks_of_a_cache_point(bedrock):
    history = [said(long_text()), answered("One.")]
    first = usage_of(
        bedrock, CACHING, [*history[:1], *[{**history[1], "content": [{"text": "One."}, POINT]}], said("x")]
    )
    assert first["cacheWriteInputTokens"] == 1501
    # The next turn marks a later point only: the earlier prefix is found by looking back.
    turn = [*history, said("Two?"), {"role": "assistant", "content": [{"text": "Two."}, POINT]}, said("y")]
    second = usage_of(bedrock, CACHING, turn)
    assert (second["cacheReadInputTokens"], second["cacheWriteInputTokens"]) == (1501, 2)


def test_nova_reads_only_at_its_own_cache_points(bedrock):
    history = [said(long_text()), {"role": "assistant", "content": [{"text": "One."}, POINT]}]
    usage_of(bedrock, NOVA, [*history, said("x")])
    later = [*history[:1], answered("One."), said("Two?"), {"role": "assistant", "content": [{"text": "Two."}, POINT]}]
    missed = usage_of(bedrock, NOVA, [*later, said("y")])
    assert "cacheReadInputTokens" not in missed
    both = [*history, said("Two?"), {"role": "assistant", "content": [{"text": "Deux."}, POINT]}, said("y")]
    hit = usage_of(bedrock, NOVA, both)
    assert (hit["cacheReadInputTokens"], hit["cacheWriteInputTokens"]) == (1501, 2)


def test_tool_cache_points_cache_the_tools(bedrock):
    tools = {"tools": [{"toolSpec": {**WEATHER["toolSpec"], "description": long_text()}}, POINT]}
    first = usage_of(bedrock, CACHING, [said("Hi")], toolConfig=tools)
    second = usage_of(bedrock, CACHING, [said("Other")], toolConfig=tools)
    assert first["cacheWriteInputTokens"] > 1500
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]


@pytest.mark.parametrize(
    ("model", "system", "tools", "says"),
    [
        (NOT_CACHING, [{"text": "S"}, POINT], None, "You invoked an unsupported model or your request did not allow"),
        (CACHING, [{"text": "S"}, POINT, {"text": "T"}, POINT, {"text": "U"}, POINT], [WEATHER, POINT], "Found 5."),
        (NOVA, [{"text": "S"}], [WEATHER, POINT], "#/toolConfig/tools/1: extraneous key [cachePoint] is not permitted"),
        (NOVA, [{"text": "S"}, {"cachePoint": {"type": "default", "ttl": "1h"}}], None, "only supported for Anthropic"),
        (CACHING, [{"text": "S"}, {"cachePoint": {"type": "default", "ttl": "1h"}}], None, "Extra inputs"),
    ],
)
def test_cache_points_bedrock_refuses_are_refused(bedrock, model, system, tools, says):
    more = {"toolConfig": {"tools": tools}} if tools else {}
    message = refused(bedrock, model, [said("Hi"), answered("Yo"), said("x", POINT)], system=system, **more)
    assert says in message


def test_a_maximum_of_four_cache_points_is_bedrocks_wording(bedrock):
    system = [{"text": "S"}, POINT, {"text": "T"}, POINT, {"text": "U"}, POINT, {"text": "V"}, POINT]
    message = refused(bedrock, CACHING, [said("Hi", POINT)], system=system)
    assert message == "A maximum of 4 blocks with cache_control may be provided. Found 5."


def test_the_cache_forgets_its_oldest_prefixes_first():
    cache = PromptCache(max_entries=2)
    bodies = [{"system": [{"text": long_text(1100)}, POINT], "messages": [said("Hi")]} for _ in range(3)]
    for body in bodies:
        cache.usage(CACHING, body)
    assert cache.usage(CACHING, bodies[0])[1:] == (0, 1100)  # forgotten: written again
    assert cache.usage(CACHING, bodies[2])[1:] == (1100, 0)


def test_an_entry_past_its_ttl_is_not_read():
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    body = {"system": [{"text": long_text(1100)}, POINT], "messages": [said("Hi")]}
    cache.usage(CACHING, body)
    now[0] = 299.0
    assert cache.usage(CACHING, body)[1] == 1100  # and the hit renews it
    now[0] = 598.0
    assert cache.usage(CACHING, body)[1] == 1100
    now[0] = 899.0
    assert cache.usage(CACHING, body)[1:] == (0, 1100)


# --- /v1: the caller's cache_control, through gunicorn and the real SDK ----------------------


@pytest.fixture(scope="module")
def auto_server(emulator):
    """A live server with SWIFTCHAT_PROMPT_CACHE=auto."""
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "BEDROCK_MAX_ATTEMPTS": "1",
                   "SWIFTCHAT_PROMPT_CACHE": "auto"})  # fmt: skip
    yield live
    live.stop()


@pytest.fixture
def auto_client(auto_server):
    with sdk(auto_server) as opened:
        yield opened


EPHEMERAL = {"type": "ephemeral"}


def ask(sdk, emulator, model, messages, **more):
    """(usage, the Converse request the emulator saw) of one streamed chat; the last message names a tag."""
    tag = uuid.uuid4().hex
    last = messages[-1]
    tagged = {**last, "content": f"{last['content']} [[emulator id={tag}]]"}
    stream = sdk.chat.completions.create(
        model=model, messages=[*messages[:-1], tagged], stream=True, stream_options={"include_usage": True}, **more
    )
    chunks = list(stream)
    return chunks[-1].usage, stream_record(emulator, tag)["request"]


def points_in(blocks):
    return [i for i, block in enumerate(blocks) if "cachePoint" in block]


def test_cache_control_on_a_message_a_part_a_tool_and_a_tool_result_become_cache_points(client, emulator):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [
        {"role": "system", "content": "You help.", "cache_control": EPHEMERAL},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather?", "cache_control": {**EPHEMERAL, "ttl": "5m"}}],
        },
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "sun", "cache_control": EPHEMERAL}],
        },
        {"role": "user", "content": "Thanks"},
    ]
    usage, sent = ask(client, emulator, CACHING, messages, tools=[{**tool, "cache_control": EPHEMERAL}])
    assert sent["system"] == [{"text": "You help."}, POINT]
    assert sent["toolConfig"]["tools"][1] == POINT
    assert sent["messages"][0]["content"] == [{"text": "Weather?"}, {"cachePoint": {"type": "default", "ttl": "5m"}}]
    turn = sent["messages"][2]["content"]
    assert "toolResult" in turn[0] and turn[1] == POINT and turn[2]["text"].startswith("Thanks")
    assert usage.prompt_tokens > 0


def test_cached_tokens_show_on_the_second_call(client, emulator):
    system = {"role": "system", "content": long_text(), "cache_control": EPHEMERAL}
    first, _ = ask(client, emulator, CACHING, [system, {"role": "user", "content": "One?"}])
    second, sent = ask(client, emulator, CACHING, [system, {"role": "user", "content": "Two?"}])
    assert first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details.cached_tokens == 1500
    assert second.prompt_tokens == first.prompt_tokens  # cached tokens count in the prompt, as OpenAI counts them
    assert sent["system"][-1] == POINT


def test_cache_control_for_a_model_that_does_not_cache_is_dropped_and_said(server):
    body = {"model": NOT_CACHING, "messages": [{"role": "system", "content": "Be brief.", "cache_control": EPHEMERAL},
                                                 {"role": "user", "content": "Hi"}]}  # fmt: skip
    status, headers, data = server.request("/v1/chat/completions", body)
    assert status == 200, data  # the emulator refuses any cache point for this model, as Bedrock does
    assert "cache_control dropped: this model does not cache prompts" in headers[ADAPTED_HEADER]


def test_cache_control_on_nova_tools_is_dropped_and_said_its_messages_kept(server, emulator):
    tool = {"type": "function", "function": {"name": "get_weather"}, "cache_control": EPHEMERAL}
    tag = uuid.uuid4().hex
    body = {"model": NOVA, "tools": [tool], "stream": True, "messages": [
        {"role": "system", "content": "Be brief.", "cache_control": EPHEMERAL},
        {"role": "user", "content": f"Hi [[emulator id={tag}]]"}]}  # fmt: skip
    status, headers, data = server.request("/v1/chat/completions", body)
    assert status == 200 and data.endswith(b"data: [DONE]\n\n"), data
    assert "cache_control on tools dropped" in headers[ADAPTED_HEADER]
    sent = stream_record(emulator, tag)["request"]
    assert POINT not in sent["toolConfig"]["tools"] and sent["system"][-1] == POINT


def test_more_than_four_cache_points_is_a_400_naming_the_limit(client):
    parts = [{"type": "text", "text": f"Part {i}", "cache_control": EPHEMERAL} for i in range(5)]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=CACHING, messages=[{"role": "user", "content": parts}])
    assert raised.value.status_code == 400 and raised.value.param == "messages"
    assert "at most 4 cache points" in raised.value.message and "this one has 5" in raised.value.message


@pytest.mark.parametrize(
    "control",
    [{"type": "persistent"}, {"type": "ephemeral", "ttl": "2h"}, "ephemeral", ["ephemeral"]],
)
def test_a_cache_control_bedrock_has_no_counterpart_for_is_a_400(client, control):
    message = {"role": "user", "content": "Hi", "cache_control": control}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=CACHING, messages=[message])
    assert "cache_control" in raised.value.param and '"ttl" of "5m" or "1h"' in raised.value.message


# --- SWIFTCHAT_PROMPT_CACHE=auto: the server's own cache points ------------------------------


def chat_turns(sdk, emulator, model, system, count):
    """Play ``count`` turns of one chat resent whole each time: the usage and sent request of each."""
    history, seen = [{"role": "system", "content": system}], []
    for turn in range(count):
        history.append({"role": "user", "content": f"Question {turn}?"})
        usage, sent = ask(sdk, emulator, model, history)
        seen.append((usage, sent))
        history.append({"role": "assistant", "content": f"Answer {turn}."})
    return seen


@pytest.mark.parametrize("model", [CACHING, NOVA])
def test_auto_reads_the_chat_back_from_the_second_turn_on(auto_client, emulator, model):
    turns = chat_turns(auto_client, emulator, model, long_text(), 4)
    cached = [usage.prompt_tokens_details.cached_tokens for usage, _ in turns]
    assert cached[0] == 0 and cached[1] >= 1500 and cached[1] < cached[2] < cached[3]
    _, sent = turns[2]  # a point after the system prompt, and before the newest turn (and the one before)
    assert sent["system"][-1] == POINT
    assert [points_in(message["content"]) for message in sent["messages"]] == [[], [1], [], [1], []]


def test_auto_places_no_point_for_a_model_that_does_not_cache_or_a_short_prefix(auto_client, emulator):
    for model, system in ((NOT_CACHING, long_text()), (CACHING, "Be brief.")):
        for usage, sent in chat_turns(auto_client, emulator, model, system, 2):
            assert usage.prompt_tokens_details.cached_tokens == 0
            assert "cachePoint" not in json.dumps(sent)


def test_auto_adds_no_point_past_four_with_the_callers(auto_client, emulator):
    parts = [{"type": "text", "text": f"{long_text(300)}", "cache_control": EPHEMERAL} for _ in range(4)]
    history = [{"role": "system", "content": long_text()}, {"role": "user", "content": parts},
               {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "And?"}]  # fmt: skip
    _, sent = ask(auto_client, emulator, CACHING, history)  # the emulator refuses a fifth point, as Bedrock does
    assert json.dumps(sent).count("cachePoint") == 4 and sent["system"][-1] != POINT


# --- the apps' routes with SWIFTCHAT_PROMPT_CACHE=auto ---------------------------------------


def app_chat(model, system, history):
    return {"messages": history, "modelId": model, "region": "us-west-2", "system": system}


def usage_line(data):
    """The usage JSON after the text of an /api/converse answer."""
    return json.loads(data.rsplit(b"\n", 1)[1])


def test_the_apps_chat_is_read_back_from_the_second_message(auto_server):
    system, history = [{"text": long_text()}], [{"role": "user", "content": [{"text": "First?"}]}]
    status, _, first = auto_server.request("/api/converse", app_chat(CACHING, system, history))
    assert status == 200
    reply = first.rsplit(b"\n", 1)[0].decode()
    history += [{"role": "assistant", "content": [{"text": reply}]}, {"role": "user", "content": [{"text": "Then?"}]}]
    _, _, second = auto_server.request("/api/converse", app_chat(CACHING, system, history))
    assert usage_line(first)["cacheWriteInputTokens"] == 1500 and "cacheReadInputTokens" not in usage_line(first)
    assert usage_line(second)["cacheReadInputTokens"] == 1500


@pytest.mark.parametrize("route", ["/api/converse", "/api/converse/v2", "/api/converse/v3"])
@pytest.mark.parametrize(("model", "system"), [(NOT_CACHING, long_text()), (CACHING, "Be brief.")])
def test_the_apps_bytes_are_the_same_with_auto_where_nothing_is_cached(server, auto_server, route, model, system):
    body = app_chat(model, [{"text": system}], [{"role": "user", "content": [{"text": "Same?"}]}])
    off, on = server.request(route, body), auto_server.request(route, body)
    assert (off[0], off[2]) == (on[0], on[2]) and on[0] == 200


def test_auto_points_before_a_callers_one_hour_point_last_an_hour_too():
    long_turn = said(long_text(1200))
    hour = {"cachePoint": {"type": "default", "ttl": "1h"}}
    args = {"modelId": CACHING, "system": [{"text": long_text(1200)}],
            "messages": [long_turn, answered("Yes."), said("More?", hour)]}  # fmt: skip
    assert prompt_cache.place(args) == 2
    assert args["system"][-1] == hour and args["messages"][1]["content"][-1] == hour


def test_auto_fills_the_room_left_newest_turn_first():
    marked = [{"text": "x"}, POINT] * 3
    args = {"modelId": CACHING, "system": [{"text": long_text(1200)}],
            "messages": [said(long_text(1200)), answered("Yes."), said(*marked)]}  # fmt: skip
    assert prompt_cache.place(args) == 1
    assert args["messages"][1]["content"][-1] == POINT and "cachePoint" not in args["system"][-1]
