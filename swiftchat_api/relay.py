"""The iterable a streamed response is made of: it owns the upstream Bedrock stream.

A reader greenlet pulls events from boto3 and encodes them with the stream's dialect as they
arrive; the WSGI server iterates this object and writes what has piled up: whole events only,
at most the dialect's ``max_write`` bytes per write (a bigger event alone), the in-band error
always alone after the last event. A busy worker thus pays one write for a backlog without
ever handing an app a read that ends inside an event.

Bounded in every direction: the reader stops pulling from Bedrock while more than
``max_buffer`` encoded bytes wait for a slow client; a client that takes nothing for
``client_timeout`` seconds is let go; an upstream silent for ``idle_timeout`` is closed. When
the client goes away (EOF on its socket, or a failed write and the server's ``close()``), the
upstream stream is closed at once so Bedrock stops generating.

Nothing here starts a timer per event: with thousands of open streams, a timer armed on
every read costs more than the event itself. One Ticker per worker wakes the relays that
owe a keep-alive, whose upstream has been silent too long or whose client stopped reading.
"""

import select
import socket
import time
from dataclasses import dataclass

import gevent
from gevent.event import Event
from gevent.monkey import get_original

_HUNG_UP = select.POLLRDHUP | select.POLLHUP | select.POLLERR
# The kernel's poll, not gevent's stand-in (which reports readable, never hung up); a zero
# time-out never blocks the hub.
_poll = get_original("select", "poll")


class UpstreamSilent(Exception):
    """Bedrock sent nothing on an open stream for longer than the configured time-out."""


@dataclass(frozen=True)
class Limits:
    """How long and how much one stream may wait on either side."""

    idle_timeout: float  # upstream silence before the stream is closed
    keepalive_interval: float  # client-side silence before a keep-alive (dialects that have one)
    client_timeout: float  # a write the client has not taken for this long ends the stream
    max_buffer: int  # encoded bytes waiting for the client before Bedrock is no longer read


class Ticker:
    """One greenlet per worker that checks every open relay a few times a second."""

    def __init__(self, period):
        self.period = period
        self._relays = set()
        self._greenlet = None

    def add(self, relay):
        self._relays.add(relay)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def discard(self, relay):
        self._relays.discard(relay)

    def _run(self):
        while self._relays:
            gevent.sleep(self.period)
            now = time.monotonic()
            for relay in list(self._relays):
                relay.tick(now)


