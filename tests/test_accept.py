"""A worker takes the connections waiting for it ACCEPT_PER_TURN at a time, however gunicorn set it up.

gunicorn's gevent worker builds its server from ``gunicorn.workers.ggevent.StreamServer``, which
the worker replaces with ``Listener``; here a Listener serves real connections on 127.0.0.1.
"""

from collections import Counter

import gevent
from gevent.monkey import get_original
from gevent.pool import Pool

from swiftchat_api.worker import ACCEPT_PER_TURN, Listener

# A blocking socket even if another test module patched this process: the connections must all
# be waiting in the kernel before the event loop runs once.
_blocking_socket = get_original("socket", "socket")


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
        with gevent.Timeout(10):
            while len(turns) < burst:
                gevent.sleep(0.01)
        per_turn = [count for _, count in sorted(Counter(turns).items())]
        assert per_turn == [ACCEPT_PER_TURN, burst - ACCEPT_PER_TURN]
    finally:
        server.stop()
        for client in clients:
            client.close()
