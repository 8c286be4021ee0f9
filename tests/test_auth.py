"""Every auth case of PROTOCOL.md, against live servers with a literal key and with SSM."""

import json
import os
import socket
import subprocess
import sys

import boto3
import pytest
from conftest import ROOT, TEST_KEY, Server, chat, emulator_env

from swiftchat_api.auth import ParameterStoreKey
from swiftchat_api.exceptions import ApiError

HELLO = chat('[[emulator reply="ok"]]')


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 403, "Not authenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 403, "Invalid authentication credentials"),
        ({"Authorization": "Bearer"}, 403, "Not authenticated"),
        ({"Authorization": "Bearer wrong-key"}, 401, "Invalid API Key"),
        ({"x-api-key": "wrong-key"}, 401, "Invalid API Key"),
        ({"Authorization": f"Bearer {TEST_KEY}x"}, 401, "Invalid API Key"),
    ],
)
def test_refused_credentials(server, headers, status, detail):
    got, response_headers, body = server.request("/api/converse/v3", HELLO, headers=headers, key=None)
    assert got == status
    assert response_headers["content-type"] == "application/json"
    assert body == f'{{"detail":"{detail}"}}\n'.encode()


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {TEST_KEY}"}, {"authorization": f"bearer {TEST_KEY}"}, {"x-api-key": TEST_KEY}],
)
def test_accepted_credentials(server, headers):
    status, _, body = server.request("/api/converse", HELLO, headers=headers, key=None)
    assert (status, body.split(b"\n")[0]) == (200, b"ok")


def test_auth_is_checked_before_the_body(server):
    status, _, body = server.request("/api/converse", raw="{not json", key=None)
    assert (status, body) == (403, b'{"detail":"Not authenticated"}\n')


@pytest.fixture(scope="module")
def ssm(moto_url):
    client = boto3.client("ssm", region_name="us-west-2", endpoint_url=moto_url)
    client.put_parameter(Name="/swiftchat/key", Value="ssm-key-1", Type="SecureString", Overwrite=True)
    return client


@pytest.fixture(scope="module")
def ssm_server(emulator, moto_url, ssm):
    live = Server({**emulator_env(emulator), "API_KEY_NAME": "/swiftchat/key", "AWS_ENDPOINT_URL_SSM": moto_url})
    yield live
    live.stop()


def test_key_from_parameter_store(ssm_server):
    status, _, body = ssm_server.request("/api/converse", HELLO, key="ssm-key-1")
    assert (status, body.split(b"\n")[0]) == (200, b"ok")
    assert ssm_server.request("/api/converse", HELLO, key="other")[0] == 401


def test_missing_parameter_is_a_401_that_names_the_reason(emulator, moto_url):
    live = Server({**emulator_env(emulator), "API_KEY_NAME": "/swiftchat/absent", "AWS_ENDPOINT_URL_SSM": moto_url})
    try:
        status, _, body = live.request("/api/converse", HELLO, key="anything")
    finally:
        live.stop()
    assert status == 401
    assert body == (
        b'{"detail":"Error: Please create your API Key in Parameter Store, '
        b'it could not be read (ParameterNotFound)."}\n'
    )
    assert b"/swiftchat/absent" not in body  # no parameter names or ARNs for unauthenticated callers
    assert "ParameterNotFound" in live.output()  # the operator finds the reason in the log


def test_parameter_store_key_is_cached_until_refreshed(moto_url, ssm):
    source = ParameterStoreKey(
        lambda: boto3.client("ssm", region_name="us-west-2", endpoint_url=moto_url),
        "/rotating",
        refresh_interval=0,
        failure_ttl=0,
    )
    ssm.put_parameter(Name="/rotating", Value="first", Type="SecureString", Overwrite=True)
    assert source.get() == "first"
    ssm.put_parameter(Name="/rotating", Value="second", Type="SecureString", Overwrite=True)
    assert source.get() == "first"
    assert source.get(refresh=True) == "second"
    assert source.get() == "second"
    ssm.delete_parameter(Name="/rotating")
    with pytest.raises(ApiError) as refused:
        source.get(refresh=True)
    assert refused.value.status == 401 and "second" not in refused.value.detail


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "No API key configured"),
        ({"API_KEY": "a", "API_KEY_NAME": "/b"}, "Set API_KEY or API_KEY_NAME, not both"),
        ({"API_KEY": "a", "SWIFTCHAT_KEEPALIVE_SECONDS": "soon"}, "SWIFTCHAT_KEEPALIVE_SECONDS must be a number"),
    ],
)
def test_server_refuses_to_start_without_a_sound_config(env, message):
    clean = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "API_KEY_NAME")}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={**clean, "GUNICORN_BIND": "127.0.0.1:0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def _expecting_continue(port, key):
    """Send a chat's head with ``Expect: 100-continue`` and wait: what the server says before the body."""
    body = json.dumps(HELLO).encode()
    head = (
        f"POST /api/converse/v3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        first = sock.recv(65536)
        if first.startswith(b"HTTP/1.1 100"):
            sock.sendall(body)
        answer = first
        while more := sock.recv(65536):
            answer += more
    return first, answer


def test_100_continue_only_once_the_key_is_accepted(server):
    first, answer = _expecting_continue(server.port, "wrong-key")
    assert first.startswith(b"HTTP/1.1 401"), first[:100]  # the body was never asked for
    first, answer = _expecting_continue(server.port, TEST_KEY)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"HTTP/1.1 200" in answer and answer.rstrip().endswith(b"0")