class Relay:
    """Relays one stream; afterwards it tells on_done(relay) what happened (see the public attributes)."""

    # Thousands of these live at once in a worker: no per-instance dict.
    __slots__ = (
        "_stream",
        "_dialect",
        "_ticker",
        "_limits",
        "_client",
        "on_done",
        "_pending",
        "_pending_bytes",
        "_ready",
        "_drained",
        "_arrived",
        "_finished",
        "_completed",
        "_reported",
        "_paused",
        "_keepalive_due",
        "_silenced",
        "_peer_sent_more",
        "_writing_since",
        "client_gone",
        "bytes_sent",
        "first_event_at",
        "finished_at",
        "usage",
        "upstream_error",
        "_last_write",
        "_last_upstream",
        "_reader",
        "_reading",
        "_watcher",
        "_output",
    )

    def __init__(self, stream, dialect, ticker, limits, client=None):
        self._stream = stream
        self._dialect = dialect
        self._ticker = ticker
        self._limits = limits
        self._client = client
        self.on_done = None
        self._pending = []
        self._pending_bytes = 0
        self._ready = Event()  # something for the writer to do
        self._drained = Event()  # room for the reader again
        self._arrived = Event()  # the first event, or the end of the stream
        self._finished = False
        self._completed = False
        self._reported = False
        self._paused = False
        self._keepalive_due = False
        self._silenced = False
        self._peer_sent_more = False
        self._writing_since = None
        self.client_gone = False
        self.bytes_sent = 0
        self.first_event_at = None
        self.finished_at = None
        self.usage = None
        self.upstream_error = None
        self._last_write = self._last_upstream = time.monotonic()
        self._reader = None
        self._reading = False
        self._watcher = None
        self._output = None

    def start(self):
        """Start reading Bedrock now, before the response exists (see wait_for_first_event)."""
        self._reader = gevent.spawn_raw(self._read)  # a bare greenlet: lighter per stream than gevent.spawn
        self._ticker.add(self)

    def wait_for_first_event(self, window):
        """Wait up to ``window`` s for Bedrock's first event; raise the error if the stream failed before one.

        A refusal that Bedrock sends as the stream's first frame (throttling, validation) thus
        still gets a real status, while a model that is slow to start cannot hold the response
        headers long enough for the apps to give up.
        """
        self._arrived.wait(window)
        if self._finished and self.first_event_at is None:
            self.close()
            raise self.upstream_error or EmptyStream("Bedrock ended the stream before its first event.")

    def __iter__(self):
        if self._output is None:
            if self._client is not None:
                # A libev watcher, not a greenlet: it costs no stack while the client is quiet.
                self._watcher = gevent.get_hub().loop.io(self._client.fileno(), 1)
                self._watcher.start(self._client_stirred)
            self._output = self._write_loop()
        return self._output

    def close(self):
        """Stop relaying and close the upstream stream (the server calls this when done)."""
        if self._output is not None:
            self._output.close()
        self._stop()

    def tick(self, now):
        """Called by the Ticker: owe a keep-alive, give up on a silent upstream or a client that stopped reading."""
        limits = self._limits
        keepalive = self._dialect.keepalive
        if keepalive and now - self._last_write >= limits.keepalive_interval and not self._pending:
            self._keepalive_due = True
            self._ready.set()
        if not (self._finished or self._silenced or self._paused) and now - self._last_upstream >= limits.idle_timeout:
            self._silenced = True
            silence = UpstreamSilent(f"Bedrock sent nothing for {limits.idle_timeout:g} s; the stream was closed.")
            gevent.kill(self._reader, silence)
        if self._writing_since is not None and now - self._writing_since >= limits.client_timeout:
            self._let_go()
        elif self._peer_sent_more and self._client_hung_up():
            self._client_left()

    def _write_loop(self):
        try:
            if not self._pending:
                yield b""  # the response headers, now: whatever Bedrock does next is written in-band
            while not self.client_gone:
                if self._pending:
                    chunk = self._take()
                elif self._finished:
                    chunk = self._dialect.error(self.upstream_error) if self.upstream_error else self._dialect.end()
                    self._completed = True
                elif self._keepalive_due:
                    chunk = self._dialect.keepalive
                    self._keepalive_due = False
                else:
                    self._ready.clear()
                    self._ready.wait()
                    continue
                if chunk:
                    self._last_write = self._writing_since = time.monotonic()
                    self.bytes_sent += len(chunk)
                    yield chunk
                    self._writing_since = None
                if self._completed:
                    return
        finally:
            self._stop()

    def _take(self):
        """Whole events, up to max_write bytes (or one bigger event alone)."""
        pending = self._pending
        size, taken, limit = len(pending[0]), 1, self._dialect.max_write
        while taken < len(pending) and size + len(pending[taken]) <= limit:
            size += len(pending[taken])
            taken += 1
        chunk = pending[0] if taken == 1 else b"".join(pending[:taken])
        del pending[:taken]  # a few small events at most: cheaper per stream than a deque
        self._pending_bytes -= size
        self._keepalive_due = False
        self._drained.set()
        return chunk

    def _read(self):
        self._reading = True
        limit = self._limits.max_buffer
        try:
            for event in self._stream:
                self._last_upstream = time.monotonic()
                if self.first_event_at is None:
                    self.first_event_at = self._last_upstream
                    self._arrived.set()
                metadata = event.get("metadata")
                if metadata:
                    self.usage = metadata.get("usage")
                data = self._dialect.event(event)
                if data:
                    self._pending.append(data)
                    self._pending_bytes += len(data)
                    self._ready.set()
                    if self._pending_bytes > limit:
                        self._wait_for_room(limit)
        except Exception as error:  # after the first byte, failures travel in-band
            self.upstream_error = error
        finally:
            self._finished = True
            self._arrived.set()
            self._ready.set()
            self._stream.close()

    def _wait_for_room(self, limit):
        """Back-pressure: read no more from Bedrock until the client has taken what waits."""
        self._paused = True
        while self._pending_bytes > limit:
            self._drained.clear()
            self._drained.wait()
        self._paused = False
        self._last_upstream = time.monotonic()  # the pause was ours, not Bedrock's silence

    def _client_stirred(self):
        """The client's socket became readable: it hung up, or sent the start of its next request."""
        self._watcher.stop()
        if self._client_hung_up():
            gevent.spawn(self._client_left)  # not in the hub: on_done may do I/O
        else:
            self._peer_sent_more = True  # the Ticker polls for the hang-up from now on

    def _client_hung_up(self):
        poller = _poll()
        try:
            poller.register(self._client.fileno(), _HUNG_UP)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def _let_go(self):
        """The client has taken nothing for client_timeout: fail the blocked write so the server closes us."""
        self._writing_since = None
        self.client_gone = True
        try:
            self._client.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            self._stop()

    def _client_left(self):
        self.client_gone = True
        self._stop()
        self._ready.set()

    def _stop(self):
        self._ticker.discard(self)
        if self._reader is not None and not self._reader.dead:
            gevent.kill(self._reader)
        if not self._reading:  # a reader killed before it ran never reaches its finally
            self._stream.close()
        self._drained.set()
        if self._watcher is not None:
            self._watcher.close()
        if not self._reported:
            self._reported = True
            self.finished_at = time.monotonic()
            self.client_gone = self.client_gone or not self._completed
            if self.on_done is not None:
                self.on_done(self)


class EmptyStream(Exception):
    """Bedrock ended a stream without sending a single event."""
