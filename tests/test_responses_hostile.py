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


def _structured(server, schema):
    """The whole answer to a request for output in ``schema`` (by the answer tool: this Claude has no native one)."""
    body = {
        "model": CLAUDE,
        "input": "fill it in",
        "store": False,
        "text": {"format": {"type": "json_schema", "name": "filled", "schema": schema}},
    }
    status, _, data = server.request("/v1/responses", body, key=TEST_KEY)
    assert status == 200, data[:300]
    return data


def test_the_emulators_answer_to_a_short_schema_of_long_strings_stays_small(server):
    # 160 bytes of schema asked the emulator for ten thousand strings of 10,000 characters: a 99 MB answer.
    strings = {"type": "array", "minItems": 100, "maxItems": 100, "items": {"type": "string", "minLength": 10_000}}
    schema = {"type": "object", "properties": {"rows": {**strings, "items": strings}}, "required": ["rows"]}
    assert len(_structured(server, schema)) < 1_000_000


def test_the_emulator_answers_a_schema_of_many_all_of_parts(server):
    # 93 KB of schema (within MAX_SCHEMA): merging its parts one by one held the emulator's only CPU for a minute.
    members = {f"p{i}": {"$ref": "#"} for i in range(200)}
    shared = {"type": "object", "properties": members, "required": list(members)}
    every = {"allOf": [{"$ref": "#/$defs/s"}] * 4000}
    schema = {"type": "object", "$defs": {"s": shared}, "properties": {"all": every}, "required": ["all"]}
    answer = json.loads(_structured(server, schema))
    assert set(json.loads(answer["output"][-1]["content"][0]["text"])["all"]) == set(members)
