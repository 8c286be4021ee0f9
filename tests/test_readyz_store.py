"""/readyz tells when the key store cannot be opened or written, as the service's user, and why."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from conftest import TEST_KEY, Server, chat, emulator_env, flask_keys

# Root writes any file whatever its mode; the server is started without that privilege, as the
# service's own user would be (the install test in .ci/ runs it as that user for real).
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


@pytest.fixture
def store_dir():
    path = tempfile.mkdtemp(prefix="swiftchat-readyz-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _server_bound_by_file_modes(monkeypatch, env):
    """The conftest Server, for whom a file's mode counts even when the tests run as root."""
    if os.getuid() != 0:
        return Server(env)
    popen = subprocess.Popen
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", lambda args, **options: popen([*WITHOUT_OVERRIDE, *args], **options))
        return Server(env)


def _ready(server):
    status, _, body = server.request("/readyz", method="GET", key=None)
    return status, json.loads(body)


def test_a_key_store_the_server_cannot_write_makes_it_not_ready_until_fixed(emulator, store_dir, monkeypatch):
    database = os.path.join(store_dir, "swiftchat.db")
    store = f"sqlite:///{database}"
    made = flask_keys({**os.environ, "SWIFTCHAT_STORE": store}, "create", "alice")
    assert made.returncode == 0, made.stderr
    alice = made.stdout.strip().splitlines()[-1]
    os.chmod(database, 0o400)  # a store the server's user may read but not write
    env = {**emulator_env(emulator), "API_KEY": TEST_KEY, "SWIFTCHAT_STORE": store}
    server = _server_bound_by_file_modes(monkeypatch, env)
    try:
        status, answer = _ready(server)
        assert status == 503 and answer["status"] == "unavailable"
        assert answer["detail"].startswith("The key store cannot be used: Permission denied.")
        assert "SWIFTCHAT_STORE" in answer["detail"]
        assert store_dir not in answer["detail"]  # where the store is goes to the log, not to anyone who asks
        assert _ready(server)[0] == 503
        logged = [json.loads(line) for line in server.output().splitlines() if "/readyz: not ready" in line]
        assert len(logged) == 1 and database in logged[0]["message"]  # once, not at every check
        os.chmod(database, 0o600)  # the fix
        assert _ready(server) == (200, {"status": "ready"})  # no restart needed
        status, _, body = server.request("/api/converse/v3", chat("Hi"), key=alice)
        assert status == 200 and b"messageStop" in body
    finally:
        server.stop()


def test_a_key_store_directory_the_server_cannot_write_makes_it_not_ready(emulator, store_dir, monkeypatch):
    os.chmod(store_dir, 0o555)  # no key made yet: the server cannot make the file
    env = {**emulator_env(emulator), "API_KEY": TEST_KEY, "SWIFTCHAT_STORE": f"sqlite:///{store_dir}/swiftchat.db"}
    server = _server_bound_by_file_modes(monkeypatch, env)
    try:
        status, answer = _ready(server)
        assert status == 503 and "Permission denied" in answer["detail"]
        os.chmod(store_dir, 0o755)
        assert _ready(server) == (200, {"status": "ready"})
        assert os.path.exists(f"{store_dir}/swiftchat.db")
    finally:
        server.stop()


def test_a_redis_store_that_cannot_be_reached_makes_it_not_ready_without_naming_the_host(emulator):
    server = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "SWIFTCHAT_STORE": "redis://:secret@127.0.0.1:9/0",
            "SWIFTCHAT_STORE_TIMEOUT": "0.5",
        }
    )
    try:
        status, answer = _ready(server)
        assert status == 503 and "ConnectionError" in answer["detail"]
        assert "127.0.0.1" not in answer["detail"] and "secret" not in server.output()
        assert server.request("/api/converse/v3", chat("Hi"))[0] == 200  # the shared key works all the same
    finally:
        server.stop()
