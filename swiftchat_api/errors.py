"""The one place that renders every error as an answer the apps can show."""

import logging
import traceback
from itertools import islice

from botocore.exceptions import BotoCoreError, ClientError
from flask import jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .exceptions import ApiError, StreamRefused, describe

log = logging.getLogger(__name__)
MAX_DETAIL_ITEMS = 20  # a body with thousands of faults gets a short answer all the same


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
    """Install the handlers that turn every raised error into an answer the apps can show."""

    @app.errorhandler(ApiError)
    def api_error(error):
        return jsonify(detail=error.detail), error.status, error.headers

    @app.errorhandler(StreamRefused)
    def stream_refused(error):
        return f"Error: {error}", error.status, {**error.headers, "Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(ValidationError)
    def invalid_body(error):
        return jsonify(detail=validation_detail(error)), 422

    @app.errorhandler(HTTPException)
    def http_error(error):
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return jsonify(detail=error.name), error.code, headers  # keeps Allow on a 405

    @app.errorhandler(ClientError)
    @app.errorhandler(BotoCoreError)
    def upstream_error(error):
        message = describe(error)
        log.warning("upstream error: %s", message)
        return jsonify(detail=f"Error: {message}"), 502

    @app.errorhandler(Exception)
    def unexpected(error):
        # The exception's own message may quote what the caller sent: log its type and where it happened.
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error("unhandled %s", type(error).__name__, extra={"fields": {"traceback": frames}})
        return jsonify(detail="Internal Server Error"), 500
