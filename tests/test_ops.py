"""What an operator sees: OpenAPI and docs, health, metrics over two workers, JSON logs, shutdown."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import TEST_KEY, Server, access_lines, chat, emulator_env, metric_value, stream_record
from openapi_spec_validator import validate

from swiftchat_api import create_app
from swiftchat_api.config import Config
from swiftchat_api.emulator.images import png
from swiftchat_api.store import open_store


def _json(body):
    return json.loads(body)


def test_openapi_describes_every_route(server):
    status, headers, body = server.request("/openapi.json", method="GET", key=None)
    assert status == 200 and headers["content-type"] == "application/json"
    spec = _json(body)
    validate(spec)
    app = create_app(Config(api_key="unused"))
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())  # /v1/models/<path:model_id>
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.endpoint != "static" and not rule.rule.startswith("/docs")
    }
    documented = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert routes == documented
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    v3 = spec["paths"]["/api/converse/v3"]["post"]
    assert "text/event-stream" in v3["responses"]["200"]["content"]
    assert v3["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConverseRequest"
    }
    assert {"messages", "modelId", "region", "enableThinking", "system"} <= set(
        spec["components"]["schemas"]["ConverseRequest"]["properties"]
    )
    assert "422" in v3["responses"] and "429" in v3["responses"]


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium() and not os.environ.get("CI"), reason="Debian's chromium is not installed")
def test_docs_page_renders_the_routes_in_a_real_browser(server):
    assert _chromium(), "CI needs Debian's chromium for this test: apt-get install chromium"
    status, _, page = server.request("/docs/", method="GET", key=None)
    assert status == 200
    assert not re.findall(rb'(?:src|href)="(?:https?:)?//', page), "the docs page must load nothing from the internet"
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"http://127.0.0.1:{server.port}/docs/",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    dom = result.stdout
    assert "swiftchat-api" in dom
    for path in ("/api/converse/v3", "/api/image", "/api/models", "/api/upgrade", "/api/token", "/healthz"):
        assert path in dom, f"{path} is not on the rendered docs page"


def test_healthz_needs_no_key(server):
    assert server.request("/healthz", method="GET", key=None)[::2] == (200, b'{"status":"ok"}\n')


def test_readyz_tells_whether_the_key_source_is_readable(server, emulator, moto_url):
    assert server.request("/readyz", method="GET", key=None)[::2] == (200, b'{"status":"ready"}\n')
    broken = Server({**emulator_env(emulator), "API_KEY_NAME": "/swiftchat/missing", "AWS_ENDPOINT_URL_SSM": moto_url})
    try:
        status, _, body = broken.request("/readyz", method="GET", key=None)
    finally:
        broken.stop()
    assert status == 503
    assert _json(body)["status"] == "unavailable" and "ParameterNotFound" in _json(body)["detail"]


def test_metrics_need_the_api_key(server):
    assert server.request("/metrics", method="GET", key=None)[0] == 403
    status, headers, body = server.request("/metrics", method="GET")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"swiftchat_requests_total" in body


def test_metrics_token_sees_every_series_and_the_api_key_the_server_wide_ones(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "METRICS_TOKEN": "scrape-me"})
    try:
        assert live.request("/api/converse/v3", chat('[[emulator reply="ok"]]'))[0] == 200
        status, _, everything = live.request("/metrics", method="GET", key="scrape-me")
        assert status == 200 and b'swiftchat_key_requests_total{key="default"}' in everything
        status, _, server_wide = live.request("/metrics", method="GET")
        assert status == 200 and b"swiftchat_requests_total" in server_wide
        assert b"swiftchat_key_" not in server_wide
        assert live.request("/metrics", method="GET", key="nope-0123456789")[0] == 401
    finally:
        live.stop()


@pytest.fixture(scope="module")
def two_workers(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "BEDROCK_MAX_ATTEMPTS": "1"}, workers=2)
    yield live
    live.stop()


def test_metrics_sum_over_two_workers(two_workers):
    body = chat("[[emulator words=10 delay_ms=30]]")
    sent = 0
    # A worker takes up to 32 waiting connections a turn, so on a busy machine one worker can take
    # a whole burst while the other waits to be scheduled: bursts go on until both have served.
    for _ in range(5):
        with ThreadPoolExecutor(max_workers=60) as pool:
            results = list(pool.map(lambda _: two_workers.request("/api/converse/v3", body), range(60)))
        assert all(status == 200 for status, _, _ in results)
        sent += 60
        served_by = {line["pid"] for line in access_lines(two_workers) if line["route"] == "/api/converse/v3"}
        if len(served_by) == 2:
            break
    assert len(served_by) == 2, "both workers should have served streams"
    assert two_workers.request("/api/converse/v3", chat("[[emulator error=throttling]]"))[0] == 429
    deadline = time.monotonic() + 5  # a worker counts a request once its last byte has gone
    while time.monotonic() < deadline:
        text = two_workers.request("/metrics", method="GET")[2].decode()
        counted = metric_value(text, "swiftchat_requests_total", route="/api/converse/v3", status="200")
        if counted + metric_value(text, "swiftchat_requests_total", route="/api/converse/v3", status="429") >= sent + 1:
            break
        time.sleep(0.1)
    for _ in range(4):  # whichever worker answers, it reports the sum
        text = two_workers.request("/metrics", method="GET")[2].decode()
        assert metric_value(text, "swiftchat_requests_total", route="/api/converse/v3", status="200") == sent
        assert metric_value(text, "swiftchat_requests_total", route="/api/converse/v3", status="429") == 1
        assert metric_value(text, "swiftchat_bedrock_tokens_total", direction="output") == sent * 10
        assert metric_value(text, "swiftchat_time_to_first_event_seconds_count", route="/api/converse/v3") == sent
        assert metric_value(text, "swiftchat_stream_duration_seconds_count", route="/api/converse/v3") == sent
        assert metric_value(text, "swiftchat_upstream_errors_total", type="ThrottlingException") == 1
        assert metric_value(text, "swiftchat_open_streams") == 0


def test_disconnects_and_mid_stream_errors_are_counted(server):
    before = server.request("/metrics", method="GET")[2].decode()
    sock = server.open_stream("/api/converse/v3", chat("[[emulator words=200 delay_ms=20]]"))
    sock.recv(65536)
    sock.close()
    server.request("/api/converse/v3", chat("[[emulator fail_after=2]]"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = server.request("/metrics", method="GET")[2].decode()
        if metric_value(after, "swiftchat_client_disconnects_total") > metric_value(
            before, "swiftchat_client_disconnects_total"
        ):
            break
        time.sleep(0.1)
    assert (
        metric_value(after, "swiftchat_client_disconnects_total")
        == metric_value(before, "swiftchat_client_disconnects_total") + 1
    )
    errors = "swiftchat_upstream_errors_total"
    code = "modelStreamErrorException"
    assert metric_value(after, errors, type=code) == metric_value(before, errors, type=code) + 1


def test_access_line_per_request_with_request_id(server):
    status, headers, _ = server.request(
        "/api/converse/v3", chat('[[emulator reply="one two"]]'), headers={"X-Request-ID": "req-42"}
    )
    assert status == 200 and headers["x-request-id"] == "req-42"
    _, generated, _ = server.request("/api/converse", chat("hi"), headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated["x-request-id"])
    time.sleep(0.2)
    line = next(line for line in access_lines(server) if line["request_id"] == "req-42")
    assert line["route"] == "/api/converse/v3" and line["status"] == 200 and line["method"] == "POST"
    assert line["model"] == "anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert (line["input_tokens"], line["output_tokens"]) == (1, 2)
    assert line["bytes"] > 0 and line["duration_ms"] >= 0
    assert any(line["request_id"] == generated["x-request-id"] for line in access_lines(server))


def test_logs_never_hold_the_key_text_or_images(server):
    secret = "purple-elephant-diary"
    image = base64.b64encode(b"\x89PNG-private-picture-bytes").decode()
    content = [
        {"text": f"{secret} [[emulator fail_after=1]]"},
        {"image": {"format": "png", "source": {"bytes": image}}},
    ]
    payload = {"messages": [{"role": "user", "content": content}], "modelId": "m", "region": "us-west-2"}
    server.request("/api/converse/v3", payload)
    server.request("/api/converse/v3", {**payload, "region": 7})
    picture = base64.b64encode(png(64, 64, "private")).decode()
    drawn = server.request(
        "/api/image",
        {
            "prompt": f"{secret}: make a variation of this",
            "refImages": [{"format": "png", "source": {"bytes": picture}}],
            "modelId": "amazon.nova-canvas-v1:0",
            "region": "us-west-2",
            "width": 1024,
            "height": 1024,
        },
    )
    assert drawn[0] == 200 and "image" in json.loads(drawn[2])  # the image service really ran on it
    server.request("/api/converse", payload, key=TEST_KEY + "-wrong")
    time.sleep(0.2)
    log = server.output()
    for private in (TEST_KEY, secret, image, picture):
        assert private not in log


def _stream_in_background(server, body, received):
    def run():
        sock = server.open_stream("/api/converse/v3", body)
        while chunk := sock.recv(65536):
            received.append(chunk)
        sock.close()

    thread = threading.Thread(target=run)
    thread.start()
    while not received:
        time.sleep(0.02)
    return thread


def test_sigterm_lets_open_streams_finish_and_refuses_new_ones(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "GRACEFUL_TIMEOUT": "20", "GUNICORN_KEEPALIVE": "1"})
    received = []
    try:
        thread = _stream_in_background(live, chat("[[emulator words=40 delay_ms=100]]"), received)
        live.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # a gevent worker looks at its stop flag once a second
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", live.port), timeout=2).close()
        assert live.process.poll() is None, "the open stream should keep the server up"
        thread.join(30)
        assert live.process.wait(30) == 0
    finally:
        live.stop()
    body = b"".join(received)
    assert body.count(b'{"contentBlockDelta"') == 40
    assert b'{"metadata"' in body
    # The stream ended during the shutdown, moments before the worker exited: its usage was kept.
    store = open_store(f"sqlite:///{live.logfile.with_suffix('.db')}")
    try:
        (default,) = store.usage()
    finally:
        store.close()
    assert (default["name"], default["requests"]) == ("default", 1)
    assert default["output_tokens"] > 0


def test_grace_period_ends_with_upstream_closed(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "GRACEFUL_TIMEOUT": "1", "GUNICORN_KEEPALIVE": "1"})
    received = []
    try:
        thread = _stream_in_background(live, chat("[[emulator id=shutdown-cut words=300 delay_ms=50]]"), received)
        started = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        live.process.wait(30)
        thread.join(30)
        assert time.monotonic() - started < 10
    finally:
        live.stop()
    record = stream_record(emulator, "shutdown-cut")
    deadline = time.monotonic() + 5
    while record["state"] == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
        record = stream_record(emulator, "shutdown-cut")
    assert record["state"] == "cancelled" and record["events"] < 300
