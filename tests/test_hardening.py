"""No request, however slow, large, malformed or silent, hurts the worker or anyone else.

Each test reproduces one way a caller holding the app's key (that is, anyone) could freeze a
worker, hold a connection for ever, grow memory without bound, or read back what was sent.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ROOT, TEST_KEY, Server, chat, emulator_calls, emulator_env, stream_record

SECRET = "my-private-diary-entry"


@pytest.fixture(scope="module")
def tight(emulator):
    """A server with short windows and small limits, so each bound shows within seconds."""
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "BEDROCK_MAX_ATTEMPTS": "1",
            "SWIFTCHAT_KEEPALIVE_SECONDS": "0.3",
            "SWIFTCHAT_FIRST_EVENT_WINDOW": "1",
            "SWIFTCHAT_CLIENT_TIMEOUT": "2",
            "SWIFTCHAT_BODY_TIMEOUT": "1",
            "SWIFTCHAT_MAX_BODY_MB": "1",
        }
    )
    yield live
    live.stop()


def _worker_pid(server):
    with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as children:
        return int(children.read().split()[0])


def _rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _wait_for(condition, deadline=15):
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


def _read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        if not data:
            break
        head += data
    return head


def _read_all(sock):
    """One whole answer: until its Content-Length, the end of its chunked body, or the connection's end."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        if (length and len(body) >= int(length.group(1))) or data.endswith(b"\r\n0\r\n\r\n"):
            break
    return data


def _dechunk(raw):
    body, rest = b"", raw
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return body


# --- Slow first events: headers never wait long, the reply still arrives -------------------------


@pytest.mark.parametrize("path", ["/api/converse", "/api/converse/v2", "/api/converse/v3"])
def test_headers_leave_before_a_slow_first_event_and_the_reply_follows(tight, emulator, path):
    tag = f"slow-start-{path.rsplit('/', 1)[-1]}"
    sock = tight.open_stream(path, chat(f'[[emulator id={tag} start_delay_ms=3000 reply="Late but here"]]'))
    head = _read_head(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert stream_record(emulator, tag)["events"] == 0  # the headers did not wait for Bedrock's first event
    body = _dechunk(_read_all(sock))
    sock.close()
    if path == "/api/converse":
        assert body.startswith(b"Late but here\n{")
        return
    if path.endswith("v3"):
        assert body.startswith(b"\n\n")  # keep-alives filled the silence
        events = [json.loads(part) for part in body.split(b"\n\n") if part]
    else:
        events = [json.loads(part) for part in body.replace(b"}{", b"}\n{").split(b"\n")]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == "Late but here"


def test_a_refusal_after_the_window_is_written_in_band(tight):
    status, headers, body = tight.request(
        "/api/converse/v3", chat("[[emulator start_delay_ms=2000 fail_after=0 fail_with=throttlingException]]")
    )
    assert status == 200
    assert body.strip(b"\n").startswith(b"Error: An error occurred (throttlingException)")
    assert set(body[: body.index(b"Error:")]) <= {ord("\n")}


def test_max_attempts_means_attempts(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "BEDROCK_MAX_ATTEMPTS": "3"})
    try:
        status, _, _ = live.request("/api/converse/v3", chat("[[emulator error=unavailable]]", model="attempts-model"))
    finally:
        live.stop()
    assert status == 503
    calls = [call for call in emulator_calls(emulator) if call.get("modelId") == "attempts-model"]
    assert len(calls) == 3


# --- Clients that stop reading, hang up oddly, or never finish their body -------------------------


