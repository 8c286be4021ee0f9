"""WSGI middleware that gives every request an ID, a JSON access line and request metrics.

It wraps the whole app so that a streamed response is logged when its last byte has gone,
with the tokens Bedrock reported, not when the view returned.
"""

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from . import charges, telemetry

access = logging.getLogger("swiftchat_api.access")
log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "<unmatched>"
FACTS = "swiftchat.facts"  # the environ key of a request's RequestFacts
# Any other method string is counted as "other", so junk methods cannot grow the metrics.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


@dataclass(slots=True)
class RequestFacts:
    """What one request did, filled in as it goes; logged and counted when its last byte has left.

    ``usage`` is Bedrock's (``inputTokens``, ``outputTokens``), or a Use Proxy provider's, or what
    a stream that ended without it is charged (see charges.py: ``estimated`` names the figures
    that are estimates; ``input_estimate`` is the request's, set when a Bedrock stream is opened,
    and ``count_input(then)`` starts Bedrock's count of its input, services/counting.py, calling
    ``then(tokens or None)``, and returns False when it cannot); ``key_name`` names the key that
    was presented (never the key), ``reservation`` the tokens its admission holds under a budget.
    ``on_end(facts)``, when set, runs once the response is over: how an admitted request's usage
    reaches the key store, tokens included.
    """

    request_id: str
    started: float
    route: str = UNMATCHED
    model: str | None = None
    key_name: str | None = None
    usage: dict | None = None
    disconnected: bool = False
    bytes_sent: int | None = None  # a stream's body bytes (other answers have a Content-Length)
    text_sent: int = 0  # the UTF-8 bytes of the model's text, reasoning and tool input a Bedrock stream relayed
    on_end: Callable | None = None
    input_estimate: int | None = None
    count_input: Callable | None = None
    accepted: bool = False  # Bedrock accepted the stream's call: it bills the input, however the stream ends
    estimated: tuple = ()
    reservation: str | None = None
    admit_later: Callable | None = None  # a chat's admission, once its body says what it may cost


_CACHE_FIGURES = (("cacheReadInputTokens", "cache_read_tokens"), ("cacheWriteInputTokens", "cache_write_tokens"))


class Observer:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.monotonic()
        given = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        facts = environ[FACTS] = RequestFacts(request_id, started)
        response = {}

        def start(status, headers, exc_info=None):
            response["status"] = int(status.split(" ", 1)[0])
            response["started"] = time.monotonic()
            response["length"] = next((v for k, v in headers if k.lower() == "content-length"), None)
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        return _Observed(body, lambda: _finish(environ, facts, response))


class _Observed:
    """The response body, passed through as it is (no generator between the server and a stream's
    events: one per event would cost CPU and a stack per open stream); reports once it is closed."""

    def __init__(self, body, finish):
        self._body = body
        self._finish = finish

    def __iter__(self):
        return iter(self._body)

    def close(self):
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            self._finish()


def _finish(environ, facts, response):
    status = response.get("status", 500)
    ended = time.monotonic()
    method = environ.get("REQUEST_METHOD", "")
    telemetry.REQUESTS.labels(facts.route, method if method in _METHODS else "other", str(status)).inc()
    telemetry.REQUEST_SECONDS.labels(facts.route).observe(response.get("started", ended) - facts.started)
    counter, facts.count_input = facts.count_input, None  # it holds the request's whole input
    # A cut stream's input counted by Bedrock, in a greenlet of its own: the connection's next
    # request does not wait on it. The request is logged and recorded once the count is in.
    counting = facts.accepted and counter is not None and not charges.reported(facts.usage)
    if counting and counter(lambda counted: _settle(environ, facts, response, status, ended, counted)):
        return
    _settle(environ, facts, response, status, ended)


def _settle(environ, facts, response, status, ended, input_counted=None):
    """Charge a finished request (``input_counted``: Bedrock's count of a cut stream's input), log it, record it."""
    method = environ.get("REQUEST_METHOD", "")
    if facts.accepted:  # a call Bedrock accepted is billed however it ended; one it refused is not
        facts.usage, facts.estimated = charges.charged(
            facts.usage, facts.input_estimate, facts.text_sent, input_counted
        )
    usage = facts.usage or {}
    fields = {
        "request_id": facts.request_id,
        "remote": environ.get("REMOTE_ADDR"),
        "method": method if method in _METHODS else "other",
        "route": facts.route,
        "status": status,
        "duration_ms": round((ended - facts.started) * 1000, 1),
        "bytes": facts.bytes_sent if facts.bytes_sent is not None else _number(response.get("length")),
        "model": facts.model[:128] if facts.model else None,  # a caller's text until Bedrock took it
        "key": facts.key_name,
        "input_tokens": usage.get("inputTokens"),
        "output_tokens": usage.get("outputTokens"),
    }
    for figure, field in _CACHE_FIGURES:
        if usage.get(figure):  # Bedrock's prompt cache, billed apart from input_tokens
            fields[field] = usage[figure]
    if facts.estimated:  # the stream ended without Bedrock's usage: these figures are our estimates
        fields["tokens_estimated"] = list(facts.estimated)
    if facts.disconnected:
        fields["client_disconnected"] = True
    access.info("request", extra={"fields": fields})
    if facts.on_end is not None:
        try:
            facts.on_end(facts)
        except Exception as error:  # accounting must never break the server's handling of the connection
            log.error("accounting for a finished request failed: %s", type(error).__name__)


def _number(text):
    return int(text) if text and text.isdigit() else None
