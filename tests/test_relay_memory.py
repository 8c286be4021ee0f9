"""A finished stream is freed as soon as nothing uses it, not by Python's cycle collector.

A worker holds thousands of streams; what a finished one held (the upstream response and its
socket, gunicorn's request, the relay) must not wait for a full collection, which comes only
after the heap has grown by a quarter and then walks all of it. The relay here runs in this
process, with the client on a real socket pair, over a stand-in for boto3's event stream.
"""

import gc
import time
import weakref

import gevent
import pytest
from gevent import socket

from swiftchat_api import wire
from swiftchat_api.connection import Connection
from swiftchat_api.relay import BedrockCall, Limits, Relay, Ticker

START = {"messageStart": {"role": "assistant"}}
DELTA = {"contentBlockDelta": {"delta": {"text": "Hello"}, "contentBlockIndex": 0}}
STOP = {"messageStop": {"stopReason": "end_turn"}}


class Stream:
    """What the relay reads Bedrock through: boto3's EventStream iterates events and closes."""

    def __init__(self, events, failure=None):
        self._events = events
        self._failure = failure
        self.closed = False

    def __iter__(self):
        yield from self._events
        if self._failure is not None:
            try:
                raise ConnectionResetError(104, "Connection reset by peer")
            except OSError as cause:  # as urllib3 reports a broken body: an error with its cause
                raise RuntimeError(self._failure) from cause

    def close(self):
        self.closed = True


def relayed(client, stream):
    relay = Relay(BedrockCall(lambda: stream), wire.DIALECTS["v3"], Ticker(0.05), Limits(30, 5), Connection(client, 30))
    relay.start(acceptance_timeout=30)
    try:
        relay.wait_for_first_event(time.monotonic() + 1)
    except Exception as refused:  # the view answers with a status, from the error alone
        return str(refused).encode()
    body = b"".join(relay)
    relay.close()
    return body


@pytest.mark.parametrize(
    "events, failure, shown",
    [
        pytest.param([START, DELTA, STOP], None, b"Hello", id="a stream that ends"),
        pytest.param([START, DELTA], "Connection broken", b"Connection broken", id="failing mid-stream"),
        pytest.param([], "Throttled", b"Throttled", id="refused before its first event"),
    ],
)
def test_a_finished_stream_is_freed_without_the_cycle_collector(events, failure, shown):
    client, peer = socket.socketpair()
    gc.collect()
    gc.disable()
    try:
        stream = Stream(events, failure)
        gone = weakref.ref(stream)
        assert shown in relayed(client, stream) and stream.closed
        del stream
        gevent.sleep(0.1)  # the ticker lets go of the relay at its next turn
        assert gone() is None, [type(holder).__name__ for holder in gc.get_referrers(gone())]
    finally:
        gc.enable()
        client.close()
        peer.close()
