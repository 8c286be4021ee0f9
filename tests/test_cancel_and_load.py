"""Walking away cancels the upstream stream; one worker holds hundreds of streams at once."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import TEST_KEY, Server, chat, emulator_env, stream_record


def _wait_for_state(emulator, tag, deadline=10):
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        record = stream_record(emulator, tag)
        if record and record["state"] != "streaming":
            return record
        time.sleep(0.05)
    return stream_record(emulator, tag)


@pytest.mark.parametrize("path", ["/api/converse", "/api/converse/v2", "/api/converse/v3"])
def test_disconnect_closes_upstream_stream(server, emulator, path):
    tag = f"walk-away-{path.rsplit('/', 1)[-1]}"
    sock = server.open_stream(path, chat(f"[[emulator id={tag} words=500 delay_ms=20]]"))
    received = b""
    while b"brown" not in received:  # three words in, the user walks away
        received += sock.recv(65536)
    sock.close()
    record = _wait_for_state(emulator, tag)
    assert record["state"] == "cancelled"
    words_seen = len(received.split(b"\r\n\r\n", 1)[1].split())
    assert record["events"] < 20, f"upstream kept streaming for {record['events']} events"
    assert record["events"] <= words_seen + 6


def test_disconnect_during_a_long_silence_closes_upstream(server, emulator):
    sock = server.open_stream("/api/converse/v2", chat("[[emulator id=silent-walk first_delay_ms=30000]]"))
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()
    record = _wait_for_state(emulator, "silent-walk", deadline=8)
    assert record["state"] == "cancelled"
    assert record["events"] == 1  # only messageStart went out before the silence


def test_hundreds_of_concurrent_streams_complete_through_one_worker(server):
    body = chat("[[emulator words=30 delay_ms=10]]")
    _, _, expected = server.request("/api/converse/v3", body)
    assert expected.count(b"\n\n") == 30 + 4  # start, 30 deltas, block stop, message stop, usage

    def one(_):
        return server.request("/api/converse/v3", body)

    with ThreadPoolExecutor(max_workers=300) as pool:
        results = list(pool.map(one, range(300)))
    assert [status for status, _, _ in results] == [200] * 300
    assert all(data == expected for _, _, data in results)


@pytest.fixture(scope="module")
def impatient_server(emulator):
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "BEDROCK_READ_TIMEOUT": "1",
            "SWIFTCHAT_FIRST_BYTE_TIMEOUT": "1",
            "BEDROCK_MAX_ATTEMPTS": "1",
        }
    )
    yield live
    live.stop()


def test_silent_upstream_is_closed_and_said_in_band(impatient_server, emulator):
    status, _, body = impatient_server.request("/api/converse/v2", chat("[[emulator id=stalled first_delay_ms=20000]]"))
    assert status == 200
    assert body == b'{"messageStart": {"role": "assistant"}}Error: Bedrock sent nothing for 1 s; the stream was closed.'
    assert _wait_for_state(emulator, "stalled")["state"] == "cancelled"


def test_upstream_that_never_starts_is_a_504(impatient_server, emulator):
    status, headers, body = impatient_server.request(
        "/api/converse/v3", chat("[[emulator id=no-headers header_delay_ms=20000]]")
    )
    assert status == 504
    assert headers["content-type"].startswith("text/plain")
    assert body == b"Error: Bedrock did not start answering within 1 s."
    assert _wait_for_state(emulator, "no-headers")["state"] == "cancelled"
