"""Prompt caching: the emulator plays Bedrock's cache, and the server's cache points show in what users see."""

import uuid

import pytest
from botocore.exceptions import ClientError

from swiftchat_api.emulator.cache import PromptCache

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
