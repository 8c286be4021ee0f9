"""The shipped nginx site file (deploy/nginx/swiftchat-api.conf), checked by nginx and served through, as it is.

Only its ports are changed (and, without Debian's ssl-cert package, its certificate): every route,
streams as they are produced, /metrics kept to this host. Debian's nginx runs these; .ci/run
installs it, and elsewhere they are skipped when it is missing (apt-get install nginx ssl-cert).
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import TEST_KEY, Server, chat, emulator_env, free_port
from nginx_support import SITE, SNAKEOIL, local_site, main_config, nginx, write

pytestmark = pytest.mark.skipif(not nginx() and not os.environ.get("CI"), reason="Debian's nginx is not installed")


def _nginx():
    found = nginx()
    assert found, "CI needs Debian's nginx for these tests: apt-get install nginx ssl-cert"
    return found


def test_the_site_file_passes_nginx_t_as_shipped(tmp_path):
    if not all(os.path.exists(path) for path in SNAKEOIL):
        assert not os.environ.get("CI"), "CI needs Debian's ssl-cert package: the site file's placeholder certificate"
        pytest.skip("Debian's ssl-cert package is not installed: the site file names its certificate")
    conf = main_config(tmp_path, SITE)
    result = subprocess.run(
        [_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_a_broken_site_file_fails_nginx_t(tmp_path):
    """The check above can fail: the same file with one directive misspelt is refused."""
    broken = local_site(tmp_path, 8080, free_port(), free_port(), ("/nonexistent.pem", "/nonexistent.key"))
    broken.write_text(broken.read_text().replace("proxy_buffering off;", "proxy_bufering off;"))
    conf = main_config(tmp_path, broken)
    result = subprocess.run(
        [_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "proxy_bufering" in result.stderr


class _Provider(BaseHTTPRequestHandler):
    """An OpenAI-compatible provider for "Use Proxy": a two-event stream."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'data: {"choices": [{"delta": {"content": "via nginx"}}]}\n\ndata: [DONE]\n\n'
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def behind_nginx(emulator, provider, tmp_path_factory):
    """(https port, http port) of nginx with the shipped site file, in front of a live server."""
    app = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "SWIFTCHAT_KEEPALIVE_SECONDS": "0.3",
            "OPENAI_PROXY_HOSTS": f"127.0.0.1:{provider}",
        }
    )
    directory = tmp_path_factory.mktemp("nginx")
    http_port, https_port = free_port(), free_port()
    conf = write(directory, app.port, http_port, https_port)
    with open(directory / "nginx.log", "w") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [_nginx(), "-p", str(directory), "-c", str(conf), "-e", "stderr"], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, (directory / "nginx.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)
    yield https_port, http_port
    process.terminate()
    process.wait(10)
    app.stop()


def _tls():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the placeholder certificate
    return context


def _connect(port, source=None):
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=30, context=_tls(), source_address=(source, 0) if source else None
    )
    return connection


def _request(port, method, path, body=None, headers=None, source=None):
    connection = _connect(port, source)
    connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


_AUTH = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}


def test_a_v3_streams_events_arrive_as_they_are_produced(behind_nginx):
    https_port, _ = behind_nginx
    connection = _connect(https_port)
    connection.request("POST", "/api/converse/v3", json.dumps(chat("[[emulator words=6 delay_ms=400]]")), headers=_AUTH)
    response = connection.getresponse()
    assert response.status == 200
    arrivals = []  # (seconds, text) of each delta as this client reads it
    started = time.monotonic()
    buffered = b""
    while piece := response.read1(65536):
        buffered += piece
        *events, buffered = buffered.split(b"\n\n")
        for event in events:
            if b"contentBlockDelta" in event:
                arrivals.append((time.monotonic() - started, json.loads(event)["contentBlockDelta"]["delta"]["text"]))
    connection.close()
    assert len(arrivals) == 6
    gaps = sorted(later[0] - earlier[0] for earlier, later in zip(arrivals, arrivals[1:], strict=False))
    # 400 ms between the model's words: they arrive spread out as produced, not together at the end
    # (the median gap, so that one late event on a busy machine does not decide it).
    assert arrivals[-1][0] - arrivals[0][0] > 1.0 and gaps[len(gaps) // 2] > 0.2, f"held back: {arrivals}"


def test_v1_models_answers_through_nginx(behind_nginx):
    status, headers, body = _request(behind_nginx[0], "GET", "/v1/models", headers=_AUTH)
    assert status == 200 and headers["content-type"].startswith("application/json")
    models = json.loads(body)
    assert models["object"] == "list" and models["data"] and any("claude" in m["id"] for m in models["data"])


def test_every_operator_route_is_served(behind_nginx):
    port = behind_nginx[0]
    assert _request(port, "GET", "/healthz")[::2] == (200, b'{"status":"ok"}\n')
    assert _request(port, "GET", "/readyz")[::2] == (200, b'{"status":"ready"}\n')
    status, _, body = _request(port, "GET", "/openapi.json")
    assert status == 200 and "/v1/chat/completions" in json.loads(body)["paths"]
    status, _, page = _request(port, "GET", "/docs/")
    assert status == 200 and b"swagger" in page.lower()
    status, _, body = _request(port, "POST", "/api/models", {"region": "us-west-2"}, _AUTH)
    assert status == 200 and "textModel" in json.loads(body)
    assert _request(port, "GET", "/elsewhere")[0] == 404


def test_metrics_answer_this_host_only(behind_nginx):
    port = behind_nginx[0]
    status, _, body = _request(port, "GET", "/metrics", headers=_AUTH)
    assert status == 200 and b"swiftchat_requests_total" in body
    # Another address (all of 127/8 is this machine's loopback): refused by nginx, key or not.
    assert _request(port, "GET", "/metrics", headers=_AUTH, source="127.0.0.2")[0] == 403


def test_plain_http_points_to_https(behind_nginx):
    https_port, http_port = behind_nginx
    connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    connection.request("GET", "/api/models")
    response = connection.getresponse()
    assert response.status == 301 and response.getheader("Location").startswith("https://")
    connection.close()


def test_use_proxy_keeps_the_apps_request_url_header(behind_nginx, provider):
    headers = {
        "x-api-key": TEST_KEY,
        "Authorization": "Bearer the-providers-key",
        "Content-Type": "application/json",
        "request_url": f"http://127.0.0.1:{provider}/v1/chat/completions",
    }
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    status, _, answer = _request(behind_nginx[0], "POST", "/api/openai", body, headers)
    assert status == 200 and b"via nginx" in answer, answer  # nginx drops request_url without underscores_in_headers
