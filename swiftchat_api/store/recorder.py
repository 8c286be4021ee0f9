"""Usage written to the store by one background greenlet per worker, so no response waits on the store.

A response's last byte has gone by the time its usage is known; writing it there would hold
the connection's next request (an app's keep-alive) for as long as the store takes, up to
its time-out when it is down. Queued instead, a write costs the request a queue put.

Usage the store refuses is not dropped: the batch is kept, in order, and written again (the
same batch, so a write whose reply was lost is not added twice) until the store takes it, so
``keys usage`` is complete after an outage. What is kept is bounded (``KEEP_RECORDS``, besides
the queue's ``QUEUE_SIZE``): past that, and at a worker's exit while the store is still down,
records are dropped, counted and logged, so an outage can never grow a worker's memory unbounded.

On a SQLite host, what is still unwritten when a worker exits is not dropped either: it is left in
a file beside the store (``<store>.usage-<random>.json``), and the next worker whose write succeeds
writes it, once (the same batch names), and removes the file. A worker killed outright (SIGKILL)
loses what it kept in memory.

A request admitted under a budget holds a reservation until its usage is written: that write is
not made to wait for others to gather, so the next request of the same person sees it settled.

The writer lets requests gather for ``GATHER_SECONDS`` and writes them in one go (one SQLite
transaction, one Redis call). Written one by one, requests served one after another spent a
tenth of their CPU in the worker on SQLite, and each write took the lock that every worker on
the host shares. A day's budget thus sees a request that long after it ended.
"""

import atexit
import collections
import contextlib
import glob
import json
import os
import secrets
import time

import gevent
from gevent.event import Event
from gevent.queue import Empty, Full, Queue

from . import StoreUnavailable, day_of

QUEUE_SIZE = 10_000
FLUSH_SECONDS = 2.0
GATHER_SECONDS = 0.25
BATCH_SIZE = 1_000  # requests written in one go at most
KEEP_RECORDS = 50_000  # requests' usage kept while the store refuses it, at most
FIRST_RETRY_SECONDS = 0.25
LONGEST_RETRY_SECONDS = 5.0
SPILL_CHECK_SECONDS = 30.0  # how often a worker whose writes succeed looks for usage exited workers left


