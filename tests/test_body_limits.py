"""The body limits through the app itself: each bound exactly at its limit is read, one past it refused.

In-process (``create_app`` and Flask's test client, no gunicorn, no sockets), so every row of
each boundary is exact and fast. What the app passes on reaches Bedrock: the emulator, so an
accepted body is answered 200, not merely "not refused".
"""

import io
import json

import pytest
from conftest import TEST_KEY

from swiftchat_api import create_app
from swiftchat_api.bodies import MAX_CONTAINERS, MAX_DEPTH, MAX_VALUES
from swiftchat_api.config import Config
from swiftchat_api.emulator import launch

LIMIT = 1024 * 1024  # max_body_bytes, as SWIFTCHAT_MAX_BODY_MB=1 sets it
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ARGUMENTS = "messages[1].tool_calls[0].function.arguments"
TOO_MANY = (
    f"The body holds too many values (at most {MAX_CONTAINERS:,} objects and lists and {MAX_VALUES:,} values in all)."
)
TOO_DEEP = f"The body is nested too deeply (at most {MAX_DEPTH} levels)."


@pytest.fixture(scope="module")
def client(emulator, tmp_path_factory):
    """A test client of an app with a 1 MB body limit, whose Bedrock is the emulator."""
    store = tmp_path_factory.mktemp("store") / "keys.db"
    with pytest.MonkeyPatch.context() as env:
        for name, value in launch.environment(emulator).items():
            env.setenv(name, value)
        app = create_app(
            Config(api_key=TEST_KEY, max_body_bytes=LIMIT, store_url=f"sqlite:///{store}", bedrock_max_attempts=1)
        )
        yield app.test_client()


def _post(client, path, raw, chunked=False):
    """(status, JSON answer) of ``raw`` sent with a Content-Length, or with none (as gunicorn hands on chunked ones)."""
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    if chunked:
        answer = client.post(path, input_stream=io.BytesIO(raw), headers={**headers, "Transfer-Encoding": "chunked"})
    else:
        answer = client.post(path, data=raw, headers=headers)
    return answer.status_code, answer.get_json()


def _measured(raw):
    """(objects and lists, values, depth) of a body whose text holds no brackets or commas, counted on the raw text."""

    def depth(value):
        if isinstance(value, (dict, list)):
            children = value.values() if isinstance(value, dict) else value
            return 1 + max(map(depth, children), default=0)
        return 0

    containers = raw.count("[") + raw.count("{")
    return containers, containers + raw.count(","), depth(json.loads(raw))


def _nested(levels):
    value = 0
    for _ in range(levels):
        value = [value]
    return value


# --- size: Content-Length and chunked bodies alike ----------------------------------------------


