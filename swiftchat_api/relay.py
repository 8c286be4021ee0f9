"""The one relay every streamed answer is made of: it owns the upstream and the client's side.

The upstream is Bedrock's event stream (``BedrockCall``) or, for the apps' Use Proxy, a
provider's raw bytes (``services.proxy.ProviderCall``); the dialect turns what it yields into
the bytes a client parses. A reader greenlet makes the upstream call before the response
exists (and, for Bedrock, reads the first event), so that a refusal still gets a real status
(see wait_for_first_event). Then it hands the upstream over and ends: from then on the
server's own greenlet, iterating this object, reads each item, encodes it and yields it, so
each event costs one greenlet wake-up and one write, an open stream one greenlet, and a client
that does not read simply blocks the read from upstream (back-pressure). Writes are whole
events, the in-band error is a write of its own after the last event, and no two writes ever
interleave.

Bounded in every direction: the client's Connection lets go of a client that takes nothing
for its time-out; an upstream silent for ``idle_timeout`` is closed. When the client goes away
(EOF on its socket, or a failed write), the upstream is closed at once so it stops generating.

Nothing is ever thrown into a greenlet that relays (an exception landing in the middle of a
write would cut an HTTP chunk): the upstream socket is shut down for reading instead, so the
read ends and the greenlet finishes on its own. The one exception is the reader while it is
still making the call, which writes nothing of the client's: it is killed, and urllib3 drops
the half-used upstream connection.

Nothing here starts a timer per event: with thousands of open streams, a timer armed on
every read costs more than the event itself. One Ticker per worker wakes the relays that
owe a keep-alive, whose upstream has been silent too long or whose client hung up behind a
pipelined request. While Bedrock is silent the server's greenlet is blocked reading it, so a
keep-alive is written by a short-lived greenlet through the Connection's ``write``, under a
lock that the event writes take too.
"""

import contextlib
import enum
import select
import time
from dataclasses import dataclass

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.monkey import get_original

from .eventstream import events
from .exceptions import ClientGone, StreamRefused

_HUNG_UP = select.POLLRDHUP | select.POLLHUP | select.POLLERR
# The kernel's poll, not gevent's stand-in (which reports readable, never hung up); a zero
# time-out never blocks the hub.
_poll = get_original("select", "poll")


class UpstreamTooMuch(Exception):
    """The upstream went past a stream's total bound (``Limits.most_seconds``, ``most_bytes``); ``bound`` says which."""

    def __init__(self, bound):
        super().__init__(f"the answer went past {bound}; it was cut off")
        self.bound = bound


class UpstreamSilent(Exception):
    """The upstream sent nothing on an open stream for ``seconds``, the configured time-out."""

    def __init__(self, seconds):
        super().__init__(f"Bedrock sent nothing for {seconds:g} s; the stream was closed.")
        self.seconds = seconds


@dataclass(frozen=True)
class Limits:
    """How long one stream may wait on its upstream, and how much it may relay (the client's side: its Connection)."""

    idle_timeout: float  # upstream silence before the stream is closed
    keepalive_interval: float  # client-side silence before a keep-alive (dialects that have one)
    most_seconds: float | None = None  # the longest a stream may last, from its start
    most_bytes: int | None = None  # the most a stream may relay


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


class ClientWatch:
    """Tells once that the client of a streamed answer went away, without a greenlet of its own.

    A libev watcher waits for the client's socket to stir: a hang-up calls ``on_gone`` (in a
    greenlet: it may do I/O); bytes of a next pipelined request leave the socket readable for
    good, so from then on ``check()`` (called by the Ticker) asks the kernel whether the client
    hung up behind them.
    """

    __slots__ = ("_client", "_on_gone", "_watcher", "_peer_sent_more")

    def __init__(self, client, on_gone):
        self._client = client
        self._on_gone = on_gone
        self._peer_sent_more = False
        self._watcher = gevent.get_hub().loop.io(client.fileno(), 1)
        self._watcher.start(self._stirred)

    def _stirred(self):
        self._watcher.stop()
        if self._hung_up():
            gevent.spawn(self._on_gone)  # not in the hub
        else:
            self._peer_sent_more = True

    def check(self):
        """From the Ticker: call on_gone if the client hung up behind a pipelined request."""
        if self._peer_sent_more and self._hung_up():
            self._peer_sent_more = False
            self._on_gone()

    def _hung_up(self):
        poller = _poll()
        try:
            poller.register(self._client.fileno(), _HUNG_UP)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self):
        self._watcher.close()


