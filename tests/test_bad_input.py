"""Bad bodies get a clear 422 that never echoes what was sent, and the server stays up."""

import json

import pytest
from conftest import chat

SECRET = "my-private-diary-entry"


def _detail(body):
    return json.loads(body)["detail"]


@pytest.mark.parametrize(
    ("payload", "loc", "kind"),
    [
        ({"messages": [], "region": "us-west-2"}, ["body", "modelId"], "missing"),
        ({"messages": [], "modelId": "m"}, ["body", "region"], "missing"),
        ({"messages": "hi", "modelId": "m", "region": "us-west-2"}, ["body", "messages"], "value_error"),
        (
            {"messages": [{"content": []}], "modelId": "m", "region": "us-west-2"},
            ["body", "messages", 0, "role"],
            "missing",
        ),
        (
            {"messages": [{"role": "robot", "content": []}], "modelId": "m", "region": "us-west-2"},
            ["body", "messages", 0, "role"],
            "value_error",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "modelId": "m", "region": "us-west-2"},
            ["body", "messages", 0, "content"],
            "value_error",
        ),
        (
            {"messages": [{"role": "user", "content": [SECRET]}], "modelId": "m", "region": "us-west-2"},
            ["body", "messages", 0, "content", 0],
            "value_error",
        ),
        ({"messages": [], "modelId": 7, "region": "us-west-2"}, ["body", "modelId"], "value_error"),
        ({"messages": [], "modelId": "m", "region": "../../etc"}, ["body", "region"], "value_error"),
        (
            {"messages": [], "modelId": "m", "region": "us-west-2", "enableThinking": SECRET},
            ["body", "enableThinking"],
            "value_error",
        ),
        ({"messages": [], "modelId": "m", "region": "us-west-2", "system": SECRET}, ["body", "system"], "value_error"),
        ([SECRET], ["body"], "value_error"),
    ],
)
def test_invalid_body_is_a_422_naming_the_field(server, payload, loc, kind):
    status, headers, body = server.request("/api/converse/v3", payload)
    assert status == 422
    assert headers["content-type"] == "application/json"
    detail = _detail(body)
    assert [item["loc"] for item in detail] == [loc]
    assert detail[0]["type"] == kind and detail[0]["msg"]
    assert SECRET.encode() not in body


def test_malformed_json_is_a_422(server):
    status, _, body = server.request("/api/converse", raw='{"messages": [' + SECRET)
    assert status == 422
    assert _detail(body)[0]["msg"].startswith("JSON decode error")
    assert SECRET.encode() not in body


@pytest.mark.parametrize("route", ["/api/converse", "/api/converse/v2", "/api/converse/v3"])
def test_invalid_base64_is_a_422_in_words_the_apps_show(server, route):
    image = {"image": {"format": "png", "source": {"bytes": SECRET + "!!"}}}
    payload = {
        "messages": [{"role": "user", "content": [{"text": "see"}, image]}],
        "modelId": "m",
        "region": "us-west-2",
    }
    status, headers, body = server.request(route, payload)
    assert status == 422
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body == b"Error: Invalid base64 data in the image block."


def test_invalid_base64_in_a_body_not_in_the_apps_shape_stays_a_422_list(server):
    image = {"image": {"format": "png", "source": {"bytes": SECRET + "!!"}}}
    payload = {"messages": [{"role": "user", "content": [image]}], "region": "us-west-2"}  # no modelId
    status, headers, body = server.request("/api/converse/v3", payload)
    assert status == 422
    assert headers["content-type"] == "application/json"
    assert _detail(body) == [
        {
            "loc": ["body", "messages", 0, "content", 0, "image", "source", "bytes"],
            "msg": "Invalid base64 data in the image block.",
            "type": "value_error",
        },
        {"loc": ["body", "modelId"], "msg": "Missing data for required field.", "type": "missing"},
    ]
    assert SECRET.encode() not in body


def test_unknown_fields_are_ignored(server):
    payload = chat('[[emulator reply="fine"]]', newFieldFromTheFuture={"x": 1})
    payload["messages"][0]["clientTimestamp"] = 123
    status, _, body = server.request("/api/converse", payload)
    assert (status, body.split(b"\n")[0]) == (200, b"fine")


def test_block_types_bedrock_does_not_have_are_refused_by_bedrock_rules(server):
    payload = chat("hi")
    payload["messages"][0]["content"].append({"hologram": {"x": 1}})
    status, headers, body = server.request("/api/converse/v3", payload)
    assert status == 400
    assert body.startswith(b"Error: Parameter validation failed")


def test_too_large_a_body_is_a_413(server):
    payload = chat("x" * (65 * 1024 * 1024))
    status, _, body = server.request("/api/converse", payload)
    assert status == 413
    assert _detail(body) == "The request body is larger than 64 MB."


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [("POST", "/api/nothing", 404, "Not Found"), ("GET", "/api/converse/v3", 405, "Method Not Allowed")],
)
def test_unknown_routes_answer_in_the_apps_shape(server, method, path, status, detail):
    got, _, body = server.request(path, method=method)
    assert (got, _detail(body)) == (status, detail)


def test_server_stays_up_after_bad_input(server):
    for raw in ("", "null", "[]", "{", '{"messages": null}', "\x00\xff"):
        assert server.request("/api/converse/v3", raw=raw)[0] == 422
    status, _, body = server.request("/api/converse", chat('[[emulator reply="still here"]]'))
    assert (status, body.split(b"\n")[0]) == (200, b"still here")