def _token_body(size):
    """A /api/token body of exactly ``size`` bytes."""
    head, tail = b'{"region": "us-west-2", "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _chat_body(size):
    """A /v1/chat/completions body of exactly ``size`` bytes."""
    head = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})[:-1].encode()
    head, tail = head + b', "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "path, build, too_large",
    [
        ("/api/token", _token_body, {"detail": "The request body is larger than 1 MB."}),
        (
            "/v1/chat/completions",
            _chat_body,
            {
                "error": {
                    "message": "The request body is larger than 1 MB.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
    ],
    ids=["/api", "/v1"],
)
def test_a_body_of_exactly_the_size_limit_is_read_and_one_byte_more_is_refused(client, path, build, too_large, chunked):
    status, answer = _post(client, path, build(LIMIT), chunked)
    assert status == 200, answer
    assert _post(client, path, build(LIMIT + 1), chunked) == (413, too_large)


# --- objects and lists, values, depth of the body ----------------------------------------------

# Each body holds its region and a pad: the object and the pad count towards each limit.
_AT_THE_LIMIT = {
    "objects and lists": lambda past: [[]] * (MAX_CONTAINERS - 2 + past),
    "values": lambda past: [0] * (MAX_VALUES - 2 + past),
    "depth": lambda past: _nested(MAX_DEPTH - 1 + past),
}


@pytest.mark.parametrize("past", [0, 1], ids=["at the limit", "one over"])
@pytest.mark.parametrize("bound", list(_AT_THE_LIMIT))
def test_a_body_at_each_count_limit_is_read_and_one_more_is_refused(client, bound, past):
    raw = json.dumps({"region": "us-west-2", "pad": _AT_THE_LIMIT[bound](past)})
    probe = list(_AT_THE_LIMIT).index(bound)
    assert _measured(raw)[probe] == (MAX_CONTAINERS, MAX_VALUES, MAX_DEPTH)[probe] + past
    status, answer = _post(client, "/api/token", raw.encode())
    if past == 0:
        assert (status, answer) == (
            200,
            {"error": "This server has no CLIENT_ROLE_ARN configured, so it hands out no credentials."},
        )
    else:
        message = TOO_DEEP if bound == "depth" else TOO_MANY
        assert (status, answer) == (422, {"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]})


# --- the body and the JSON in a tool call's arguments, on one budget ---------------------------


def _tool_chat(arguments, pad):
    """A chat whose history holds one answered tool call, with ``arguments``, and an ignored ``pad``."""
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        "pad": pad,
    }


def _shared(probe, past):
    """A tool chat that, with its arguments' JSON in place of their text, is ``past`` over one limit.

    Objects and lists or values: about half in the body, the rest in the arguments. Depth: the
    levels of the body around the arguments count with those of their JSON.
    """
    limit = (MAX_CONTAINERS, MAX_VALUES, MAX_DEPTH)[probe]
    pad = ([[]] * (MAX_CONTAINERS // 2), [0] * (MAX_VALUES // 2), [])[probe]

    def arguments(size):
        return {"a": ([[]] * size, [0] * size, _nested(size))[probe]}

    # One object or list, value or level more in the arguments is one more in the body holding them.
    size = 1 + limit + past - _measured(json.dumps(_tool_chat(arguments(1), pad)))[probe]
    assert _measured(json.dumps(_tool_chat(arguments(size), pad)))[probe] == limit + past
    return _tool_chat(json.dumps(arguments(size)), pad)


def _answered(status, answer):
    return status == 200 and answer["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.parametrize("past", [0, 1], ids=["at the limit", "one over"])
@pytest.mark.parametrize(
    "probe, refusal",
    [
        (0, "The body holds too many values, with the JSON inside its text"),
        (1, "The body holds too many values, with the JSON inside its text"),
        (2, "The JSON in this text is nested too deeply"),
    ],
    ids=["objects and lists", "values", "depth"],
)
def test_json_in_tool_call_arguments_counts_against_the_body_s_limits(client, probe, refusal, past):
    """The body and a tool call's arguments add up: to the limit answered, one over refused."""
    status, answer = _post(client, "/v1/chat/completions", json.dumps(_shared(probe, past)).encode())
    if past == 0:
        assert _answered(status, answer), answer
    else:
        assert status == 400
        assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == ARGUMENTS
        assert answer["error"]["message"].startswith(refusal)


@pytest.mark.parametrize("past", [0, 1], ids=["at the limit", "one over"])
def test_the_body_and_the_json_in_its_tool_call_arguments_share_the_size_limit(client, past):
    arguments = json.dumps({"city": "x" * (LIMIT // 3)})
    pad = ""
    raw = json.dumps(_tool_chat(arguments, pad)).encode()
    pad = "y" * (LIMIT + past - len(raw) - len(arguments.encode()))
    raw = json.dumps(_tool_chat(arguments, pad)).encode()
    assert len(raw) + len(arguments.encode()) == LIMIT + past
    status, answer = _post(client, "/v1/chat/completions", raw)
    if past == 0:
        assert _answered(status, answer), answer
    else:
        assert status == 400 and answer["error"]["param"] == ARGUMENTS
        assert answer["error"]["message"] == "The body and the JSON inside its text are larger than 1 MB in all."
