"""How the worker takes connections and writes answers, over real sockets.

gunicorn's gevent worker builds its server from ``gunicorn.workers.ggevent.StreamServer`` and
its HTTP/1 responses from ``gunicorn.http.wsgi.Response``; the worker replaces them with
``Listener`` and ``SwiftChatResponse`` (every end-to-end test goes through both).
"""

import os
import socket
from collections import Counter

import gevent
from gevent import socket as gevent_socket
from gevent.monkey import get_original
from gevent.pool import Pool

from swiftchat_api.worker import ACCEPT_PER_TURN, Listener, SwiftChatResponse

# A blocking socket even if another test module patched this process: the connections must all
# be waiting in the kernel before the event loop runs once.
_blocking_socket = get_original("socket", "socket")
_blocking_sleep = get_original("time", "sleep")


def test_a_burst_is_taken_a_turn_at_a_time():
    turns = []  # the event loop's turn each connection was handled in

    def handle(client, address):
        turns.append(gevent.get_hub().loop.iteration)
        client.close()

    server = Listener(("127.0.0.1", 0), handle=handle, spawn=Pool(1000))
    server.max_accept = 1  # what gunicorn sets when there are several workers
    server.start()
    clients = []
    try:
        burst = ACCEPT_PER_TURN + ACCEPT_PER_TURN // 2
        for _ in range(burst):
            client = _blocking_socket()
            client.connect(server.address)
            clients.append(client)
        _blocking_sleep(0.05)  # every handshake done before the event loop turns once
        with gevent.Timeout(10):
            while len(turns) < burst:
                gevent.sleep(0.01)
        per_turn = [count for _, count in sorted(Counter(turns).items())]
        assert max(per_turn) == ACCEPT_PER_TURN, per_turn  # not gunicorn's 1, nor gevent's 100
        assert sum(per_turn) == burst
    finally:
        server.stop()
        for client in clients:
            client.close()


def _written(chunked, payload):
    """What a client reading slowly receives when a response writes payload as one body write."""
    server_side, client_side = gevent_socket.socketpair()
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # a full buffer, many partial sends
    response = SwiftChatResponse(None, server_side, None)
    response.chunked = chunked

    def write():
        response._emit_body(payload)
        server_side.shutdown(socket.SHUT_WR)

    writer = gevent.spawn(write)
    received = []
    try:
        with gevent.Timeout(10):  # a writer that never finishes fails the test instead of hanging it
            while data := client_side.recv(1000):
                received.append(data)
                gevent.sleep(0)
            writer.get()
    finally:
        writer.kill()
        server_side.close()
        client_side.close()
    return b"".join(received)


def test_a_large_body_reaches_a_slow_reader_whole_and_framed():
    payload = os.urandom(1024 * 1024)
    assert _written(True, payload) == b"100000\r\n" + payload + b"\r\n"
    assert _written(False, payload) == payload
