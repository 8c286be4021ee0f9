"""The emulator's tool calls, tool-block checks and embedding models, as boto3 sees them."""

import json

import pytest
from botocore.exceptions import ClientError

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
WEATHER = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
TIME = {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}
TOOLS = {"tools": [WEATHER, TIME]}


def said(text):
    return {"role": "user", "content": [{"text": text}]}


def called(*ids):
    calls = [{"toolUse": {"toolUseId": i, "name": "get_weather", "input": {}}} for i in ids]
    return {"role": "assistant", "content": calls}


def answered(*ids):
    return {"role": "user", "content": [{"toolResult": {"toolUseId": i, "content": [{"text": "sunny"}]}} for i in ids]}


def events(bedrock, messages, **more):
    return list(bedrock.converse_stream(modelId=MODEL, messages=messages, **more)["stream"])


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize(
    ("messages", "config", "says"),
    [
        ([said("hi"), called("t1"), answered("t1")], None, "toolConfig field must be defined"),
        ([said("hi"), called("t1"), answered("t2")], TOOLS, "must answer a toolUse block"),
        ([said("hi"), called("t1"), answered("t1", "t1")], TOOLS, "once"),
        ([said("hi"), called("t1", "t2"), answered("t1")], TOOLS, "Expected toolResult blocks at messages.2"),
        ([said("hi"), called("t1"), said("never mind")], TOOLS, "Expected toolResult blocks at messages.2"),
        ([said("hi"), answered("t1")], TOOLS, "alternate"),
        ([answered("t1")], TOOLS, "must answer a toolUse block"),
        ([said("one"), said("two")], None, "alternate"),
        ([{"role": "assistant", "content": [{"text": "Hello"}]}, said("hi")], None, "start with a user message"),
        ([said("hi")], {"tools": [WEATHER, WEATHER]}, "unique"),
        ([said("hi")], {"tools": [WEATHER], "toolChoice": {"tool": {"name": "get_time"}}}, "not in toolConfig"),
    ],
)
def test_conversations_bedrock_refuses_are_refused(bedrock, streaming, messages, config, says):
    more = {"toolConfig": config} if config else {}
    call = bedrock.converse_stream if streaming else bedrock.converse
    with pytest.raises(ClientError) as caught:
        call(modelId=MODEL, messages=messages, **more)
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert says in error["Error"]["Message"]
    assert "t1" not in error["Error"]["Message"]  # never quotes what the caller sent


def test_a_tool_round_trip_is_accepted_and_quotes_the_results(bedrock):
    got = events(bedrock, [said("hi"), called("t1", "t2"), answered("t2", "t1")], toolConfig=TOOLS)
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in got if "contentBlockDelta" in e)
    assert text == "Tool results received: sunny | sunny"
    assert got[-2] == {"messageStop": {"stopReason": "end_turn"}}


def test_tool_calls_stream_as_bedrock_sends_them(bedrock):
    directive = '[[emulator reply="Let me see." tools=get_weather,get_time args=\'{"city": "東京"}\' arg_chunk=4]]'
    got = events(bedrock, [said(directive)], toolConfig=TOOLS)
    starts = [e["contentBlockStart"] for e in got if "contentBlockStart" in e]
    placed = [(s["contentBlockIndex"], s["start"]["toolUse"]["name"]) for s in starts]
    assert placed == [(1, "get_weather"), (2, "get_time")]
    assert all(s["start"]["toolUse"]["toolUseId"].startswith("tooluse_") for s in starts)
    assert starts[0]["start"]["toolUse"]["toolUseId"] != starts[1]["start"]["toolUse"]["toolUseId"]
    for index in (1, 2):
        pieces = [
            e["contentBlockDelta"]["delta"]["toolUse"]["input"]
            for e in got
            if e.get("contentBlockDelta", {}).get("contentBlockIndex") == index
        ]
        assert len(pieces) > 1
        assert json.loads("".join(pieces)) == {"city": "東京"}
    assert {"messageStop": {"stopReason": "tool_use"}} in got


