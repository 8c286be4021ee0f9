"""Our gunicorn worker: gunicorn's gevent worker with changes the apps need, for its cost and for its bounds.

1. The apps (2.3+) name the "Use Proxy" target in a ``request_url`` header. gunicorn drops
   every header whose name holds an underscore (its ``header_map`` setting), because
   ``X_Forwarded_For`` and ``X-Forwarded-For`` would land in the same WSGI variable and one
   could pose as the other. Exactly that one name is let through here; so that it can never
   be mistaken for ``Request-Url`` (the same variable), a request carrying both spellings, or
   either twice, is refused. Every other underscore header is still dropped.
2. gunicorn answers requests it cannot parse itself, in HTML. Here those answers are the
   API's ``{"detail": ...}`` with the same statuses, and never quote what was sent.
3. Each open stream holds an upstream HTTP response, and http.client reads it through a buffer
   of ``io.DEFAULT_BUFFER_SIZE`` (8 KiB), a tenth of what a stream costs a worker. Bedrock's
   events are a few hundred bytes and larger reads bypass the buffer, so the worker sets it
   to 1 KiB. The setting is read only by Python code that buffers a socket (``makefile``);
   in this process that is the upstream HTTP responses.
4. Every open stream is an upstream connection of its own, and gevent resolves each new
   connection's host name on a thread. Concurrent lookups of the same name share one
   (``resolver.SharedLookups``): a burst of a thousand streams makes a handful of lookups.
5. After a burst, the memory it freed stays with the C library's malloc; the worker gives it
   back once requests pause (``heap``).
6. Everything loaded before the first request is frozen out of the cycle collector's reach.
7. gevent's server accepts up to 100 waiting connections per turn of the event loop, and gunicorn
   cuts that to 1 when there are several workers (so that one worker does not take them all).
   Here it is ``ACCEPT_PER_TURN`` either way. Taken 100 at a time, a burst of streams is started
   all together, and the heap keeps the peak of their transient memory for good; taken 1 at a
   time, a worker that is busy relaying takes one new connection per turn and new users wait
   seconds for their first byte. The figures are in the README's performance section.
8. Every body write, whole answer or stream event, goes through the response's
   ``connection.Connection`` (handed to the app in the environ): the client time-out, the bounded
   send buffer and whole writes on a slow link hold for every answer alike. It writes with
   ``send``, not gevent's ``sendall``, which asks the kernel for the socket's send buffer size on
   every call: about 5 of the 47 µs of worker CPU a relayed event cost.
10. gunicorn waits for a request's line and headers as long as for the next request on a kept-alive
   connection (``keepalive``, 75 s); here, once a request's first bytes are in, its headers must
   be complete within ``SWIFTCHAT_HEADER_TIMEOUT`` (``SwiftChatRequest``).
9. With a ``logconfig_dict`` (ours), gunicorn counts its access log as on and formats every
   request's line (its headers copied, every atom formatted) for a logger that drops it unless
   ``ACCESS_LOG=1``: 2.8% of a worker's samples (py-spy). The worker tells gunicorn the truth
   (statsd's request metrics, if configured, are still sent).
11. Each open stream holds two files (its client's socket and its upstream connection), and
   container runtimes start processes with a soft open-files limit of 1,024: the worker raises
   its soft limit to the hard one as it starts, and warns, naming the fix, when even the hard limit
   cannot hold ``worker_connections`` streams (``hostlimits``).

Selected in gunicorn.conf.py as ``worker_class``. HTTP/1 only: HTTP/2 (off by default) keeps
gunicorn's own header policy.
"""

import gc
import io
import json
import logging
import socket
import time
import weakref
from datetime import datetime
from ssl import SSLError

import gevent
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.http import errors, wsgi
from gunicorn.http.message import Request
from gunicorn.http.parser import Parser, RequestParser
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker

from . import heap, hostlimits
from .connection import CONNECTION, Connection
from .resolver import SharedLookups

_gunicorn_create = wsgi.create

ADMITTED = "REQUEST_URL"  # gunicorn spells header names in upper case
_SAME_VARIABLE = frozenset((ADMITTED, ADMITTED.replace("_", "-")))


