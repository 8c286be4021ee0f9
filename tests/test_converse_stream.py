"""The three chat dialects, end to end through gunicorn's gevent worker and the emulator."""

import base64
import json

import pytest
from conftest import chat, stream_record

USAGE = b'{"inputTokens": 2, "outputTokens": 3, "totalTokens": 5}'
EVENTS = [
    b'{"messageStart": {"role": "assistant"}}',
    b'{"contentBlockDelta": {"delta": {"text": "Hello"}, "contentBlockIndex": 0}}',
    b'{"contentBlockDelta": {"delta": {"text": " brave"}, "contentBlockIndex": 0}}',
    b'{"contentBlockDelta": {"delta": {"text": " world"}, "contentBlockIndex": 0}}',
    b'{"contentBlockStop": {"contentBlockIndex": 0}}',
    b'{"messageStop": {"stopReason": "end_turn"}}',
    b'{"metadata": {"usage": ' + USAGE + b', "metrics": {"latencyMs": 42}}}',
]
HELLO = 'Say hi [[emulator reply="Hello brave world"]]'


def test_v1_streams_text_then_usage(server):
    status, headers, body = server.request("/api/converse", chat(HELLO))
    assert status == 200
    assert body == b"Hello brave world\n" + USAGE


def test_v2_writes_events_back_to_back(server):
    status, _, body = server.request("/api/converse/v2", chat(HELLO))
    assert status == 200
    assert body == b"".join(EVENTS)


def test_v3_separates_events_with_blank_line(server):
    status, _, body = server.request("/api/converse/v3", chat(HELLO))
    assert status == 200
    assert body == b"".join(event + b"\n\n" for event in EVENTS)


@pytest.mark.parametrize("path", ["/api/converse", "/api/converse/v2", "/api/converse/v3"])
def test_streams_carry_no_cache_headers(server, path):
    status, headers, _ = server.request(path, chat(HELLO))
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in headers


def test_v2_reply_with_code_survives_the_apps_brace_split(server):
    code = 'if (x) {return {"a": 1};}{} }{'
    status, _, body = server.request("/api/converse/v2", chat(f"[[emulator reply={json.dumps(code)}]]"))
    assert status == 200
    parts = body.decode().split("}{")
    events = [
        json.loads(("{" if i else "") + part + ("}" if i < len(parts) - 1 else "")) for i, part in enumerate(parts)
    ]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == code
    assert b"\\u007b" in body and b"\\u007d" in body


def test_v3_keeps_a_silent_stream_alive(server):
    status, _, body = server.request("/api/converse/v3", chat('[[emulator first_delay_ms=1500 reply="Done"]]'))
    assert status == 200
    start = body.index(b'{"messageStart"')
    first_delta = body.index(b'{"contentBlockDelta"')
    silence = body[start:first_delta].split(b"}\n\n", 1)[1]
    assert silence.count(b"\n\n") >= 2 and silence.strip(b"\n") == b""
    events = [json.loads(part) for part in body.split(b"\n\n") if part]
    assert events[1]["contentBlockDelta"]["delta"]["text"] == "Done"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/converse", b"Done\n" + b'{"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}'),
        (
            "/api/converse/v2",
            b"".join([EVENTS[0], EVENTS[1].replace(b"Hello", b"Done"), *EVENTS[4:6]])
            + b'{"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, '
            b'"metrics": {"latencyMs": 42}}}',
        ),
    ],
)
def test_older_dialects_write_nothing_during_silence(server, path, expected):
    status, _, body = server.request(path, chat('[[emulator first_delay_ms=900 reply="Done"]]'))
    assert status == 200
    assert body == expected  # exactly the events: not a byte of keep-alive, of any shape, reached a v1/v2 app


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        # The original's budget for a Claude that thinks by budget; its maxTokens (64,000) leaves room for it.
        (
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            {"reasoning_config": {"type": "enabled", "budget_tokens": 16000}},
        ),
        ("us.anthropic.claude-opus-4-7", {"thinking": {"type": "adaptive"}}),  # refuses a budget
        ("us.amazon.nova-2-lite-v1:0", {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}),
        ("openai.gpt-oss-120b-1:0", {"reasoning_effort": "medium"}),
    ],
)
def test_thinking_streams_reasoning_with_the_models_own_switch(server, emulator, model, fields):
    tag = f"thinking-{abs(hash(model))}"
    status, _, body = server.request(
        "/api/converse/v3", chat(f'[[emulator id={tag} reply="Answer"]]', model, enableThinking="true")
    )
    assert status == 200
    events = [json.loads(part) for part in body.split(b"\n\n") if part]
    reasoning = [e for e in events if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})]
    assert reasoning
    assert stream_record(emulator, tag)["request"]["additionalModelRequestFields"] == fields