class State(enum.Enum):
    """Where a relay's upstream stands; it only ever moves down this list."""

    NEW = "new"  # the reader has not run yet
    OPENING = "opening"  # the reader is making the call (Bedrock accepting it, a provider connecting)
    FIRST = "first"  # the call was accepted; the reader waits for Bedrock's first event
    READY = "ready"  # handed over: the server's greenlet has not started reading yet
    RELAYING = "relaying"  # the server's greenlet reads the upstream and writes
    ENDED = "ended"  # the upstream ended, failed or was cut, and is closed


class BedrockCall:
    """A Converse stream as a relay's upstream: ``call()`` makes the call and returns boto3's EventStream."""

    __slots__ = ("_call", "_stream")
    service = "bedrock"  # whose failures the upstream-error metric counts
    first_item = True  # the headers wait (within the window) for the first event: a refusal may come as one
    status = 200  # of the response, once it starts
    headers = {}  # of Bedrock's, none is passed on

    def __init__(self, call):
        self._call = call
        self._stream = None

    def open(self):
        """Make the call; its events. Raises what the call raises."""
        # Not kept once called: it holds the request's arguments (the whole chat).
        call, self._call = self._call, None
        self._stream = call()
        return events(self._stream)

    def halt(self):
        """End the current or next read at once (a read blocked on Bedrock sees the end)."""
        # urllib3 shuts the socket down for reading. It refuses once the body has been read or
        # closed, when nobody is blocked on Bedrock.
        with contextlib.suppress(AttributeError, ValueError, RuntimeError, OSError):
            self._stream._raw_stream.shutdown()

    def close(self):
        if self._stream is not None:
            self._stream.close()