class HeadersTooSlow(Exception):
    """A request's line and headers did not arrive in full within the header time-out."""


# gunicorn's parse errors → (status, reason, detail). The detail never quotes the request.
_BAD_REQUEST = (400, "Bad Request")
_PARSE_ERRORS = (
    (errors.LimitRequestLine, 414, "URI Too Long", "The request line is too long."),
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "The request headers are too large."),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented", "The request's Transfer-Encoding is not supported."),
    (errors.ExpectationFailed, 417, "Expectation Failed", "The request's Expect header cannot be met."),
    (errors.ForbiddenProxyRequest, 403, "Forbidden", "PROXY protocol is not accepted from this address."),
    (SSLError, 403, "Forbidden", "The TLS connection failed."),
    (HeadersTooSlow, 408, "Request Timeout", "The request headers did not arrive in time."),
    (errors.ConfigurationProblem, 500, "Internal Server Error", "Internal Server Error"),
    (errors.InvalidRequestLine, *_BAD_REQUEST, "The request line is not valid HTTP."),
    (errors.InvalidRequestMethod, *_BAD_REQUEST, "The request method is not valid."),
    (errors.InvalidHTTPVersion, *_BAD_REQUEST, "The HTTP version is not supported."),
    (errors.InvalidHeaderName, *_BAD_REQUEST, "A request header name is not valid."),
    (errors.InvalidHeader, *_BAD_REQUEST, "A request header is not valid, or is repeated."),
    (errors.ObsoleteFolding, *_BAD_REQUEST, "A request header is folded over lines."),
    (errors.InvalidSchemeHeaders, *_BAD_REQUEST, "The request's scheme headers contradict each other."),
    (errors.InvalidChunkSize, *_BAD_REQUEST, "The chunked request body is malformed."),
    (errors.ChunkMissingTerminator, *_BAD_REQUEST, "The chunked request body is malformed."),
    (errors.InvalidChunkExtension, *_BAD_REQUEST, "The chunked request body is malformed."),
    (errors.InvalidProxyLine, *_BAD_REQUEST, "The PROXY protocol line is not valid."),
    (errors.InvalidProxyHeader, *_BAD_REQUEST, "The PROXY protocol header is not valid."),
    (errors.InvalidH2CPreface, *_BAD_REQUEST, "The HTTP/2 preface is not valid."),
)
_APPLICATION_FAULTS = (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName)
UPSTREAM_READ_BUFFER = 1024  # bytes: see 3. above
ACCEPT_PER_TURN = 32  # connections: see 7. above


class Listener(StreamServer):
    """gevent's server as gunicorn's worker makes it, taking ``ACCEPT_PER_TURN`` waiting connections per turn."""

    @property
    def max_accept(self):
        return ACCEPT_PER_TURN

    @max_accept.setter
    def max_accept(self, value):
        pass  # gunicorn's 1 for several workers: see 7. in the module's docstring


class SwiftChatResponse(Response):
    """gunicorn's HTTP/1 response, sending its body through a ``connection.Connection`` (see 8. above)."""

    client_timeout = 60.0  # set from the app's config by the worker
    buffer_bytes = None

    def __init__(self, req, sock, cfg, *args):
        super().__init__(req, sock, cfg, *args)
        # Weakly: the response holds its connection, not the other way round (no cycle to collect).
        self.connection = Connection(sock, self.client_timeout, self.buffer_bytes, weakref.WeakMethod(self.write))

    def _emit_body(self, data):
        if not data:  # a stream's first yield (headers only) on a response that is not chunked
            return
        if self.chunked:
            self.connection.send_chunk(data)
        else:
            self.connection.send(data)

    def send_headers(self):
        if self.headers_sent:
            return
        self.connection.arm()  # the answer's waits are bounded from its first byte
        with self.connection.bounded():
            super().send_headers()

    def close(self):
        try:
            with self.connection.bounded():  # the last chunk too
                super().close()
        finally:
            self.connection.done()


