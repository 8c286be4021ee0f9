"""The API key in Parameter Store: one read serves everyone, an outage answers fast, nothing leaks.

A stand-in Parameter Store (a real HTTP server speaking SSM's JSON protocol) counts the reads
boto3 makes and can be told to hang, so each test sees what the store sees.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import Server, chat, emulator_env

PARAMETER = "/secret/team-swiftchat/api-key"
HELLO = chat('[[emulator reply="ok"]]')


class FakeParameterStore:
    """GetParameter over HTTP: answers with ``value``, or hangs while ``hang`` is set."""

    def __init__(self, value="ssm-key"):
        self.value = value
        self.reads = 0
        self.hang = threading.Event()
        self.release = threading.Event()
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                store.reads += 1
                if store.hang.is_set():
                    store.release.wait(30)
                    return
                body = json.dumps(
                    {"Parameter": {"Name": PARAMETER, "Type": "SecureString", "Value": store.value, "Version": 1}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def parameter_store():
    store = FakeParameterStore()
    yield store
    store.close()


def _server(emulator, store, **env):
    # AWS_REGION alone, as the README's systemd unit sets it: boto3 itself reads only AWS_DEFAULT_REGION.
    return Server(
        {
            **emulator_env(emulator),
            "AWS_DEFAULT_REGION": "",
            "AWS_REGION": "us-west-2",
            "API_KEY_NAME": PARAMETER,
            "AWS_ENDPOINT_URL_SSM": store.url,
            **env,
        }
    )


def test_the_systemd_units_settings_authenticate(emulator, parameter_store):
    live = _server(emulator, parameter_store)
    try:
        status, _, body = live.request("/api/converse", HELLO, key="ssm-key")
        assert (status, body.split(b"\n")[0]) == (200, b"ok")
        assert live.request("/api/converse", HELLO, key="wrong")[0] == 401
    finally:
        live.stop()


def test_a_hanging_parameter_store_is_read_once_for_everyone_and_answers_generically(emulator, parameter_store):
    parameter_store.hang.set()
    live = _server(emulator, parameter_store)
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            answers = list(pool.map(lambda _: live.request("/api/converse", HELLO, key="ssm-key"), range(5)))
        reads = parameter_store.reads
        again = live.request("/api/converse", HELLO, key="ssm-key")  # within the remembered failure
        ready = live.request("/readyz", method="GET", key=None)
    finally:
        live.stop()
    assert [status for status, _, _ in answers] == [401] * 5
    assert reads <= 2  # one read (two attempts at most) served all five callers, not five reads each
    assert parameter_store.reads == reads  # the next caller was answered from the remembered failure
    assert again[0] == 401
    for _, _, body in [*answers, again, ready]:
        assert PARAMETER.encode() not in body and b"team-swiftchat" not in body
    assert ready[0] == 503
    assert json.loads(answers[0][2])["detail"].startswith(
        "Error: Please create your API Key in Parameter Store, it could not be read ("
    )


def test_upgrade_rereads_the_key_at_most_every_few_seconds(emulator, parameter_store):
    live = _server(emulator, parameter_store, SWIFTCHAT_KEY_REFRESH_SECONDS="5")
    body = {"os": "android", "version": "1.0.0"}
    try:
        assert live.request("/api/converse", HELLO, key="ssm-key")[0] == 200
        reads = parameter_store.reads
        for _ in range(10):  # someone hammering /api/upgrade with a wrong key
            assert live.request("/api/upgrade", body, key="wrong")[0] == 401
        assert parameter_store.reads - reads <= 1
        parameter_store.value = "rotated-key"
        time.sleep(5.2)
        assert live.request("/api/upgrade", body, key="rotated-key")[0] == 200  # a due refresh sees the rotation
    finally:
        live.stop()
