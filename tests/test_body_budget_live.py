"""JSON inside a body's text is bounded with the body, on a live gunicorn gevent worker.

A body within every raw limit can carry far more in its strings: 16 tool calls whose arguments
are 4 MB each of ``{"a":[{},{},…]}`` (63.8 MB in all, under the 64 MB limit) parse to 21 million
objects. Read as they came, they froze the only worker for 24 s (``/healthz`` unanswered) and
grew it to 1.67 GB. On one budget with the body they are refused before they are parsed.
"""

import json
import socket
import threading
import time

import pytest
from conftest import TEST_KEY, Server, emulator_env

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ARGUMENTS = "messages[1].tool_calls[0].function.arguments"
# Bounds that only tell an answer from a hang and a bounded worker from a ballooning one. Before
# the budget: answered after 13-24 s, /healthz waiting up to 7.5 s, the worker at 1.7 GB. With it,
# on the 2-core development machine: 1.0 s, /healthz within 0.75 s, 245 MB.
ANSWERED_WITHIN = 10
HEALTHZ_WITHIN = 3
PEAK_RSS_MB = 800


@pytest.fixture(scope="module")
def live(emulator):
    """One gunicorn gevent worker of its own, so that its memory is this test's alone."""
    server = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "BEDROCK_MAX_ATTEMPTS": "1"})
    yield server
    server.stop()


def _worker_pid(server):
    with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as children:
        return int(children.read().split()[0])


def _peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _tool_calls_body(objects, calls=16):
    """A chat whose assistant turn made ``calls`` tool calls, each with arguments of ``objects`` empty objects."""
    arguments = '{"a":[' + ",".join(["{}"] * objects) + "]}"
    tool_calls = [
        {"id": f"call_{n}", "type": "function", "function": {"name": "f", "arguments": arguments}} for n in range(calls)
    ]
    messages = [
        {"role": "user", "content": "Go."},
        {"role": "assistant", "content": None, "tool_calls": tool_calls},
        *({"role": "tool", "tool_call_id": f"call_{n}", "content": "done"} for n in range(calls)),
    ]
    return json.dumps({"model": MODEL, "messages": messages}).encode()


def _post(server, path, raw):
    """(status, JSON answer) of one request on a socket of its own, read to its Content-Length."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


class _HealthWatch(threading.Thread):
    """Asks /healthz again and again until stopped: each answer's status and how long it took."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.answers = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            status = self.server.request("/healthz", method="GET", key=None)[0]
            self.answers.append((status, time.monotonic() - started))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.join(60)


@pytest.mark.parametrize(
    "objects, refusal",
    [
        (1_330_000, "The body and the JSON inside its text are larger than 64 MB in all."),
        (
            620_000,  # 30 MB: within the size limit with its JSON, far past the counts
            "The body holds too many values, with the JSON inside its text (at most 10,000 objects and lists and "
            "100,000 values in all).",
        ),
    ],
    ids=["63.8 MB of arguments", "30 MB of arguments"],
)
def test_json_in_tool_call_arguments_is_refused_at_once_and_the_worker_keeps_answering(live, objects, refusal):
    raw = _tool_calls_body(objects)
    assert len(raw) < 64 * 1024 * 1024
    worker = _worker_pid(live)
    with _HealthWatch(live) as health:
        started = time.monotonic()
        status, answer = _post(live, "/v1/chat/completions", raw)
        took = time.monotonic() - started
    peak = _peak_rss_mb(worker)
    latencies = [latency for _, latency in health.answers]
    print(
        f"\n{len(raw) / 1e6:.1f} MB: answered in {took:.2f} s; /healthz {len(latencies)} times, at most "
        f"{max(latencies):.2f} s; the worker's peak RSS {peak:.0f} MB"
    )
    assert took < ANSWERED_WITHIN
    assert health.answers and all(status == 200 for status, _ in health.answers)
    assert max(latencies) < HEALTHZ_WITHIN
    assert peak < PEAK_RSS_MB
    assert status == 400, answer
    assert answer["error"] == {"message": refusal, "type": "invalid_request_error", "param": ARGUMENTS, "code": None}
    # The same worker answers a chat with small arguments in the same shape.
    status, answer = _post(live, "/v1/chat/completions", _tool_calls_body(3))
    assert status == 200 and answer["choices"][0]["message"]["role"] == "assistant", answer
