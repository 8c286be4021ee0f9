"""A real redis-server on a free local port, for the tests of the Redis key store."""

import os
import shutil
import socket
import subprocess
import time

import pytest
import redis
from conftest import free_port

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """redis-server without persistence on 127.0.0.1; stop() and start() again on the same port."""

    def __init__(self, directory, port=None):
        self.port = port or free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def require_redis_server():
    """Skip when redis-server is missing here; fail in CI, which installs it (.ci/run)."""
    if REDIS_SERVER is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run installs Debian's redis-server")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture(tmp_path_factory):
    """One redis-server for the session; tests flush its database before use."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    server = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url).flushdb()
    return server.url
