"""Usage written to the store by one background greenlet per worker, so no response waits on the store.

A response's last byte has gone by the time its usage is known; writing it there would hold
the connection's next request (an app's keep-alive) for as long as the store takes, up to
its time-out when it is down. Queued instead, a write costs the request a queue put. The
queue is bounded: while the store is down, what does not fit is dropped and reported, so an
outage can never grow a worker's memory.

The writer lets requests gather for ``GATHER_SECONDS`` and writes them in one go (one SQLite
transaction, one Redis call). Written one by one, requests served one after another spent a
tenth of their CPU in the worker on SQLite, and each write took the lock that every worker on
the host shares. A day's budget thus sees a request that long after it ended.
"""

import atexit
import time

import gevent
from gevent.event import Event
from gevent.queue import Empty, Full, Queue

from . import day_of

QUEUE_SIZE = 10_000
FLUSH_SECONDS = 2.0
GATHER_SECONDS = 0.25
BATCH_SIZE = 1_000  # requests written in one go at most


class UsageRecorder:
    """Queues served requests' usage and writes it to ``store`` in order.

    ``failed(error, lost)`` hears of every failure: ``lost`` is how many requests' usage it cost.
    """

    def __init__(self, store, failed, size=QUEUE_SIZE):
        self._store = store
        self._failed = failed
        self._queue = Queue(size)
        self._writer = None
        self._writing = 0  # requests in the write under way
        self._written = Event()  # set while no write is under way
        self._written.set()
        self._closed = False  # flushed: the worker is exiting, and flush writes what is left itself
        atexit.register(self.flush)  # a worker that exits writes what is still queued

    def add(self, name, model, input_tokens, output_tokens):
        """Queue one served request and its tokens for today (UTC); never blocks, never raises."""
        if self._closed:
            self._failed(RuntimeError("a usage record came after the worker's last write"), 1)
            return
        try:
            self._queue.put_nowait((name, model, input_tokens, output_tokens, day_of(time.time())))
        except Full:
            self._failed(OverflowError(f"{self._queue.maxsize:,} usage records were already waiting"), 1)
            return
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write)

    def flush(self, seconds=FLUSH_SECONDS):
        """At a worker's exit (once): write what is queued, in the calling greenlet, for about ``seconds``.

        The background writer stops, and a write it has under way is waited for first. A
        worker's exit must not wait on a store that is down: after the first failure, or once
        the time is up, whatever is left is reported lost.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + seconds
        if not self._written.wait(seconds):
            waited = TimeoutError("a usage write was still waiting on the store when the worker exited")
            self._failed(waited, self._writing)
        while time.monotonic() < deadline:
            batch = self._take()
            if not batch:
                return
            if not self._write_batch(batch):
                break
        left = self._queue.qsize()
        if left:
            while self._queue.qsize():
                self._queue.get_nowait()
            self._failed(TimeoutError(f"{left:,} usage records were not written before the worker exited"), left)

    def pending(self):
        """How many records wait to be written."""
        return self._queue.qsize()

    def _write(self):
        while not self._closed:
            self._queue.peek()  # left queued while more gather: a worker's exit (flush) still writes it
            if self._queue.qsize() < BATCH_SIZE:
                gevent.sleep(GATHER_SECONDS)
            if not self._closed:
                self._write_batch(self._take())

    def _take(self):
        batch = []
        while len(batch) < BATCH_SIZE:
            try:
                batch.append(self._queue.get_nowait())
            except Empty:
                break
        return batch

    def _write_batch(self, batch):
        self._writing = len(batch)
        self._written.clear()
        try:
            self._store.record_usages(batch)
            return True
        except Exception as error:  # lost records are reported, and the writer carries on
            self._failed(error, len(batch))
            return False
        finally:
            self._writing = 0
            self._written.set()