def test_a_client_that_never_reads_costs_bounded_memory_and_is_let_go(tight, emulator):
    worker = _worker_pid(tight)
    before = _rss_mb(worker)
    sockets, tags = [], [f"never-reads-{i}" for i in range(8)]
    for tag in tags:  # each reply is about 13 MB of events: a buffered copy per stream would show
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", tight.port))
        data = json.dumps(chat(f"[[emulator id={tag} words=2000000 chunk=500]]")).encode()
        sock.sendall(
            f"POST /api/converse/v3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        sockets.append(sock)
    peak = before
    for tag in tags:
        until = time.monotonic() + 30
        while (stream_record(emulator, tag) or {}).get("state") != "cancelled" and time.monotonic() < until:
            peak = max(peak, _rss_mb(worker))
            time.sleep(0.1)
        record = stream_record(emulator, tag)
        assert record and record["state"] == "cancelled", record
        assert record["events"] < 4000  # Bedrock's stream was closed long before its end
    for sock in sockets:
        sock.close()
    assert peak - before < 40, f"worker grew {peak - before:.0f} MB for 8 clients that never read"


def test_a_pipelined_byte_then_a_hang_up_still_closes_upstream(server, emulator):
    sock = server.open_stream("/api/converse/v2", chat("[[emulator id=pipelined-hangup first_delay_ms=30000]]"))
    assert _read_head(sock).startswith(b"HTTP/1.1 200")
    sock.sendall(b"G")  # the start of a next request ...
    time.sleep(0.3)
    sock.shutdown(socket.SHUT_WR)  # ... and then the app is gone
    sock.close()
    record = _wait_for(lambda: stream_record(emulator, "pipelined-hangup")["state"] == "cancelled", deadline=8)
    assert record, stream_record(emulator, "pipelined-hangup")


def test_a_stalled_body_is_dropped(tight):
    sock = socket.create_connection(("127.0.0.1", tight.port), timeout=20)
    sock.sendall(
        f"POST /api/converse/v3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n"
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"messages"'.encode()
    )
    answer = _read_all(sock)  # returns once the server has answered and closed the connection
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'{"detail":"The request body stopped arriving for 1 s."}' in answer


def test_a_chunked_body_over_the_limit_is_refused_not_cut(tight):
    sock = socket.create_connection(("127.0.0.1", tight.port), timeout=20)
    sock.sendall(
        f"POST /api/converse/v3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    piece = b"x" * 65536
    try:
        for _ in range(40):  # 2.5 MB against a 1 MB limit
            sock.sendall(b"%X\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server may answer and close before the rest is sent
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"larger than 1 MB" in answer


def test_an_endless_body_after_a_refusal_is_not_swallowed(server):
    # No key, so the body is never read; gunicorn then drains it before the next request on the
    # connection. A client that keeps sending must be cut off, not fed the worker's CPU.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /api/converse/v3 HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000000\r\n\r\n")
    piece, sent = b"x" * 65536, 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        health = pool.submit(lambda: [server.request("/healthz", method="GET", key=None)[0] for _ in range(5)])
        try:
            while sent < 200 * 1024 * 1024:
                sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        assert health.result() == [200] * 5
    sock.close()
    assert sent < 150 * 1024 * 1024, f"the server swallowed {sent // (1024 * 1024)} MB of a refused body"


# --- Bodies built to amplify, crash or echo --------------------------------------------------------


def _nested(depth):
    return "[" * depth + "]" * depth


HOSTILE = {
    "a million empty blocks": '{"modelId": "m", "region": "us-west-2", "messages": [{"role": "user", "content": ['
    + ",".join(["{}"] * 1_000_000)
    + "]}]}",
    "arrays nested 100k deep": _nested(100_000),
    "objects nested 100k deep": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "a 5,000-digit integer": '{"modelId": "m", "region": "us-west-2", "enableThinking": ' + "9" * 5000 + "}",
    "an infinite number": '{"modelId": "m", "region": "us-west-2", "enableThinking": 1e999}',
    "NaN": '{"modelId": "m", "region": "us-west-2", "enableThinking": NaN}',
    "a lone surrogate in modelId": '{"modelId": "\\ud800' + SECRET + '", "region": "us-west-2"}',
    "tool input nested 950 deep": json.dumps(
        {
            "modelId": "m",
            "region": "us-west-2",
            "messages": [{"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "n", "input": {}}}]}],
        }
    ).replace('"input": {}', '"input": ' + '{"a":' * 950 + "1" + "}" * 950),
    "a region with a newline": '{"modelId": "m", "region": "us-west-2\\n", "messages": []}',
    "an unterminated string of escaped quotes": '"' + '\\"' * 200_000,  # quadratic for a backtracking scan
    "a 70-character region": '{"modelId": "m", "region": "' + SECRET + "-" * 48 + '-1", "messages": []}',
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_get_a_short_422_and_the_worker_stays_responsive(server, name):
    raw = HOSTILE[name]
    with ThreadPoolExecutor(max_workers=2) as pool:
        hostile = pool.submit(server.request, "/api/converse/v3", raw=raw)
        health = pool.submit(server.request, "/healthz", method="GET", key=None)
        status, headers, body = hostile.result()
        assert health.result()[0] == 200
    assert status == 422, body[:300]
    assert headers["content-type"] == "application/json"
    assert len(body) < 1024
    assert SECRET.encode() not in body
    detail = json.loads(body)["detail"]
    assert detail and all(item["msg"] for item in detail)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"modelId": "\xc3\x28", "region": "us-west-2"}'],
    ids=["bom-like bytes", "broken utf-8 in a string"],
)
@pytest.mark.parametrize("path", ["/api/converse", "/api/image", "/api/models", "/api/upgrade", "/api/token"])
def test_a_body_that_is_not_utf8_is_a_422(server, path, raw):
    status, _, body = server.request(path, raw=raw)
    assert status == 422
    assert json.loads(body)["detail"][0]["msg"] == "The body is not valid UTF-8 text."


def test_a_thousand_bad_blocks_get_a_short_answer(server):
    blocks = [{"image": {"format": "png", "source": {"bytes": "!!" + SECRET}}}] * 1000
    payload = {"messages": [{"role": "user", "content": blocks}], "modelId": "m", "region": "us-west-2"}
    status, _, body = server.request("/api/converse/v3", payload)
    assert (status, body) == (422, b"Error: Invalid base64 data in the image block.")  # said once, not 1000 times
    payload["messages"][0]["role"] = "robot"  # not the apps' shape too: a list, cut at 20 items
    status, _, body = server.request("/api/converse/v3", payload)
    assert status == 422
    detail = json.loads(body)["detail"]
    assert len(detail) <= 21 and len(body) < 4096
    assert SECRET.encode() not in body


def test_a_text_block_of_the_wrong_type_is_refused_without_quoting_it(server):
    payload = chat("hi")
    payload["messages"][0]["content"] = [{"text": [SECRET]}]
    status, _, body = server.request("/api/converse/v3", payload)
    assert status == 400
    assert body == b"Error: Parameter validation failed: Invalid type for parameter messages[0].content[0].text."
    assert SECRET.encode() not in server.output().encode()


# --- Made-up regions, junk methods, wrong methods --------------------------------------------------


def test_made_up_regions_do_not_grow_memory(server):
    worker = _worker_pid(server)

    def region(i):
        return "zz-" + "".join(chr(97 + int(digit)) for digit in f"{i:04d}") + "-1"

    def ask(i):
        return server.request("/api/converse", chat('[[emulator reply="ok"]]') | {"region": region(i)})[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(ask, range(100))) == {200}
        settled = _rss_mb(worker)
        assert set(pool.map(ask, range(100, 400))) == {200}
    grown = _rss_mb(worker) - settled
    assert grown < 30, f"300 more made-up regions grew the worker by {grown:.0f} MB"


def test_a_wrong_method_says_which_are_allowed(server):
    status, headers, body = server.request("/api/converse/v3", method="GET")
    assert status == 405
    assert "POST" in headers["allow"]
    assert json.loads(body) == {"detail": "Method Not Allowed"}


# --- Settings: every bad value is refused by name ---------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_CONNECTIONS": "abc"}, "WORKER_CONNECTIONS must be a number"),
        ({"ACCESS_LOG": "maybe"}, "ACCESS_LOG must be 1 or 0"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1"),
        ({"SWIFTCHAT_CLIENT_TIMEOUT": "inf"}, "SWIFTCHAT_CLIENT_TIMEOUT must be a number"),
    ],
)
def test_bad_settings_are_refused_by_name(env, message):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={**os.environ, "API_KEY": "k", "GUNICORN_BIND": "127.0.0.1:0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("setting", "gunicorn_line"), [("0", False), ("1", True)])
def test_access_log_adds_gunicorns_own_line_only_when_asked(emulator, setting, gunicorn_line):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "ACCESS_LOG": setting})
    try:
        assert live.request("/healthz", method="GET", key=None)[0] == 200
        time.sleep(0.2)
    finally:
        live.stop()
    assert ('"logger": "gunicorn.access"' in live.output()) is gunicorn_line
    assert '"logger": "swiftchat_api.access"' in live.output()
