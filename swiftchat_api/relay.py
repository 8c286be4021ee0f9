"""The iterable a chat response is made of: it owns the upstream Bedrock stream.

A reader greenlet pulls events from boto3 and encodes them as they arrive; the WSGI server
iterates this object and writes whatever has piled up as one write, so a busy worker pays
one write for a backlog instead of one per event, and an event is never split. When the
client goes away (its socket reports EOF, or a write fails and the server calls
``close()``), the upstream stream is closed at once so Bedrock stops generating.

Nothing here starts a timer per event: with thousands of open streams, a timer armed on
every read costs more than the event itself. One Ticker per worker wakes the relays that
owe a keep-alive or whose upstream has been silent too long.
"""

import socket
import time

import gevent
from gevent.event import Event
from gevent.socket import wait_read


class UpstreamSilent(Exception):
    """Bedrock sent nothing on an open stream for longer than the configured time-out."""


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

    def __init__(self, events, encode, ticker, idle_timeout, keepalive=None, interval=None, client=None, on_done=None):
        self._events = events
        self._encode = encode
        self._ticker = ticker
        self._idle_timeout = idle_timeout
        self._keepalive = keepalive
        self._interval = interval
        self._client = client
        self._on_done = on_done
        self._pending = []
        self._ready = Event()
        self._finished = False
        self._completed = False
        self._reported = False
        self.client_gone = False
        self.first_event_at = None
        self.finished_at = None
        self.usage = None
        self.upstream_error = None
        self._keepalive_due = False
        self._silenced = False
        self._last_write = self._last_upstream = time.monotonic()
        self._reader = None
        self._watcher = None
        self._output = self._write_loop()

    def __iter__(self):
        return self._output

    def close(self):
        """Stop relaying and close the upstream stream (the server calls this when done)."""
        self._output.close()
        self._stop()

    def tick(self, now):
        """Called by the Ticker: owe a keep-alive, or give up on a silent upstream."""
        if self._keepalive and now - self._last_write >= self._interval and not self._pending:
            self._keepalive_due = True
            self._ready.set()
        if not self._finished and not self._silenced and now - self._last_upstream >= self._idle_timeout:
            self._silenced = True
            silence = UpstreamSilent(f"Bedrock sent nothing for {self._idle_timeout:g} s; the stream was closed.")
            self._reader.kill(silence, block=False)

    def _write_loop(self):
        self._reader = gevent.spawn(self._read)
        if self._client is not None:
            self._watcher = gevent.spawn(self._watch)
        self._ticker.add(self)
        try:
            while not self.client_gone:
                if self._pending:
                    chunk = b"".join(self._pending)
                    self._pending.clear()
                    self._keepalive_due = False
                    yield chunk
                    self._last_write = time.monotonic()
                elif self._finished:
                    self._completed = True
                    return
                elif self._keepalive_due:
                    self._keepalive_due = False
                    yield self._keepalive
                    self._last_write = time.monotonic()
                else:
                    self._ready.clear()
                    self._ready.wait()
        finally:
            self._stop()

    def _read(self):
        try:
            for event in self._events:
                self._last_upstream = time.monotonic()
                if self.first_event_at is None:
                    self.first_event_at = self._last_upstream
                metadata = event.get("metadata")
                if metadata:
                    self.usage = metadata.get("usage")
                data = self._encode(event)
                if data:
                    self._pending.append(data)
                    self._ready.set()
        except Exception as error:  # after the first byte, failures travel in-band
            self.upstream_error = error
            self._pending.append(b"Error: " + str(error).encode())
        finally:
            self._finished = True
            self._ready.set()
            self._events.close()

    def _watch(self):
        try:
            wait_read(self._client.fileno())
            if self._client.recv(1, socket.MSG_PEEK):
                return  # the next pipelined request, not a hang-up
        except OSError:
            pass
        self.client_gone = True
        self._stop()
        self._ready.set()

    def _stop(self):
        self._ticker.discard(self)
        if self._reader is None:
            self._events.close()
        else:
            self._reader.kill()
        if self._watcher is not None and self._watcher is not gevent.getcurrent():
            self._watcher.kill()
        if not self._reported:
            self._reported = True
            self.finished_at = time.monotonic()
            self.client_gone = self.client_gone or not self._completed
            if self._on_done is not None:
                self._on_done(self)
