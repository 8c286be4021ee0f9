"""A finished stream is freed as soon as nothing uses it, not by Python's cycle collector.

A worker holds thousands of streams; what a finished one held (the upstream response and its
socket, gunicorn's request, the relay) must not wait for a full collection, which comes only
after the heap has grown by a quarter and then walks all of it. The relay here runs in this
process, with the client on a real socket pair, over a stand-in for boto3's event stream.
"""

import gc
import weakref

import gevent
from gevent import socket

from swiftchat_api import wire
from swiftchat_api.relay import Limits, Relay, Ticker

EVENTS = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Hello"}, "contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
]


class Stream:
    """What the relay reads Bedrock through: boto3's EventStream iterates events and closes."""

    def __init__(self, events):
        self._events = events
        self.closed = False

    def __iter__(self):
        return iter(self._events)

    def close(self):
        self.closed = True


def relayed(client, stream):
    relay = Relay(stream, wire.DIALECTS["v3"], Ticker(0.05), Limits(30, 5, 30), {"gunicorn.socket": client})
    relay.start()
    relay.wait_for_first_event(1)
    body = b"".join(relay)
    relay.close()
    return body


def test_a_finished_stream_is_freed_without_the_cycle_collector():
    client, peer = socket.socketpair()
    gc.collect()
    gc.disable()
    try:
        stream = Stream(EVENTS)
        gone = weakref.ref(stream)
        body = relayed(client, stream)
        assert b"Hello" in body and stream.closed
        del stream
        gevent.sleep(0.1)  # the ticker lets go of the relay at its next turn
        assert gone() is None, [type(holder).__name__ for holder in gc.get_referrers(gone())]
    finally:
        gc.enable()
        client.close()
        peer.close()