class UsageRecorder:
    """Queues served requests' usage and writes it to ``store`` in order.

    ``failed(error, lost)`` hears of every failure: ``lost`` is how many requests' usage it cost
    (0 for a write that failed and is kept to be tried again).
    """

    def __init__(self, store, failed, size=QUEUE_SIZE, keep=KEEP_RECORDS, spill=None):
        self._store = store
        # ``spill``: a path prefix on the store's host where usage unwritten at exit is left (SQLite).
        self._spill = spill
        self._spill_checked = float("-inf")
        self._failed = failed
        self._queue = Queue(size)
        self._kept = collections.deque()  # (batch, its name) that the store refused, oldest first
        self._kept_records = 0
        self._keep_limit = keep
        self._hurry = Event()  # a record holds a reservation: write without waiting for others
        self._writer = None
        self._writing = 0  # requests in the write under way
        self._written = Event()  # set while no write is under way
        self._written.set()
        self._closed = False  # flushed: the worker is exiting, and flush writes what is left itself
        atexit.register(self.flush)  # a worker that exits writes what is still queued

    def add(self, name, model, input_tokens, output_tokens, estimated=(0, 0), reservation=None):
        """Queue one served request and its tokens for today (UTC); never blocks, never raises.

        ``estimated``: how many of the tokens are estimates; ``reservation``: the admission's, settled
        by this write.
        """
        if self._closed:
            self._failed(RuntimeError("a usage record came after the worker's last write"), 1)
            return
        record = (name, model, input_tokens, output_tokens, day_of(time.time()), *estimated, reservation)
        try:
            self._queue.put_nowait(record)
        except Full:
            self._failed(OverflowError(f"{self._queue.maxsize:,} usage records were already waiting"), 1)
            return
        if reservation is not None:
            self._hurry.set()
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
            if self._kept:
                if not self._write_kept():
                    break
                continue
            batch = self._take()
            if not batch:
                return
            if not self._write_batch(batch):
                break
        left = self._queue.qsize() + self._kept_records
        if left:
            batches = list(self._kept)
            rest = self._take_all()
            if rest:
                batches.append((rest, secrets.token_hex(12)))
            self._kept.clear()
            self._kept_records = 0
            if not self._spill_to_disk(batches):
                self._failed(TimeoutError(f"{left:,} usage records were not written before the worker exited"), left)

    def _take_all(self):
        taken = []
        while self._queue.qsize():
            taken.append(self._queue.get_nowait())
        return taken

    def _spill_to_disk(self, batches):
        """Leave batches in a file beside the store for a later worker to write; False if that cannot be done."""
        if not self._spill:
            return False
        path = f"{self._spill}.usage-{secrets.token_hex(8)}.json"
        try:
            with open(path + ".tmp", "w", opener=lambda file, flags: os.open(file, flags, 0o600)) as out:
                json.dump([[batch, name] for batch, name in batches], out)
            os.replace(path + ".tmp", path)  # whole or not at all: a reader never sees half a file
        except OSError as error:
            self._failed(error, 0)
            return False
        return True

    def _write_spilled(self):
        """Write, once, the usage that exited workers left beside the store; each file is claimed by renaming."""
        if not self._spill or time.monotonic() - self._spill_checked < SPILL_CHECK_SECONDS:
            return
        self._spill_checked = time.monotonic()
        for path in sorted(glob.glob(glob.escape(self._spill) + ".usage-*.json")):
            claimed = f"{path}.{os.getpid()}.writing"
            try:
                os.rename(path, claimed)  # another worker may take it first: then it is that one's
                with open(claimed) as spilled:
                    batches = json.load(spilled)
            except (OSError, ValueError):
                continue
            for batch, name in batches:
                self._kept.append(([tuple(record) for record in batch], name))
                self._kept_records += len(batch)
            with contextlib.suppress(OSError):
                os.remove(claimed)  # in memory now, and written by this worker's writer

    def pending(self):
        """How many records wait to be written (queued, and kept after a failed write)."""
        return self._queue.qsize() + self._kept_records

    def _write(self):
        pause = FIRST_RETRY_SECONDS
        while not self._closed:
            if self._kept:
                if self._write_kept():
                    pause = FIRST_RETRY_SECONDS
                else:
                    gevent.sleep(pause)  # the store is still refusing: try again later, less often
                    pause = min(pause * 2, LONGEST_RETRY_SECONDS)
                continue
            self._queue.peek()  # left queued while more gather: a worker's exit (flush) still writes it
            if self._queue.qsize() < BATCH_SIZE:
                self._hurry.wait(GATHER_SECONDS)
            self._hurry.clear()
            if not self._closed:
                self._write_batch(self._take())

    def _write_kept(self):
        """Write the oldest kept batch again; False (and it stays kept) while the store refuses it."""
        batch, name = self._kept[0]
        try:
            self._store.record_usages(batch, batch=name)
        except StoreUnavailable as error:
            self._failed(error, 0)
            return False
        except Exception as error:
            self._failed(error, len(batch))
        self._kept.popleft()
        self._kept_records -= len(batch)
        self._write_spilled()
        return True

    def _keep(self, batch, name):
        """Keep a batch the store refused, to write it later; what does not fit is lost, and said so."""
        room = self._keep_limit - self._kept_records
        if room < len(batch):
            lost = len(batch) - max(0, room)
            self._failed(OverflowError(f"{self._keep_limit:,} usage records were already kept"), lost)
            batch = batch[: max(0, room)]
            name = secrets.token_hex(12)  # not the batch that may have been written: a new one
        if batch:
            self._kept.append((batch, name))
            self._kept_records += len(batch)

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
        name = secrets.token_hex(12)
        try:
            self._store.record_usages(batch, batch=name)
            self._write_spilled()  # the store takes writes: what exited workers left can go too
            return True
        except StoreUnavailable as error:  # kept and written again later; the writer carries on
            self._failed(error, 0)
            self._keep(batch, name)
            return False
        except Exception as error:  # a batch the store can never take: written again, it would block the rest
            self._failed(error, len(batch))
            return False
        finally:
            self._writing = 0
            self._written.set()