def test_thinking_is_not_asked_of_a_model_that_cannot_think(server, emulator):
    """Bedrock refuses thinking fields for Claude 3.5: the app gets its answer, without reasoning."""
    body_in = chat('[[emulator id=thinking-35 reply="Answer"]]', enableThinking="true")
    status, _, body = server.request("/api/converse", body_in)
    assert (status, body.split(b"\n")[0]) == (200, b"Answer")
    assert "additionalModelRequestFields" not in stream_record(emulator, "thinking-35")["request"]


def test_redacted_reasoning_bytes_arrive_as_base64(server):
    status, _, body = server.request("/api/converse/v3", chat("[[emulator reasoning=2 redacted=1]]"))
    assert status == 200
    events = [json.loads(part) for part in body.split(b"\n\n") if part]
    redacted = [
        e["contentBlockDelta"]["delta"]["reasoningContent"]["redactedContent"]
        for e in events
        if "redactedContent" in e.get("contentBlockDelta", {}).get("delta", {}).get("reasoningContent", {})
    ]
    assert base64.b64decode(redacted[0]) == b"\x00\x01redacted-by-emulator\xff"


@pytest.mark.parametrize(
    ("model", "max_tokens"),
    [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", 4096),
        ("us.meta.llama3-1-70b-instruct-v1:0", 2048),  # judged on the base id (PROTOCOL.md); the original sent 4096
        ("meta.llama3-1-70b-instruct-v1:0", 2048),
        ("us.deepseek.r1-v1:0", 32000),
        ("us.anthropic.claude-opus-4-20250514-v1:0", 32000),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 64000),
        ("anthropic.claude-sonnet-4-20250514-v1:0", 64000),
    ],
)
def test_max_tokens_follow_the_model(server, emulator, model, max_tokens):
    tag = f"max-{max_tokens}-{abs(hash(model))}"
    status, _, _ = server.request("/api/converse/v3", chat(f"[[emulator id={tag}]]", model=model))
    assert status == 200
    record = stream_record(emulator, tag)
    assert record["modelId"] == model
    assert record["request"]["inferenceConfig"] == {"maxTokens": max_tokens}


def test_system_prompt_is_passed_only_when_given(server, emulator):
    server.request("/api/converse/v3", chat("[[emulator id=sys-1]]", system=[{"text": "Be brief."}]))
    server.request("/api/converse/v3", chat("[[emulator id=sys-2]]", system=None))
    assert stream_record(emulator, "sys-1")["request"]["system"] == [{"text": "Be brief."}]
    assert "system" not in stream_record(emulator, "sys-2")["request"]
    assert "additionalModelRequestFields" not in stream_record(emulator, "sys-2")["request"]