class Relay:
    """Relays one stream; afterwards it tells on_done(relay) what happened (see the public attributes).

    ``upstream`` is opened by the relay's reader greenlet (see ``start``), so the response
    headers never wait on it longer than the caller's window. ``connection`` is the client's
    ``connection.Connection`` (None outside gunicorn).
    """

    # Thousands of these live at once in a worker: no per-instance dict.
    __slots__ = (
        "_upstream",
        "_items",
        "_dialect",
        "_ticker",
        "_limits",
        "_connection",
        "state",
        "on_done",
        "_first",
        "_ready",
        "_arrived",
        "_completed",
        "_reported",
        "_keepalive_due",
        "_silenced",
        "_overrun",
        "_halted",
        "_writing_since",
        "_lock",
        "client_gone",
        "bytes_sent",
        "text_sent",
        "first_event_at",
        "finished_at",
        "usage",
        "upstream_error",
        "_last_write",
        "_last_upstream",
        "_started_at",
        "_reader",
        "_watcher",
        "_output",
    )

    def __init__(self, upstream, dialect, ticker, limits, connection=None):
        self._upstream = upstream
        self._items = None  # the upstream's items, read by the reader and then by the server's greenlet
        self._dialect = dialect
        self._ticker = ticker
        self._limits = limits
        self._connection = connection
        self.state = State.NEW
        self.on_done = None
        self._first = b""  # the first event's bytes, read by the reader
        self._ready = Event()  # for the server's greenlet before the hand-over: the first event, an end, a keep-alive
        self._arrived = Event()  # handed over, or ended
        self._completed = False  # the last write (the end, or the in-band error) was made
        self._reported = False  # on_done was told
        self._keepalive_due = False
        self._silenced = False  # the upstream was cut for its silence
        self._overrun = None  # the upstream was cut past a total bound: which (a text)
        self._halted = False  # the upstream was told to stop
        self._writing_since = None
        self._lock = None  # serialises keep-alives with the event writes, once there has been one
        self.client_gone = False
        self.bytes_sent = 0
        self.text_sent = 0  # UTF-8 bytes of the text, reasoning and tool input relayed: what a cut stream's output is
        self.first_event_at = None
        self.finished_at = None
        self.usage = None
        self.upstream_error = None
        self._last_write = self._last_upstream = self._started_at = time.monotonic()
        self._reader = None
        self._watcher = None
        self._output = None

    def start(self, acceptance_timeout=None):
        """Open the upstream now, before the response exists; watch the client from now on.

        The upstream may take up to ``acceptance_timeout`` seconds (None: its own bounds) to
        accept the call, retries included; then the stream fails with a 504 refusal, written
        in-band if the headers are out by then.
        """
        if self._connection is not None:
            self._watcher = ClientWatch(self._connection.socket, self._client_left)
        self._reader = gevent.spawn_raw(self._read_first, acceptance_timeout)  # lighter than gevent.spawn
        self._ticker.add(self)

    def wait_for_first_event(self, deadline=None):
        """Wait until ``deadline`` (monotonic; None: for as long as opening takes) for the hand-over.

        Raises the error if the stream failed before it. A refusal that comes within the
        window (the call refused, or Bedrock's refusal sent as the stream's first frame) thus
        still gets a real status, while an upstream that is slow to accept or to start cannot
        hold the response headers long enough for the apps to give up.
        """
        self._arrived.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self.client_gone:  # hung up meanwhile: no answer to give, no upstream failure to count
            self.close()
            raise ClientGone
        failed = self.upstream_error is not None or self._upstream.first_item  # a provider may answer nothing
        if self.state is State.ENDED and self.first_event_at is None and failed:
            refusal = self._refusal()  # taken before on_done, which would count it as a failure in the stream
            self.close()
            try:
                raise refusal
            finally:
                del refusal  # raised, it holds this frame: kept here too, the two would wait for a full collection

    def _refusal(self):
        # Raised, the error gets a traceback through the caller's frame, which holds the relay:
        # the relay no longer holds the error, or the two would wait for a full collection.
        error, self.upstream_error = self.upstream_error, None
        return error or EmptyStream("Bedrock ended the stream before its first event.")

    @property
    def answered(self):
        """Whether the response began (a refusal before it is no stream)."""
        return self._output is not None

    def __iter__(self):
        if self._output is None:
            self._output = self._write_loop()
        return self._output

    def close(self):
        """Stop relaying and close the upstream (the server calls this when done)."""
        if self._output is not None and not self._output.gi_running:
            self._output.close()
        self._stop()

    def tick(self, now):
        """Called by the Ticker: owe a keep-alive, give up on a silent upstream, look for a hung-up client."""
        limits = self._limits
        state = self.state
        writing = self._writing_since is not None
        keepalive = self._dialect.keepalive
        if keepalive and not (writing or self._keepalive_due) and now - self._last_write >= limits.keepalive_interval:
            if state is not State.RELAYING:
                self._keepalive_due = True
                self._ready.set()
            elif self._connection is not None:
                # The server's greenlet is blocked reading upstream: a short-lived one writes the keep-alive.
                self._keepalive_due = True
                if self._lock is None:
                    self._lock = Semaphore()
                gevent.spawn_raw(self._write_keepalive)
        if (
            state is not State.ENDED
            and state is not State.OPENING  # the call has its own bound
            and not (self._silenced or writing)
            and now - self._last_upstream >= limits.idle_timeout
        ):
            self._silenced = True
            self._halt_upstream()
        overdue = limits.most_seconds is not None and now - self._started_at >= limits.most_seconds
        if overdue and self._overrun is None and state is not State.ENDED:
            self._overrun = f"{limits.most_seconds:g} s"
            self._halt_upstream()
        if self._watcher is not None:
            self._watcher.check()

    def _write_loop(self):
        try:
            if not self._first:
                yield b""  # the response headers, now: whatever the upstream does next is written in-band
            while self.state in _BEFORE_HAND_OVER and not self.client_gone:
                if self._keepalive_due:
                    yield from self._written(self._dialect.keepalive)
                    self._keepalive_due = False
                else:
                    self._ready.clear()
                    self._ready.wait()
            if self._first:
                first, self._first = self._first, b""
                yield from self._written(first)
            if self.state is State.READY and not self.client_gone:
                # Inline, not a sub-generator: a generator level is C stack saved with every open stream.
                self.state = State.RELAYING
                encode = self._dialect.event
                try:
                    for item in self._items:
                        text = 0
                        if type(item) is dict:  # a Bedrock event (a provider's bytes are relayed as they are)
                            delta = item.get("contentBlockDelta")
                            if delta is not None:
                                text = _text_size(delta)
                            else:
                                metadata = item.get("metadata")
                                if metadata:
                                    self.usage = metadata.get("usage")
                            delta = metadata = None
                        data = encode(item)
                        if not data:
                            self._last_upstream = time.monotonic()
                            item = None
                            continue
                        lock = self._lock  # as in _written, without a generator per event
                        if lock is not None:
                            lock.acquire()
                        try:
                            if self.client_gone:
                                break
                            self.bytes_sent += len(data)
                            self.text_sent += text
                            self._writing_since = time.monotonic()
                            yield data
                            # Time spent writing is not the upstream's silence.
                            self._last_write = self._last_upstream = time.monotonic()
                            if self._limits.most_bytes is not None and self.bytes_sent > self._limits.most_bytes:
                                self._overrun = f"{self._limits.most_bytes:,} bytes"
                            if self._overrun is not None:  # past a total bound: not a byte more of what came
                                break
                        finally:
                            self._writing_since = None
                            if lock is not None:
                                lock.release()
                        item = data = None  # nothing of it stays referenced while the upstream is awaited
                except Exception as error:  # after the first byte, failures travel in-band
                    if not self._halted:
                        self.upstream_error = _untraced(error)
                finally:
                    self._end_of_stream()
            if not self.client_gone:
                self._completed = True
                error = self.upstream_error
                if error is not None and self._connection is not None and self.bytes_sent:
                    # The error in a read of its own, not glued to the events.
                    self._connection.settle(gone=lambda: self.client_gone)
                yield from self._written(self._dialect.error(error) if error else self._dialect.end())
            if self._lock is not None:  # a keep-alive being written ends before the server writes again
                with self._lock:
                    pass
        finally:
            self._stop()

    def _written(self, chunk):
        """Yield chunk to the server, alone: no keep-alive is written while it is."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            if chunk and not self.client_gone:
                self.bytes_sent += len(chunk)
                self._writing_since = time.monotonic()
                yield chunk
                self._last_write = time.monotonic()
        finally:
            self._writing_since = None
            if lock is not None:
                lock.release()

    def _write_keepalive(self):
        """A short-lived greenlet: the keep-alive, unless an event or the end was written meanwhile."""
        lock = self._lock
        try:
            with lock:
                if (
                    self.state is State.RELAYING
                    and not self.client_gone
                    and self._writing_since is None  # an event write that began before the lock existed
                    and time.monotonic() - self._last_write >= self._limits.keepalive_interval
                ):
                    keepalive = self._dialect.keepalive
                    self.bytes_sent += len(keepalive)
                    self._writing_since = time.monotonic()
                    try:
                        self._connection.write(keepalive)
                        self._last_write = time.monotonic()
                    finally:
                        self._writing_since = None
        except Exception:  # the client's socket failed, was shut down or timed out: the stream ends
            self._client_left()
        finally:
            self._keepalive_due = False

    def _read_first(self, acceptance_timeout):
        """The reader: the call, Bedrock's first event (or the refusal), then the items go to the server's greenlet."""
        self.state = State.OPENING
        try:
            # gevent.Timeout is a BaseException, so botocore's retry loop cannot swallow it.
            deadline = gevent.Timeout(acceptance_timeout)
            try:
                with deadline:
                    self._items = self._upstream.open()
            except gevent.Timeout as expired:
                if expired is not deadline:
                    raise
                raise StreamRefused(504, f"Bedrock did not start answering within {acceptance_timeout:g} s.") from None
            self.state = State.FIRST
            self._last_upstream = time.monotonic()
            if self._halted:
                return
            if not self._upstream.first_item:
                self.state = State.READY
                return
            for event in self._items:
                self.first_event_at = self._last_upstream = time.monotonic()
                metadata = event.get("metadata")
                if metadata:
                    self.usage = metadata.get("usage")
                self._first = self._dialect.event(event)
                if not self._halted:
                    self.state = State.READY
                break
        except Exception as error:
            if not self._halted:
                self.upstream_error = _untraced(error)
        finally:
            if self.state is not State.READY:
                self._end_of_stream()
            self._arrived.set()
            self._ready.set()
            self._reader = None  # a finished greenlet, kept by nothing for the rest of the stream

    def _end_of_stream(self):
        """The upstream ended, failed or was cut: close it (whoever was reading it is done)."""
        if self._silenced:
            self.upstream_error = UpstreamSilent(self._limits.idle_timeout)
        elif self._overrun is not None:
            self.upstream_error = UpstreamTooMuch(self._overrun)
        self.state = State.ENDED
        self._upstream.close()

    def _halt_upstream(self):
        """End the current or next read from upstream; whoever reads then finishes by itself."""
        self._halted = True
        reader = self._reader
        if self.state is State.OPENING and reader is not None:
            # Still making the call: nothing of the client's is being written by the reader.
            gevent.kill(reader)
        else:
            self._upstream.halt()

    def _client_left(self):
        self.client_gone = True
        if self._writing_since is not None:  # a write to a socket nobody reads would wait for the client time-out
            self._connection.let_go()
        self._stop()
        self._ready.set()

    def _stop(self):
        self._ticker.discard(self)
        state = self.state
        if state is State.NEW and self._reader is not None:
            gevent.kill(self._reader)  # it has not run yet: nothing of it can be mid-read or mid-write
            self._reader = None
            self._end_of_stream()
            self._arrived.set()
        elif state in _READING:
            self._halt_upstream()  # the greenlet reading upstream closes it when its read ends
        elif state is not State.ENDED:
            self._end_of_stream()
        if self._watcher is not None:
            self._watcher.close()
            # It holds _client_left: kept, the relay and all it holds (the upstream response, the
            # client's socket, gunicorn's request) would be freed only by the cyclic collector.
            self._watcher = None
        if not self._reported:
            self._reported = True
            self.finished_at = time.monotonic()
            self.client_gone = self.client_gone or not self._completed
            if self.on_done is not None:
                self.on_done(self)


_BEFORE_HAND_OVER = frozenset((State.NEW, State.OPENING, State.FIRST))
_READING = frozenset((State.OPENING, State.FIRST, State.RELAYING))


def _text_size(delta):
    """The UTF-8 bytes of the text, reasoning or tool input one contentBlockDelta event carries."""
    delta = delta.get("delta") or {}
    text = delta.get("text")
    if text is None:
        piece = delta.get("reasoningContent") or delta.get("toolUse") or {}
        text = piece.get("text") or piece.get("input")
    return len(text.encode("utf-8", "surrogatepass")) if type(text) is str else 0


def _untraced(error):
    """``error`` to be kept by the relay: its tracebacks, and its causes', hold the frames that
    raised it, this relay's among them, which would keep the stream alive until a full collection."""
    seen = set()
    cause = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    return error


class EmptyStream(Exception):
    """Bedrock ended a stream without sending a single event."""
