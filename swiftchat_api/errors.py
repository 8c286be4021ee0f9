"""Every error the API can answer with, and the one place that renders them."""

import logging

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from flask import jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from . import telemetry

log = logging.getLogger(__name__)

# Bedrock's error codes → the HTTP status a refused chat call is answered with.
BEDROCK_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "ServiceUnavailableException": 503,
    "ModelNotReadyException": 503,
}


class ApiError(Exception):
    """An error answered as ``{"detail": ...}`` with an HTTP status."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class StreamRefused(Exception):
    """Bedrock refused a chat call before its stream began; answered as text/plain ``Error: ...``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def refused(error):
    """Turn a botocore error raised before any event into StreamRefused with the fitting status."""
    telemetry.upstream_error(error)
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code") or ""
        # In-stream exceptions are spelt throttlingException, refusals ThrottlingException.
        status = BEDROCK_STATUS.get(code[:1].upper() + code[1:], 502)
    else:
        status = 400 if isinstance(error, ParamValidationError) else 502
    return StreamRefused(status, str(error))


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
    """FastAPI-style ``detail`` items from a marshmallow error (never the offending input)."""
    return list(_validation_items(error.messages, ["body"]))


def register(app):
    """Install the handlers that turn every raised error into an answer the apps can show."""

    @app.errorhandler(ApiError)
    def api_error(error):
        return jsonify(detail=error.detail), error.status

    @app.errorhandler(StreamRefused)
    def stream_refused(error):
        return f"Error: {error}", error.status, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(ValidationError)
    def invalid_body(error):
        return jsonify(detail=validation_detail(error)), 422

    @app.errorhandler(HTTPException)
    def http_error(error):
        return jsonify(detail=error.name), error.code

    @app.errorhandler(ClientError)
    @app.errorhandler(BotoCoreError)
    def upstream_error(error):
        log.warning("upstream error: %s", error)
        return jsonify(detail=f"Error: {error}"), 502

    @app.errorhandler(Exception)
    def unexpected(error):
        log.exception("unhandled error")
        return jsonify(detail="Internal Server Error"), 500