def test_media_is_decoded_once_and_other_blocks_pass_through(server, emulator):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really-an-image").decode()
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    content = [
        {"text": "[[emulator id=media-1]] what is this?"},
        {"image": {"format": "png", "source": {"bytes": png}}},
        {"document": {"format": "pdf", "name": "doc", "source": {"bytes": pdf}}},
        {"cachePoint": {"type": "default"}},
    ]
    model = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # Bedrock refuses cache points for models that do not cache
    body = {"messages": [{"role": "user", "content": content}], "modelId": model, "region": "us-west-2"}
    status, _, _ = server.request("/api/converse/v3", body)
    assert status == 200
    sent = stream_record(emulator, "media-1")["request"]["messages"][0]["content"]
    # boto3 base64-encodes raw bytes on the wire, so the emulator sees the app's text only if we decoded it.
    assert sent[1]["image"]["source"]["bytes"] == png
    assert sent[2]["document"]["source"]["bytes"] == pdf
    assert sent[3] == {"cachePoint": {"type": "default"}}


def test_mid_stream_failure_is_written_in_band(server):
    status, _, body = server.request("/api/converse/v3", chat('[[emulator fail_after=2 reply="one two three"]]'))
    assert status == 200
    assert body == (
        EVENTS[0] + b"\n\n" + b'{"contentBlockDelta": {"delta": {"text": "one"}, "contentBlockIndex": 0}}\n\n'
        b"Error: An error occurred (modelStreamErrorException) when calling the ConverseStream operation: "
        b"The emulator failed the stream as asked."
    )


def test_v1_mid_stream_failure_follows_the_text(server):
    status, _, body = server.request("/api/converse", chat('[[emulator fail_after=3 reply="one two three"]]'))
    assert status == 200
    assert body.startswith(b"one twoError: An error occurred (modelStreamErrorException)")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("validation", 400, "ValidationException"),
        ("access", 403, "AccessDeniedException"),
        ("notfound", 404, "ResourceNotFoundException"),
        ("throttling", 429, "ThrottlingException"),
        ("unavailable", 503, "ServiceUnavailableException"),
        ("internal", 502, "InternalServerException"),
        ("unrecognized", 403, "UnrecognizedClientException"),
        ("quota", 429, "ServiceQuotaExceededException"),
        ("notready", 503, "ModelNotReadyException"),
    ],
)
@pytest.mark.parametrize("path", ["/api/converse", "/api/converse/v3"])
def test_refused_call_gets_a_real_status(server, path, error, status, code):
    got, headers, body = server.request(path, chat(f"[[emulator error={error}]]"))
    assert got == status
    assert headers["content-type"].startswith("text/plain")
    assert body.startswith(f"Error: An error occurred ({code}) when calling the ConverseStream operation".encode())
    assert body.endswith(f"The emulator refused the call ({error}).".encode())


@pytest.mark.parametrize(
    ("exception", "status"),
    [
        ("throttlingException", 429),
        ("validationException", 400),
        ("serviceUnavailableException", 503),
        ("modelStreamErrorException", 502),
    ],
)
def test_refusal_as_the_first_frame_gets_a_real_status(server, exception, status):
    got, headers, body = server.request("/api/converse/v3", chat(f"[[emulator fail_after=0 fail_with={exception}]]"))
    assert got == status
    assert headers["content-type"].startswith("text/plain")
    assert (
        body
        == (
            f"Error: An error occurred ({exception}) when calling the ConverseStream operation: "
            "The emulator failed the stream as asked."
        ).encode()
    )


@pytest.mark.parametrize("words", [400, 15000], ids=["over the 1 KiB upstream buffer", "over one 64 KiB read"])
def test_a_large_event_arrives_whole(server, words):
    """One delta far larger than the worker's upstream read buffer is relayed as one whole event."""
    directive = f"[[emulator words={words} chunk={words}]]"
    status, _, body = server.request("/api/converse/v3", chat(directive))
    assert status == 200
    events = [json.loads(event) for event in body.split(b"\n\n") if event]
    deltas = [event["contentBlockDelta"]["delta"]["text"] for event in events if "contentBlockDelta" in event]
    assert len(deltas) == 1 and "metadata" in events[-1]
    _, _, small_events = server.request("/api/converse", chat(f"[[emulator words={words}]]"))  # a word per event
    assert deltas[0].encode() == small_events.rsplit(b"\n", 1)[0]
