"""POST /api/upgrade against a local stand-in for the GitHub tags API (no test touches the internet)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from conftest import TEST_KEY, Server, chat, emulator_env

DOWNLOADS = "https://downloads.example/swift-chat/releases/download"
CACHE_SECONDS = 0.3


class ReleaseSource:
    """A tags endpoint whose answer, status and speed the tests set."""

    def __init__(self):
        self.tags = ["2.9.9", "latest", "2.10.0", "v3.0.0", "2.1"]
        self.status = 200
        self.delay = 0.0
        self.hits = 0
        self.asked = threading.Event()
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                source.hits += 1
                source.asked.set()
                time.sleep(source.delay)
                data = (
                    json.dumps([{"name": tag} for tag in source.tags]).encode() if source.status == 200 else b"<html>"
                )
                self.send_response(source.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/repos/aws-samples/swift-chat/tags"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def change(self, **settings):
        for name, value in settings.items():
            setattr(self, name, value)
        time.sleep(CACHE_SECONDS + 0.1)  # let the server's cached answer expire


@pytest.fixture(scope="module")
def releases():
    source = ReleaseSource()
    yield source
    source.httpd.shutdown()
    source.httpd.server_close()


def _settings(url):
    return {
        "UPGRADE_TAGS_URL": url,
        "UPGRADE_DOWNLOAD_URL": DOWNLOADS,
        "UPGRADE_CACHE_SECONDS": str(CACHE_SECONDS),
        "UPGRADE_TIMEOUT_SECONDS": "1",
    }


@pytest.fixture(scope="module")
def upgrade_server(emulator, releases):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, **_settings(releases.url)})
    yield live
    live.stop()


def _upgrade(server, os_name, version, key=TEST_KEY):
    status, _, body = server.request("/api/upgrade", {"os": os_name, "version": version}, key=key)
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("os_name", "version", "answer"),
    [
        ("android", "2.9.0", {"needUpgrade": True, "version": "2.10.0", "url": f"{DOWNLOADS}/2.10.0/SwiftChat.apk"}),
        ("mac", "1.0.0", {"needUpgrade": True, "version": "2.10.0", "url": f"{DOWNLOADS}/2.10.0/SwiftChat.dmg"}),
        ("ios", "1.0.0", {"needUpgrade": True, "version": "2.10.0", "url": ""}),
        ("android", "2.10.0", {"needUpgrade": False, "version": "2.10.0", "url": ""}),
        ("android", "3.0.0", {"needUpgrade": False, "version": "2.10.0", "url": ""}),
        ("android", "2.1", {"needUpgrade": False, "version": "2.10.0", "url": ""}),
        ("mac", "v2.0.0", {"needUpgrade": False, "version": "2.10.0", "url": ""}),
        ("android", "", {"needUpgrade": False, "version": "2.10.0", "url": ""}),
        ("android", "2.1.0-beta", {"needUpgrade": False, "version": "2.10.0", "url": ""}),
    ],
)
def test_upgrade_compares_with_the_newest_release(upgrade_server, os_name, version, answer):
    assert _upgrade(upgrade_server, os_name, version) == (200, answer)


def test_newest_release_is_looked_up_once_per_cache_period(upgrade_server, releases):
    releases.change(tags=["2.4.0"])
    before = releases.hits
    for _ in range(5):
        assert _upgrade(upgrade_server, "android", "2.3.0")[1]["version"] == "2.4.0"
    assert releases.hits == before + 1


@pytest.mark.parametrize(
    "broken",
    [
        {"status": 500},
        {"status": 200, "tags": ["nightly", "latest"]},
        {"status": 200, "tags": ["1." + "9" * 5000 + ".0"]},  # past what int() takes
        {"status": 200, "tags": [f"0.0.{i}" for i in range(100_000)] + ["9.9.9"]},  # an answer over 1 MB
    ],
    ids=["server error", "no version tags", "a 5000-digit tag", "an oversized answer"],
)
def test_broken_release_source_offers_no_upgrade(upgrade_server, releases, broken):
    releases.change(**broken)
    try:
        assert _upgrade(upgrade_server, "android", "1.0.0") == (
            200,
            {"needUpgrade": False, "version": "0.0.0", "url": ""},
        )
    finally:
        releases.change(status=200, tags=["2.10.0"])


def test_unreachable_release_source_offers_no_upgrade(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, **_settings("http://127.0.0.1:9/tags")})
    try:
        assert _upgrade(live, "mac", "1.0.0") == (200, {"needUpgrade": False, "version": "0.0.0", "url": ""})
    finally:
        live.stop()


def test_slow_release_source_blocks_nothing_and_times_out(upgrade_server, releases):
    releases.change(delay=3.0)
    releases.asked.clear()
    outcome = {}
    waiting = threading.Thread(target=lambda: outcome.update(answer=_upgrade(upgrade_server, "android", "1.0.0")))
    try:
        waiting.start()
        assert releases.asked.wait(5)
        status, _, body = upgrade_server.request("/api/converse", chat('[[emulator reply="meanwhile"]]'))
        assert (status, body.split(b"\n")[0]) == (200, b"meanwhile")
        assert waiting.is_alive(), "the chat should have been served while the lookup was still waiting"
        waiting.join(10)
    finally:
        releases.change(delay=0.0)
    assert outcome["answer"] == (200, {"needUpgrade": False, "version": "0.0.0", "url": ""})


def test_upgrade_rereads_a_rotated_key(emulator, moto_url, releases):
    ssm = boto3.client("ssm", region_name="us-west-2", endpoint_url=moto_url)
    ssm.put_parameter(Name="/swiftchat/rotated", Value="key-one", Type="SecureString", Overwrite=True)
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY_NAME": "/swiftchat/rotated",
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "SWIFTCHAT_KEY_REFRESH_SECONDS": "0.5",
            **_settings(releases.url),
        }
    )
    hello = chat('[[emulator reply="hi"]]')
    try:
        assert live.request("/api/converse", hello, key="key-one")[0] == 200
        ssm.put_parameter(Name="/swiftchat/rotated", Value="key-two", Type="SecureString", Overwrite=True)
        assert live.request("/api/converse", hello, key="key-two")[0] == 401  # the cached key still rules
        time.sleep(0.6)  # a refresh re-reads the store at most every SWIFTCHAT_KEY_REFRESH_SECONDS
        assert _upgrade(live, "android", "2.0.0", key="key-two")[0] == 200
        assert live.request("/api/converse", hello, key="key-two")[0] == 200
        assert live.request("/api/converse", hello, key="key-one")[0] == 401
    finally:
        live.stop()
