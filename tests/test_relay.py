"""The relay and the sender in process, over a stand-in for Bedrock's event stream and a real socket pair.

Fast and focused: what gunicorn would write for each event, when the headers may go out, and
what a client that stops reading or hangs up costs. The end-to-end tests (test_real_apps.py,
test_slow_links.py) check the same through gunicorn with the apps' parsers.
"""

import time

import gevent
import pytest
from gevent import socket
from gevent.event import Event

from swiftchat_api import wire
from swiftchat_api.connection import Connection
from swiftchat_api.exceptions import StreamRefused
from swiftchat_api.relay import BedrockCall, Limits, Relay, Ticker

START = {"messageStart": {"role": "assistant"}}
STOP = {"messageStop": {"stopReason": "end_turn"}}


def delta(text):
    return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}


class Stream:
    """What the relay reads Bedrock through: boto3's EventStream iterates events and closes."""

    def __init__(self, events, failure=None, pause=None):
        self._events = events
        self._failure = failure
        self.pause = pause  # an Event the stream waits on before its last event
        self.closed = False

    def __iter__(self):
        for position, event in enumerate(self._events):
            if self.pause is not None and position == len(self._events) - 1:
                self.pause.wait()
            yield event
        if self._failure is not None:
            raise RuntimeError(self._failure)

    def close(self):
        self.closed = True


@pytest.fixture
def sockets():
    server_side, client_side = socket.socketpair()
    yield server_side, client_side
    server_side.close()
    client_side.close()


def relay_of(open_stream, connection=None, dialect="v3", idle=30.0, keepalive=5.0):
    return Relay(BedrockCall(open_stream), wire.DIALECTS[dialect], Ticker(0.02), Limits(idle, keepalive), connection)


@pytest.mark.parametrize("dialect", ["v1", "v2", "v3"])
def test_each_event_is_one_write_and_nothing_else_is_written(dialect):
    events = [START, delta("Hello"), delta(" {x}"), delta(" world"), STOP]
    relay = relay_of(lambda: Stream(events), dialect=dialect)
    relay.start(acceptance_timeout=5)
    relay.wait_for_first_event(time.monotonic() + 5)
    writes = list(relay)
    encode = wire.DIALECTS[dialect].event
    assert [write for write in writes if write] == [encode(e) for e in events if encode(e)]


def test_the_in_band_error_is_the_last_write_and_alone():
    relay = relay_of(lambda: Stream([START, delta("Hi")], failure="the upstream broke off"))
    relay.start(acceptance_timeout=5)
    relay.wait_for_first_event(time.monotonic() + 5)
    writes = [write for write in relay if write]
    assert writes[-1] == b"Error: the upstream broke off"
    assert writes[:-1] == [wire.v3(START), wire.v3(delta("Hi"))]


def test_a_refusal_within_the_window_is_raised_for_a_real_status():
    def refuse():
        raise StreamRefused(429, "Too many requests.")

    relay = relay_of(refuse)
    relay.start(acceptance_timeout=5)
    with pytest.raises(StreamRefused) as refused:
        relay.wait_for_first_event(time.monotonic() + 5)
    assert refused.value.status == 429


def test_a_slow_acceptance_sends_the_headers_at_the_window_and_the_reply_after():
    accepted = Event()

    def slow():
        accepted.wait()
        return Stream([START, delta("Late"), STOP])

    relay = relay_of(slow)
    relay.start(acceptance_timeout=30)
    relay.wait_for_first_event(time.monotonic() + 0.05)  # returns at the window: nothing raised
    output = iter(relay)
    assert next(output) == b""  # the headers, before Bedrock accepted
    accepted.set()
    assert [write for write in output if write] == [wire.v3(START), wire.v3(delta("Late")), wire.v3(STOP)]


def test_an_acceptance_past_its_bound_is_written_in_band_after_the_headers():
    never = Event()

    def hangs():
        never.wait()

    relay = relay_of(hangs)
    relay.start(acceptance_timeout=0.1)
    relay.wait_for_first_event(time.monotonic() + 0.01)
    writes = [write for write in relay if write]
    assert writes == [b"Error: Bedrock did not start answering within 0.1 s."]


def test_a_silent_upstream_is_closed_and_said_in_band():
    stream = Stream([START, delta("Hi"), STOP], pause=Event())  # never set: Bedrock falls silent
    relay = relay_of(lambda: stream, idle=0.1)
    relay.start(acceptance_timeout=5)
    relay.wait_for_first_event(time.monotonic() + 5)
    output = iter(relay)
    # The stand-in has no socket to shut down: its silence ends when the relay closes the stream.
    writes = []
    for write in output:
        writes.append(write)
        if write == wire.v3(delta("Hi")):
            gevent.spawn_later(0.3, stream.pause.set)
    assert stream.closed
    assert writes[-1] == b"Error: Bedrock sent nothing for 0.1 s; the stream was closed."


def test_a_client_that_hangs_up_closes_the_upstream_stream(sockets):
    server_side, client_side = sockets
    stream = Stream([START, delta("Hi"), STOP], pause=Event())
    relay = relay_of(lambda: stream, Connection(server_side, 30))
    relay.start(acceptance_timeout=5)
    relay.wait_for_first_event(time.monotonic() + 5)
    output = iter(relay)
    assert next(output) == wire.v3(START)
    client_side.close()
    with gevent.Timeout(5):
        while not relay.client_gone:
            gevent.sleep(0.01)
    assert relay.client_gone


def test_a_client_that_takes_nothing_is_let_go_after_the_client_time_out(sockets):
    server_side, client_side = sockets
    connection = Connection(server_side, timeout=0.3, buffer_bytes=4096)
    started = time.monotonic()
    with pytest.raises(BrokenPipeError), gevent.Timeout(10):
        for _ in range(10_000):  # far more than any socket buffer holds
            connection.send(b"x" * 4096)
    assert time.monotonic() - started < 5


def test_a_client_that_reads_slowly_gets_everything(sockets):
    server_side, client_side = sockets
    connection = Connection(server_side, timeout=5, buffer_bytes=4096)
    data = bytes(range(256)) * 4096  # 1 MB, in one HTTP chunk
    expected = b"%X\r\n" % len(data) + data + b"\r\n"
    received = bytearray()

    def read_slowly():
        while len(received) < len(expected):
            gevent.sleep(0.001)
            received.extend(client_side.recv(65536))

    reader = gevent.spawn(read_slowly)
    connection.send_chunk(data)
    reader.join(10)
    assert received == expected
