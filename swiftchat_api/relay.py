"""The iterable a chat response is made of: it owns the upstream Bedrock stream.

A reader greenlet pulls events from boto3 and encodes them as they arrive; the WSGI server
iterates this object and writes whatever has piled up as one write, so a busy worker pays
one write for a backlog instead of one per event, and an event is never split. During a
silence the dialect's keep-alive is written, if it has one. When the client goes away (its
socket reports EOF, or a write fails and the server calls ``close()``), the upstream stream
is closed at once so Bedrock stops generating.
"""

import socket

import gevent
from gevent.event import Event
from gevent.socket import wait_read


class Relay:
    def __init__(self, events, encode, keepalive=None, interval=None, client=None):
        self._events = events
        self._encode = encode
        self._keepalive = keepalive
        self._interval = interval if keepalive else None
        self._client = client
        self._pending = []
        self._ready = Event()
        self._finished = False
        self._client_gone = False
        self._reader = None
        self._watcher = None
        self._output = self._write_loop()

    def __iter__(self):
        return self._output

    def close(self):
        """Stop relaying and close the upstream stream (the server calls this when done)."""
        self._output.close()
        self._stop()

    def _write_loop(self):
        self._reader = gevent.spawn(self._read)
        if self._client is not None:
            self._watcher = gevent.spawn(self._watch)
        try:
            while not self._client_gone:
                if self._pending:
                    chunk = b"".join(self._pending)
                    self._pending.clear()
                    yield chunk
                elif self._finished:
                    return
                else:
                    self._ready.clear()
                    if not self._ready.wait(self._interval):
                        yield self._keepalive
        finally:
            self._stop()

    def _read(self):
        try:
            for event in self._events:
                data = self._encode(event)
                if data:
                    self._pending.append(data)
                    self._ready.set()
        except Exception as error:  # after the first byte, failures travel in-band
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
        self._client_gone = True
        self._stop()
        self._ready.set()

    def _stop(self):
        if self._reader is None:
            self._events.close()
        else:
            self._reader.kill()
        if self._watcher is not None and self._watcher is not gevent.getcurrent():
            self._watcher.kill()