def test_the_same_request_gets_the_same_tool_call_ids(bedrock):
    ids = [
        [e["contentBlockStart"]["start"]["toolUse"]["toolUseId"] for e in got if "contentBlockStart" in e]
        for got in (events(bedrock, [said("[[emulator tools=get_time]]")], toolConfig=TOOLS) for _ in range(2))
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 1


@pytest.mark.parametrize(
    ("config", "directive", "names"),
    [
        (None, "tools=get_weather", []),  # nothing offered: nothing called
        ({"tools": [TIME]}, "tools=get_weather,get_time", ["get_time"]),
        ({"tools": [WEATHER, TIME], "toolChoice": {"any": {}}}, "", ["get_weather"]),
        ({"tools": [WEATHER, TIME], "toolChoice": {"tool": {"name": "get_time"}}}, "tools=get_weather", ["get_time"]),
        ({"tools": [WEATHER, TIME], "toolChoice": {"auto": {}}}, "", []),
    ],
)
def test_the_model_calls_only_offered_tools_and_obeys_a_forced_choice(bedrock, config, directive, names):
    more = {"toolConfig": config} if config else {}
    answer = bedrock.converse(modelId=MODEL, messages=[said(f"[[emulator {directive}]]")], **more)
    content = answer["output"]["message"]["content"]
    assert [block["toolUse"]["name"] for block in content if "toolUse" in block] == names
    assert answer["stopReason"] == ("tool_use" if names else "end_turn")


def test_a_converse_answer_with_tool_calls(bedrock):
    answer = bedrock.converse(modelId=MODEL, messages=[said("[[emulator tools=get_weather]]")], toolConfig=TOOLS)
    content = answer["output"]["message"]["content"]
    assert len(content) == 1  # straight to the call: no text block
    assert content[0]["toolUse"]["input"] == {"city": "Paris", "call": 0}
    assert content[0]["toolUse"]["toolUseId"].startswith("tooluse_")


def test_cached_tokens_are_reported_apart_from_input_and_in_the_total(bedrock):
    got = events(bedrock, [said('[[emulator reply="ok" cache_read=30 cache_write=5]]')])
    usage = got[-1]["metadata"]["usage"]
    assert usage["cacheReadInputTokens"] == 30
    assert usage["cacheWriteInputTokens"] == 5
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] + 35


@pytest.mark.parametrize("reason", ["max_tokens", "content_filtered", "guardrail_intervened"])
def test_the_stop_reason_can_be_chosen(bedrock, reason):
    assert {"messageStop": {"stopReason": reason}} in events(bedrock, [said(f"[[emulator stop_reason={reason}]]")])


@pytest.mark.parametrize("directive", ["stop_reason=tired", "tools=get_weather args=[1]", "args={broken"])
def test_tool_directives_that_make_no_sense_are_refused(bedrock, directive):
    with pytest.raises(ClientError) as caught:
        events(bedrock, [said(f"[[emulator {directive}]]")], toolConfig=TOOLS)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


# --- embeddings -------------------------------------------------------------------------------


def invoke(bedrock, model, body):
    answer = bedrock.invoke_model(modelId=model, body=json.dumps(body), contentType="application/json")
    return json.loads(answer["body"].read()), answer["ResponseMetadata"]["HTTPHeaders"]


@pytest.mark.parametrize(
    ("model", "body", "size"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "hello world"}, 1024),
        ("amazon.titan-embed-text-v2:0", {"inputText": "hello world", "dimensions": 256, "normalize": True}, 256),
        ("amazon.titan-embed-text-v1", {"inputText": "hello world"}, 1536),
        ("amazon.titan-embed-image-v1", {"inputText": "hi", "embeddingConfig": {"outputEmbeddingLength": 384}}, 384),
    ],
)
def test_titan_embeds_one_text_with_its_token_count(bedrock, model, body, size):
    answer, _ = invoke(bedrock, model, body)
    assert len(answer["embedding"]) == size
    assert answer["inputTextTokenCount"] == len(body["inputText"].split())
    assert answer == invoke(bedrock, model, body)[0]  # deterministic


@pytest.mark.parametrize(
    ("model", "body", "shape"),
    [
        ("cohere.embed-english-v3", {"texts": ["a b", "c"], "input_type": "search_document"}, (2, 1024)),
        (
            "cohere.embed-v4:0",
            {"texts": ["a"], "input_type": "search_query", "embedding_types": ["float"], "output_dimension": 256},
            (1, 256),
        ),
    ],
)
def test_cohere_embeds_a_batch_and_counts_tokens_in_a_header(bedrock, model, body, shape):
    answer, headers = invoke(bedrock, model, body)
    vectors = answer["embeddings"]["float"] if "embedding_types" in body else answer["embeddings"]
    assert (len(vectors), len(vectors[0])) == shape
    assert int(headers["x-amzn-bedrock-input-token-count"]) == sum(len(t.split()) for t in body["texts"])


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "x", "texts": ["x"]}),
        ("amazon.titan-embed-text-v2:0", {"inputText": "x", "dimensions": 300}),
        ("amazon.titan-embed-text-v2:0", {"inputText": ""}),
        ("amazon.titan-embed-text-v1", {"inputText": "x", "dimensions": 256}),
        ("cohere.embed-english-v3", {"texts": ["x"]}),
        ("cohere.embed-english-v3", {"texts": ["x"] * 97, "input_type": "search_document"}),
        ("cohere.embed-english-v3", {"texts": ["x"], "input_type": "search_document", "output_dimension": 256}),
    ],
)
def test_embedding_bodies_bedrock_refuses_are_refused(bedrock, model, body):
    with pytest.raises(ClientError) as caught:
        invoke(bedrock, model, body)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
