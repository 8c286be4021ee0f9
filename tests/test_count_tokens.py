"""Bedrock's CountTokens as the emulator serves it, and the server's counter that asks it, through boto3."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import TEST_KEY, emulator_env

from swiftchat_api.aws import Clients
from swiftchat_api.config import Config
from swiftchat_api.profile import without_geography
from swiftchat_api.services.counting import TokenCounter

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CHAT = [
    {"role": "user", "content": [{"text": "[[emulator words=3]] how many tokens are in this request"}]},
    {"role": "assistant", "content": [{"text": "eight I think"}]},
    {"role": "user", "content": [{"text": "count again"}]},
]


def test_count_tokens_is_what_the_same_input_is_billed_in_a_stream(bedrock):
    counted = bedrock.count_tokens(modelId=MODEL, input={"converse": {"messages": CHAT}})["inputTokens"]
    events = list(bedrock.converse_stream(modelId=MODEL, messages=CHAT)["stream"])
    billed = next(event["metadata"]["usage"]["inputTokens"] for event in events if "metadata" in event)
    assert counted == billed == 12


SYSTEM = [{"text": "you are a careful counter of words"}]  # 7 words
TOOLS = {"tools": [{"toolSpec": {"name": "tally", "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.mark.parametrize("billed_model", [MODEL, "meta.llama3-1-8b-instruct-v1:0"])  # one caches prompts, one not
def test_the_system_prompt_and_the_tools_are_billed_and_counted_like_the_messages(bedrock, billed_model):
    plain = bedrock.converse(modelId=billed_model, messages=CHAT)["usage"]["inputTokens"]
    usage = bedrock.converse(modelId=billed_model, messages=CHAT, system=SYSTEM, toolConfig=TOOLS)["usage"]
    assert usage["inputTokens"] > plain + 7  # the system prompt's words, and the tool's definition
    counted = bedrock.count_tokens(
        modelId=MODEL, input={"converse": {"messages": CHAT, "system": SYSTEM, "toolConfig": TOOLS}}
    )["inputTokens"]
    assert counted == usage["inputTokens"]


def test_an_invoke_model_body_is_counted_too(bedrock):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "system": "count these three",
        "messages": [{"role": "user", "content": "a b c"}],
    }
    answer = bedrock.count_tokens(modelId=MODEL, input={"invokeModel": {"body": json.dumps(body)}})
    assert answer["inputTokens"] == 6


@pytest.mark.parametrize(
    "model",
    [
        "amazon.nova-lite-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "us." + MODEL,
    ],
)
def test_models_bedrock_does_not_count_for_are_refused_in_bedrocks_words(bedrock, model):
    with pytest.raises(ClientError) as refused:
        bedrock.count_tokens(modelId=model, input={"converse": {"messages": CHAT}})
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert (error["Code"], error["Message"]) == (
        "ValidationException",
        "The provided model doesn't support counting tokens.",
    )


def test_a_prompt_past_200k_tokens_is_refused_with_its_count(bedrock):
    long = [{"role": "user", "content": [{"text": "a " * 200_001}]}]
    with pytest.raises(ClientError) as refused:
        bedrock.count_tokens(modelId=MODEL, input={"converse": {"messages": long}})
    assert refused.value.response["Error"]["Message"] == "prompt is too long: 200001 tokens > 200000 maximum"


def test_a_conversation_bedrock_refuses_is_refused_by_its_count_too(bedrock):
    with pytest.raises(ClientError) as refused:
        bedrock.count_tokens(modelId=MODEL, input={"converse": {"messages": CHAT[1:]}})
    assert refused.value.response["Error"]["Message"].startswith("A conversation must start with a user message.")


def test_a_cross_region_profile_is_counted_as_its_foundation_model():
    assert without_geography("us." + MODEL) == MODEL
    assert (
        without_geography("global.anthropic.claude-sonnet-4-20250514-v1:0") == "anthropic.claude-sonnet-4-20250514-v1:0"
    )
    assert without_geography("amazon.nova-lite-v1:0") == "amazon.nova-lite-v1:0"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us." + MODEL
    assert without_geography(arn) == arn  # an ARN is left to Bedrock to judge


@pytest.fixture
def counter(emulator, monkeypatch):
    for name, value in emulator_env(emulator).items():
        monkeypatch.setenv(name, value)
    return TokenCounter(Clients(Config(api_key=TEST_KEY)))


def test_the_counter_asks_bedrock_and_remembers_a_model_it_will_not_count_for(counter, bedrock):
    assert counter.count("us-west-2", MODEL, {"messages": CHAT}) == 12
    assert counter.for_stream(bedrock, {"modelId": "us.amazon.nova-lite-v1:0", "messages": CHAT}) is not None
    assert counter.count("us-west-2", "amazon.nova-lite-v1:0", {"messages": CHAT}) is None
    # Told once, it asks no more for that model (its profile ids included); others are still counted.
    assert counter.for_stream(bedrock, {"modelId": "us.amazon.nova-lite-v1:0", "messages": CHAT}) is None
    assert counter.for_stream(bedrock, {"modelId": "us." + MODEL, "messages": CHAT}) is not None


def test_a_count_that_fails_for_this_request_alone_is_not_remembered(counter, bedrock):
    long = [{"role": "user", "content": [{"text": "a " * 200_001}]}]
    assert counter.count("us-west-2", MODEL, {"messages": long}) is None  # too long to count: the estimate
    assert counter.for_stream(bedrock, {"modelId": MODEL, "messages": CHAT}) is not None
