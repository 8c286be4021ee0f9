"""POST /v1/responses against hostile input, through gunicorn: what any holder of the shipped key may send."""

import base64
import json

from conftest import TEST_KEY

from swiftchat_api.oai.responses import SEALED

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def _sealed(text):
    """An encrypted_content as this server makes them, around any JSON text (anyone can make one)."""
    return SEALED + base64.b64encode(text.encode()).decode()


def _after_reasoning(encrypted):
    return [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "summary": [], "encrypted_content": encrypted},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]


def _error(server, body):
    status, _, data = server.request("/v1/responses", body, key=TEST_KEY)
    return status, json.loads(data)["error"]


def test_a_reasoning_item_nested_past_the_bodys_depth_is_a_400_naming_it(server):
    deep = '{"text": "t", "signature": "s", "redacted": ' + "[" * 50_000 + "]" * 50_000 + "}"
    for stream in (False, True):
        status, error = _error(server, {"model": CLAUDE, "input": _after_reasoning(_sealed(deep)), "stream": stream})
        assert status == 400, error
        assert error["param"] == "input[1].encrypted_content"
        assert "nested too deeply" in error["message"] or "too many values" in error["message"]


def test_a_reasoning_items_json_draws_on_the_bodys_count_of_values(server):
    # 300,000 values inside one string of a 1.6 MB body: past what a whole body may hold.
    many = json.dumps({"text": "t", "signature": "s", "redacted": ["AA=="] * 300_000})
    status, error = _error(server, {"model": CLAUDE, "input": _after_reasoning(_sealed(many))})
    assert status == 400
    assert error["param"] == "input[1].encrypted_content"
    assert "too many values" in error["message"]


def test_a_reasoning_item_with_more_blocks_than_a_message_carries_is_a_400(server):
    blocks = json.dumps({"text": "t", "signature": "s", "redacted": ["AA=="] * 65})
    status, error = _error(server, {"model": CLAUDE, "input": _after_reasoning(_sealed(blocks))})
    assert status == 400
    assert error == {
        "message": "This reasoning item holds more than 64 blocks.",
        "type": "invalid_request_error",
        "param": "input[1].encrypted_content",
        "code": None,
    }