def _create(req, sock, client, server, cfg, response_class=None, response_args=()):
    """gunicorn's wsgi.create, handing the app the response's Connection in the environ.

    ``100 Continue`` is left to the Connection, which says it when the app reads the body (after
    the key is checked), not here, before the app runs.
    """
    expects_continue = req._expected_100_continue
    req._expected_100_continue = False
    response, environ = _gunicorn_create(req, sock, client, server, cfg, response_class, response_args)
    connection = getattr(response, "connection", None)
    if connection is not None:
        environ[CONNECTION] = connection
        connection.continue_due = expects_continue
    elif expects_continue:
        sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")  # as gunicorn would
    return response, environ


class SwiftChatRequest(Request):
    """gunicorn's HTTP/1 request, keeping the ``request_url`` header and bounding how long its headers take.

    gunicorn waits for a request under one time-out, ``keepalive``, from the end of the last
    answer to the end of the next request's headers: a client that sends half a request line
    and stops holds a connection that long (75 s), and a few thousand such sockets fill a
    worker. Here the wait for the request's first bytes keeps gunicorn's time-out, and from
    those bytes on the line and headers must be complete within ``header_timeout``.
    """

    header_timeout = 10.0  # set from the app's config by the worker

    def parse(self, unreader):
        first = unreader.read()  # the request's first bytes (or buffered ones), under the keep-alive wait
        if not first:
            return super().parse(unreader)  # gunicorn tells the end of the connection its own way
        unreader.unread(first)
        with gevent.Timeout(self.header_timeout, HeadersTooSlow):
            return super().parse(unreader)

    def _apply_header_policy(self, name, value, scheme_state, seen, *args, from_trailer=False, **kwargs):
        if name in _SAME_VARIABLE and not from_trailer:
            if ADMITTED in seen:
                raise errors.InvalidHeader(name, req=self)
            seen.add(ADMITTED)
            if name == ADMITTED:
                return name, value
        return super()._apply_header_policy(name, value, scheme_state, seen, *args, from_trailer=from_trailer, **kwargs)


def error_answer(exc):
    """(status, reason, detail) for an exception gunicorn's handle_error receives."""
    if not isinstance(exc, _APPLICATION_FAULTS):
        for kind, status, reason, detail in _PARSE_ERRORS:
            if isinstance(exc, kind):
                return status, reason, detail
    return 500, "Internal Server Error", "Internal Server Error"


# What is left of a body the app did not read (a refused request) is drained before the next
# request on the connection, so the client can read its answer instead of a reset. gunicorn drains
# without a bound, and a client that keeps sending held the worker's CPU: its reads never wait, so
# no other greenlet ran. Here the drain yields as it goes and stops at these bounds (a little over
# the largest accepted body), after which the connection closes.
DRAIN_SECONDS = 5.0
DRAIN_BYTES = 80 * 1024 * 1024


def _bounded_finish_body(parser, deadline=None, max_bytes=None):
    body = getattr(parser.mesg, "body", None)
    if body is None:
        return True
    if getattr(body, "failed", False):
        return False
    drained = 0
    with gevent.Timeout(DRAIN_SECONDS, False):
        while drained <= DRAIN_BYTES:
            data = body.read(65536)
            if not data:
                return True
            drained += len(data)
            gevent.sleep(0)
    return False


