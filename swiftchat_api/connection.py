"""The one way an answer reaches a client: every body write, whole answer or stream, goes through a Connection.

The worker makes one for each response (``worker.SwiftChatResponse``) and hands it to the app
in the WSGI environ under ``CONNECTION``; a view passes it on to whatever streams (the relay).
It gives every answer the same guarantees:

- **A client that takes nothing is let go.** A write the client takes none of for
  ``timeout`` seconds ends the answer: the socket is shut down and the write fails as a
  broken pipe, so gunicorn drops the connection and the answer's memory is freed. No timer
  is armed unless a write has to wait (gevent's socket time-out applies only to a wait).
- **A bounded send buffer**: the kernel holds at most ``buffer_bytes`` (doubled by Linux) for
  a client, whatever it is sent.
- **Whole events on a slow link** (``whole_events()``, for streams the apps parse one read at a
  time). The kernel cuts a write when earlier bytes are still queued (it appends the new bytes
  to an unsent segment) or the client's window is small: the app then reads half an event. So
  the connection never hands the kernel a write while earlier bytes are still unsent (Linux
  ``SIOCOUTQNSD``), waiting for the socket to report them sent (``TCP_NOTSENT_LOWAT`` of 1
  byte makes the socket writable exactly then). A write of at most one segment then travels
  alone, and a read ends where a write ended.
- **An error gets its own read** (``settle()``): before an in-band error, wait until the
  client acknowledged every earlier byte, plus ``ERROR_PAUSE``, so the app's next read holds
  the error alone instead of the error glued to the events before it.
"""

import contextlib
import errno
import fcntl
import socket
import struct
import time

import gevent
from gevent.socket import wait_write

CONNECTION = "swiftchat.connection"  # the environ key the worker puts a response's Connection under

_SIOCOUTQ = 0x5411  # Linux: bytes the peer has not acknowledged yet
_SIOCOUTQNSD = 0x894B  # Linux: bytes not sent yet
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
_COUNT = struct.Struct("i")
_RECHECK = 1.0  # seconds: how often a wait for sent bytes looks again, should a wake-up be missed
ERROR_PAUSE = 0.15  # seconds after the client acknowledged everything, before an in-band error
SPLIT_OVER = 64 * 1024  # a chunked write larger than this is sent frame, data, frame: never copied


def _queued(fd, request):
    """Bytes the kernel still holds for this socket (``request``: unsent, or unacknowledged); 0 if unknown."""
    try:
        return _COUNT.unpack(fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class Connection:
    """The sending side of one client connection, for one response."""

    __slots__ = ("_sock", "_fd", "timeout", "_buffer_bytes", "_armed", "_whole_events", "_write", "continue_due")

    def __init__(self, sock, timeout, buffer_bytes=None, write=None):
        self._sock = sock
        self._write = write  # a weak reference to the response's write (which frames a body piece)
        self._fd = sock.fileno()
        self.timeout = timeout
        self._buffer_bytes = buffer_bytes
        self._armed = False
        self._whole_events = False
        self.continue_due = False  # the client asked for 100 Continue before it sends its body

    def arm(self):
        """As the answer starts (its headers): bound the send buffer, and every wait of a write.

        Not before: the request's reads have bounds of their own.
        """
        if self._armed:
            return
        self._armed = True
        with contextlib.suppress(OSError):
            if self._buffer_bytes:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._buffer_bytes)
            self._sock.settimeout(self.timeout)

    @contextlib.contextmanager
    def bounded(self):
        """Writes inside fail as a broken pipe once the client has taken nothing of one for ``timeout``."""
        try:
            yield
        except TimeoutError:
            raise self._let_go_after_timeout() from None

    @property
    def socket(self):
        """The client's socket (watched for a hang-up by the relay)."""
        return self._sock

    def send_continue(self):
        """Tell a client that waits for it (``Expect: 100-continue``) to send its body: once, when the app reads it.

        gunicorn says it before the app runs, that is before the key is checked: anyone could make
        the server ask for a body it would refuse.
        """
        if self.continue_due:
            self.continue_due = False
            self._sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def whole_events(self):
        """From now on, write only once every earlier byte has been sent (see the module's docstring)."""
        if not self._whole_events:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, 1)
            self._whole_events = True

    def write(self, data):
        """Write ``data`` as a piece of the response's body, from any greenlet (a keep-alive)."""
        write = self._write() if self._write is not None else None
        if write is None:
            raise BrokenPipeError(errno.EPIPE, "the response is over")
        write(data)

    def _let_go_after_timeout(self):
        """The client took nothing for ``timeout``: let it go; the error the failed write raises."""
        self.let_go()
        return BrokenPipeError(errno.EPIPE, f"the client took nothing for {self.timeout:g} s")

    def send(self, data):
        """Put ``data`` on the wire, whole; BrokenPipeError once the client has taken none of it for ``timeout``."""
        # Once per relayed event: no context manager, no call that is not needed.
        if not self._armed:
            self.arm()
        try:
            if self._whole_events and _queued(self._fd, _SIOCOUTQNSD):
                self._wait_sent()
            # send, not sendall: gevent's sendall asks the kernel for the buffer size on every call.
            sock = self._sock
            sent = sock.send(data)
            while sent < len(data):  # the buffer was full: gevent waited inside send, within the time-out
                sent += sock.send(memoryview(data)[sent:])
        except TimeoutError:
            raise self._let_go_after_timeout() from None

    def send_chunk(self, data):
        """``data`` as one HTTP/1.1 chunk; a large one is sent head, data, tail, never copied."""
        if len(data) > SPLIT_OVER:
            self.send(b"%X\r\n" % len(data))
            self.send(data)
            self.send(b"\r\n")
        else:
            self.send(b"%X\r\n%b\r\n" % (len(data), data))

    def _wait_sent(self):
        deadline = time.monotonic() + self.timeout
        while _queued(self._fd, _SIOCOUTQNSD):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                wait_write(self._fd, timeout=min(left, _RECHECK), timeout_exc=TimeoutError)

    def settle(self, gone=lambda: False):
        """Wait until the client acknowledged every byte written so far, then ``ERROR_PAUSE``.

        A client that acknowledges nothing for ``timeout`` is let go (the write after fails at
        once); ``gone()`` ends the wait early, for a client that hung up meanwhile.
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while _queued(self._fd, _SIOCOUTQ) and not gone():
            if time.monotonic() >= deadline:
                self.let_go()
                return
            gevent.sleep(delay)
            delay = min(delay * 2, 0.1)
        if not gone():
            gevent.sleep(ERROR_PAUSE)

    def let_go(self):
        """Drop the client: a write or read blocked on its socket fails at once."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def done(self):
        """The response is over: the next request on the connection starts from the socket's defaults."""
        with contextlib.suppress(OSError):
            if self._whole_events:  # a whole answer next is best written as fast as the kernel takes it
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, 0)
            if self._armed:
                self._sock.settimeout(None)
