"""The one place that renders every raised error: one renderer per route family.

- the apps' JSON routes: ``{"detail": ...}`` with the error's status; the apps' ``200 {"error"}``
  for a request they are told of that way (Unfulfilled);
- the apps' chat routes (/api/converse*): what a chat screen shows, text/plain ``Error: ...``,
  for a refused stream, a key over its limit or content nothing can use; the rest as JSON;
- Use Proxy (/api/gpt, /api/openai): a relay refused before the provider's answer is told as an
  unreachable provider is; the rest as JSON;
- the OpenAI API (/v1, routed or not): OpenAI's ``{"error": {...}}``.
"""

import logging
import traceback
from itertools import islice

from botocore.exceptions import BotoCoreError, ClientError
from flask import jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .exceptions import ApiError, LimitExceeded, StreamRefused, Unfulfilled, UpstreamError, upstream
from .oai import errors as openai
from .schemas import UnusableContent
from .services.proxy import failure_body
from .wire import STREAM_HEADERS

log = logging.getLogger(__name__)
MAX_DETAIL_ITEMS = 20  # a body with thousands of faults gets a short answer all the same
_TEXT = "text/plain; charset=utf-8"


def _validation_items(messages, loc):
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _validation_items(value, loc if key == "_schema" else [*loc, key])
    else:
        for message in messages:
            if isinstance(message, (dict, list)):
                yield from _validation_items(message, loc)
            else:
                kind = "missing" if message == "Missing data for required field." else "value_error"
                yield {"loc": loc, "msg": message, "type": kind}


def validation_detail(error):
    """FastAPI-style ``detail`` items from a marshmallow error (never the offending input), at most 20."""
    items = list(islice(_validation_items(error.messages, ["body"]), MAX_DETAIL_ITEMS + 1))
    if len(items) > MAX_DETAIL_ITEMS:
        items[MAX_DETAIL_ITEMS:] = [
            {"loc": ["body"], "msg": "More problems were found; fix these first.", "type": "value_error"}
        ]
    return items


def register(app):
    """Answer every error a request raises in the shape its route family's clients understand."""
    app.register_error_handler(Exception, _render)


def _render(error):
    if isinstance(error, (ClientError, BotoCoreError)):  # one that escaped its service, told as every other
        error = upstream(error)
    family = _FAMILIES.get(request.blueprint)
    if family is None:  # a path no route matched has no blueprint, but /v1 still answers as OpenAI
        family = _openai if (request.path + "/").startswith("/v1/") else _swiftchat
    return family(error)


def _unexpected(error):
    # The exception's own message may quote what the caller sent: log its type and where it happened.
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled %s", type(error).__name__, extra={"fields": {"traceback": frames}})


def _headers(error):
    """An HTTPException's headers but its Content-Type (it keeps Allow on a 405)."""
    return {name: value for name, value in error.get_headers() if name.lower() != "content-type"}


def _swiftchat(error):
    """The apps' JSON routes: ``{"detail": ...}``, a list of problems for a body that does not fit."""
    if isinstance(error, Unfulfilled):
        return jsonify(error=error.detail)  # 200: every app generation reads the failure from the body
    if isinstance(error, UpstreamError):
        log.warning("upstream error: %s", error.detail)
        return jsonify(detail=f"Error: {error.detail}"), 502
    if isinstance(error, ApiError):
        return jsonify(detail=error.detail), error.status, error.headers
    if isinstance(error, ValidationError):
        return jsonify(detail=validation_detail(error)), 422
    if isinstance(error, HTTPException):
        return jsonify(detail=error.name), error.code, _headers(error)
    _unexpected(error)
    return jsonify(detail="Internal Server Error"), 500


def _chat_text(error):
    """The apps' chat routes: ``Error: ...`` as text for what the chat screen must show, else as JSON.

    Every app generation shows such text in the chat, where it prints a JSON answer raw.
    """
    if isinstance(error, UnusableContent):  # a body the apps can send but nothing can use
        return f"Error: {error.text}", error.status, {"Content-Type": _TEXT}
    if isinstance(error, (StreamRefused, LimitExceeded)):
        return f"Error: {error.detail}", error.status, {**error.headers, "Content-Type": _TEXT}
    return _swiftchat(error)


def _provider(error):
    """Use Proxy: a provider that answered with a redirect or an unusable status, told as an unreachable one is."""
    if isinstance(error, StreamRefused):
        headers = {**STREAM_HEADERS, **error.headers, "Content-Type": "text/event-stream"}
        return failure_body(error.detail), error.status, headers
    return _swiftchat(error)


def _openai(error):
    """The OpenAI API: every error in OpenAI's shape, with the status its SDKs turn into their exceptions."""
    if isinstance(error, ValidationError):
        error = openai.invalid_body(error)
    elif isinstance(error, HTTPException):
        error = ApiError(error.code, error.name, _headers(error))
    elif not isinstance(error, ApiError):
        _unexpected(error)
        error = ApiError(500, "The server had an error while processing your request.")
    body, status, headers = openai.answer(error)
    return jsonify(body), status, headers


_FAMILIES = {"converse": _chat_text, "proxy": _provider, "v1": _openai}