class SwiftChatWorker(GeventWorker):
    """gunicorn's gevent worker, admitting ``request_url`` and answering its own errors as JSON."""

    def init_process(self):
        # Only HTTP/1 requests are parsed by RequestParser; in this (forked) worker process they
        # are all ours. Refuse to run if gunicorn changed underneath rather than drop the header.
        if not issubclass(SwiftChatRequest, RequestParser.mesg_class):
            raise RuntimeError("gunicorn's RequestParser no longer parses gunicorn.http.message.Request")
        RequestParser.mesg_class = SwiftChatRequest
        if RequestParser.finish_body is not Parser.finish_body or not hasattr(Parser, "finish_body"):
            raise RuntimeError("gunicorn's RequestParser drains bodies in a way of its own")
        RequestParser.finish_body = _bounded_finish_body
        if getattr(ggevent, "StreamServer", None) not in (StreamServer, Listener):
            raise RuntimeError("gunicorn's gevent worker no longer serves with gevent's StreamServer")
        ggevent.StreamServer = Listener
        if wsgi.Response not in (Response, SwiftChatResponse) or not hasattr(Response, "_emit_body"):
            raise RuntimeError("gunicorn's HTTP/1 responses no longer write their body through Response._emit_body")
        wsgi.Response = SwiftChatResponse
        if wsgi.create not in (_gunicorn_create, _create):
            raise RuntimeError("gunicorn's wsgi.create changed underneath")
        wsgi.create = _create
        io.DEFAULT_BUFFER_SIZE = UPSTREAM_READ_BUFFER
        if hasattr(self.log, "_access_log_enabled") and not self.log.access_log.isEnabledFor(logging.INFO):
            self.log._access_log_enabled = False  # see 9. above (a gunicorn without it builds the line)
        hostlimits.prepare_worker(self.worker_connections, self.log)  # see 11. above
        super().init_process()

    # Bumped when a request's view returns and when the request ends: the moments its memory is
    # freed (a stream's body and call once its first event is out, the stream at its end).
    freed = 0

    def run(self):  # after the fork and gevent's patching, before the first request
        shared = getattr(self.wsgi, "extensions", {}).get("swiftchat")
        if shared is not None:  # the app's own settings bound every connection's waits
            SwiftChatResponse.client_timeout = shared.config.client_timeout
            SwiftChatResponse.buffer_bytes = shared.config.stream_buffer_bytes
            SwiftChatRequest.header_timeout = shared.config.header_timeout
        hub = gevent.get_hub()
        hub.resolver = SharedLookups(hub.resolver)
        # What is loaded by now (the app, botocore's service models) lives as long as the worker;
        # frozen, it is no longer walked by every full collection of the cycle collector. (The one
        # boto3 client built at startup is frozen too: if it is ever evicted, ~0.4 MB stays.)
        gc.collect()
        gc.freeze()
        trim = heap.malloc_trim()
        if trim is not None:
            app = self.wsgi

            def wsgi(environ, start_response):
                try:
                    return app(environ, start_response)
                finally:
                    self.freed += 1

            self.wsgi = wsgi
            gevent.spawn(heap.trim_after_bursts, trim, lambda: self.freed, self.log)
        super().run()

    def handle_request(self, listener_name, req, sock, addr):
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self.freed += 1

    def handle_error(self, req, client, addr, exc):
        """Answer a request gunicorn could not serve with ``{"detail": ...}``, as every other error."""
        started = datetime.now()
        addr = addr or ("", -1)  # a unix socket has no address
        status, reason, detail = error_answer(exc)
        if status == 500:
            self.log.exception("Error handling request")
        else:
            # The exception's text quotes the request; its class says what was wrong.
            self.log.warning("Invalid request from ip=%s: %s", addr[0], type(exc).__name__)
        body = json.dumps({"detail": detail}, separators=(",", ":")).encode()  # as Flask renders it
        if req is None and isinstance(getattr(exc, "req", None), Request):
            req = exc.req  # a header error knows its request; other errors keep a string there
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            response = Response(req, client, self.cfg)
            response.status = f"{status} {reason}"
            response.response_length = len(body)
            self.log.access(response, req, environ, datetime.now() - started)
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
            _linger(client)
        except Exception:
            self.log.debug("Failed to send error message.")


def _linger(client, seconds=1.0, limit=65536):
    """Take (briefly, boundedly) what the client is still sending before the socket is closed.

    Closing with unread input makes the kernel send a reset, which can destroy the answer
    before the client reads it: exactly when a request line or header was too long.
    """
    deadline = time.monotonic() + seconds
    taken = 0
    try:
        client.shutdown(socket.SHUT_WR)
        while taken < limit and (remaining := deadline - time.monotonic()) > 0:
            client.settimeout(remaining)
            data = client.recv(8192)
            if not data:
                return
            taken += len(data)
    except OSError:  # time-outs included: the answer has been written, this is only courtesy
        pass
