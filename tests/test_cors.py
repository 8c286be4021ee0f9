"""CORS_ORIGINS: browsers on the listed origins may call /v1 (and nothing else); off by default."""

import http.client
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import TEST_KEY, Server, emulator_env, free_port

from swiftchat_api.config import Config, ConfigError

PAGE_PORT = free_port()
PAGE_ORIGIN = f"http://127.0.0.1:{PAGE_PORT}"
APP = "https://app.example.com"


@pytest.fixture(scope="module")
def open_to_browsers(emulator):
    """A server that lets two origins' pages call /v1."""
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "CORS_ORIGINS": f"{APP}, {PAGE_ORIGIN}"})
    yield live
    live.stop()


def preflight(server, path, origin, headers="authorization, content-type"):
    """A browser's preflight for a POST with ``headers``: (status, lower-cased headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(
        "OPTIONS",
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers},
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/models"])
@pytest.mark.parametrize("key_header", ["authorization", "x-api-key"])
def test_a_listed_origins_preflight_is_allowed_with_the_key_header(open_to_browsers, path, key_header):
    status, headers = preflight(open_to_browsers, path, APP, f"{key_header}, content-type, x-stainless-os")
    assert status == 200
    assert headers["access-control-allow-origin"] == APP
    assert "POST" in headers["access-control-allow-methods"]
    allowed = {name.strip().lower() for name in headers["access-control-allow-headers"].split(",")}
    assert {key_header, "content-type", "x-stainless-os"} <= allowed
    assert headers["access-control-max-age"] == "600"


def test_another_origin_and_the_apps_routes_get_no_cors_headers(open_to_browsers):
    _, headers = preflight(open_to_browsers, "/v1/chat/completions", "https://evil.example.net")
    assert "access-control-allow-origin" not in headers
    _, headers = preflight(open_to_browsers, "/api/converse/v3", APP)
    assert "access-control-allow-origin" not in headers


def test_answers_and_refusals_carry_the_origin_and_the_retry_headers(open_to_browsers):
    status, headers, _ = open_to_browsers.request("/v1/models", method="GET", headers={"Origin": APP})
    assert status == 200 and headers["access-control-allow-origin"] == APP
    assert "x-should-retry" in headers["access-control-expose-headers"].lower()
    status, headers, _ = open_to_browsers.request("/v1/models", method="GET", key="wrong", headers={"Origin": APP})
    assert status == 401 and headers["access-control-allow-origin"] == APP  # the page can read why


def test_cors_is_off_by_default(server):
    status, headers, _ = server.request("/v1/models", method="GET", headers={"Origin": APP})
    assert status == 200 and "access-control-allow-origin" not in headers
    assert "access-control-allow-origin" not in preflight(server, "/v1/chat/completions", APP)[1]


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("", ()),
        ("*", ("*",)),
        ("https://a.example.com", ("https://a.example.com",)),
        (" HTTPS://A.example.com , http://localhost:3000", ("https://a.example.com", "http://localhost:3000")),
    ],
)
def test_cors_origins_setting(raw, origins):
    assert Config.from_env({"API_KEY": "k", "CORS_ORIGINS": raw}).cors_origins == origins


@pytest.mark.parametrize(
    "raw", ["a.example.com", "https://a.example.com/path", "https://*.example.com", "*, https://a"]
)
def test_cors_origins_that_are_not_origins_are_refused_at_start(raw):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        Config.from_env({"API_KEY": "k", "CORS_ORIGINS": raw})


def _page(api_port):
    """A page that asks /v1/models with the key, as a browser client does, and shows the answer."""
    return f"""<!doctype html><title>cors</title><pre id="out">waiting</pre><script>
fetch("http://127.0.0.1:{api_port}/v1/models", {{headers: {{"Authorization": "Bearer {TEST_KEY}"}}}})
  .then(r => r.json()).then(j => {{ document.getElementById("out").textContent = "models:" + j.data.length; }})
  .catch(e => {{ document.getElementById("out").textContent = "failed:" + e; }});
</script>""".encode()


@pytest.mark.skipif(
    not shutil.which("chromium") and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
@pytest.mark.parametrize(("api", "shown"), [("open_to_browsers", "models:"), ("server", "failed:")])
def test_a_page_on_a_listed_origin_reads_v1_in_a_real_browser(request, api, shown):
    assert shutil.which("chromium"), "CI needs Debian's chromium for this test: apt-get install chromium"
    page = _page(request.getfixturevalue(api).port)  # the default server lets no page read it

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    site = ThreadingHTTPServer(("127.0.0.1", PAGE_PORT), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", f"{PAGE_ORIGIN}/"],
                capture_output=True, text=True, timeout=120,
            ).stdout  # fmt: skip
    finally:
        site.shutdown()
        site.server_close()
    assert f'<pre id="out">{shown}' in dom
