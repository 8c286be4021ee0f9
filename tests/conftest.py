"""Shared fixtures: the Bedrock emulator, moto for SSM/STS, and live gunicorn servers."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import openai
import pytest
from hypothesis import strategies as st
from marshmallow import ValidationError

from swiftchat_api.emulator import launch

ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "test-key-0123456789"

# Registered here, not imported by each test module: an imported fixture is a new fixture in every
# module that imports it, so each would start its own "session" redis-server.
pytest_plugins = ["redis_fixture"]

# A tripwire: every AWS call this suite makes goes to a local fake, and anything not pointed at
# one goes to a closed local port instead of reaching real AWS with whatever credentials exist.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE", "AWS_ROLE_ARN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-west-2",
    AWS_ENDPOINT_URL="http://127.0.0.1:9",
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    AWS_EC2_METADATA_DISABLED="true",
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def emulator():
    """The base URL of a running Bedrock emulator."""
    process, url = launch.start()
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def bedrock(emulator):
    """A boto3 bedrock-runtime client talking to the emulator."""
    client = boto3.client("bedrock-runtime", region_name="us-west-2", endpoint_url=emulator)
    yield client
    client.close()  # its pooled keep-alive connections, before the interpreter finds them open


@pytest.fixture(scope="session")
def moto_url():
    """The base URL of a moto server (SSM, STS)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class Server:
    """A gunicorn process running wsgi:app with the gevent worker, on a free port."""

    def __init__(self, env, workers=1):
        self.port = free_port()
        self.logfile = ROOT / ".pytest_cache" / f"gunicorn-{self.port}.log"
        self.logfile.parent.mkdir(exist_ok=True)
        self._log = self.logfile.open("w")
        store = self.logfile.with_suffix(".db")
        for leftover in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):  # an earlier run's, on the same port
            leftover.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", str(workers), "wsgi:app"],
            cwd=ROOT,
            env={
                **os.environ,
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                # Each server its own key store, not a swiftchat.db shared by every run in the checkout.
                "SWIFTCHAT_STORE": f"sqlite:///{store}",
                **env,
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.logfile.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not start")

    def output(self):
        return self.logfile.read_text()

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    def open_stream(self, path, body):
        """Send a chat request on a raw socket and return the socket, response unread."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data)
        return sock

    def streams_at_once(self, path, body, count):
        """Open ``count`` chat streams together, then read each to its end: their raw answers."""
        answers = []
        for sock in [self.open_stream(path, body) for _ in range(count)]:
            answer = b""
            # the last chunk, after the one before it: a header line may end in "0" too
            while not answer.endswith(b"\r\n0\r\n\r\n") and (chunk := sock.recv(65536)):
                answer += chunk
            sock.close()
            answers.append(answer)
        return answers

    def request(self, path, body=None, headers=None, key=TEST_KEY, method="POST", raw=None):
        """Send one request; return (status, headers, body bytes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        all_headers = {"Content-Type": "application/json"}
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        all_headers.update(headers or {})
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def flask_keys(env, *args):
    """Run the operator's CLI, ``flask --app wsgi keys ARGS``, with exactly ``env``; its CompletedProcess."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "keys", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def emulator_env(url):
    return {**launch.environment(url), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


@pytest.fixture(scope="session")
def server(emulator):
    """A live server with a literal API key, talking to the emulator."""
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "SWIFTCHAT_KEEPALIVE_SECONDS": "0.3",
            "BEDROCK_MAX_ATTEMPTS": "1",
        }
    )
    yield live
    live.stop()


def sdk(server, key=TEST_KEY, **options):
    """The openai SDK pointed at a live server's /v1; no retries unless asked, so every error surfaces at once."""
    options = {"max_retries": 0, "timeout": 30, **options}
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=key, **options)


@pytest.fixture
def client(server):
    """The openai SDK on the session's server, closed after each test: a kept-alive connection would hold
    up the server's graceful stop."""
    with sdk(server) as opened:
        yield opened


def _emulator_get(emulator_url, path):
    parts = urlsplit(emulator_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return json.loads(data) if response.status == 200 else None


def stream_record(emulator_url, tag):
    """What the emulator saw of the stream tagged ``tag`` (events written, final state)."""
    return _emulator_get(emulator_url, f"/_emulator/streams/{tag}")


def emulator_calls(emulator_url):
    """The emulator's latest non-streaming calls, oldest first."""
    return _emulator_get(emulator_url, "/_emulator/calls")


def load_outcome(schema, body):
    """("loaded", what ``schema`` loads from ``body``) or ("refused", its errors)."""
    try:
        return "loaded", schema.load(body)
    except ValidationError as error:
        return "refused", error.messages


@st.composite
def histories(draw, good, odd):
    """Chat histories of up to five ``good`` messages, about half of them with one ``odd`` message somewhere."""
    messages = draw(st.lists(good, max_size=5))
    if draw(st.booleans()):
        messages.insert(draw(st.integers(0, len(messages))), draw(odd))
    return messages


def chat(text, model="anthropic.claude-3-5-sonnet-20240620-v1:0", **extra):
    """A converse request body with one user message."""
    return {
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "modelId": model,
        "region": "us-west-2",
        **extra,
    }


def access_lines(server):
    """The server's access log entries, one dict a request."""
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "swiftchat_api.access"]


def metric_value(text, name, **labels):
    """The value of series ``name`` in /metrics ``text``, summed over the series (and workers) with these labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total
