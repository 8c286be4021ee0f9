"""Operator routes: health, readiness, metrics, the OpenAPI document and the docs page."""

import logging
import os
import time

from flask import Blueprint, Response, jsonify, request
from flask_swagger_ui import get_swaggerui_blueprint

from .. import openapi, telemetry
from ..auth import StaticKey, authenticate
from ..exceptions import ApiError
from ..store import StoreUnavailable
from .common import require_key, resources

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)
docs = get_swaggerui_blueprint("/docs", "/openapi.json", config={"app_name": "swiftchat-api"}, blueprint_name="docs")


@bp.get("/healthz")
def healthz():
    """Say the process is alive (no auth, no upstream call)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Say whether requests can be served: the API key source is readable and the key store writable."""
    problem = _unready(resources())
    if problem:
        return {"status": "unavailable", "detail": problem}, 503
    return {"status": "ready"}


def _unready(shared):
    """Why requests cannot be served now, or None."""
    try:
        shared.keys.get()
    except ApiError as error:
        return error.detail
    try:
        shared.store.probe()
    except StoreUnavailable as error:
        _store_not_ready(shared.store, error)
        return f"{error} The server's user must be able to open and write SWIFTCHAT_STORE (see the log)."
    return None


_STORE_LOG_INTERVAL = 60.0  # seconds: a load balancer asks every few seconds
_store_logged = {}


def _store_not_ready(store, error):
    """Log, at most once a minute for the same reason, which store failed and as whom."""
    reason = str(error)
    now = time.monotonic()
    if now - _store_logged.get(reason, float("-inf")) < _STORE_LOG_INTERVAL:
        return
    _store_logged[reason] = now
    cause = f" ({error.__cause__})" if error.__cause__ is not None else ""
    log.warning(
        "/readyz: not ready: the key store %s cannot be opened or written by uid %d: %s%s",
        store.describe(),
        os.getuid(),
        reason,
        cause,
    )


@bp.get("/metrics")
def metrics():
    """Expose Prometheus metrics, summed over workers: all of them for METRICS_TOKEN, the server-wide ones
    for the shared API key (the per-key series name people)."""
    body, content_type = telemetry.exposition(per_key=_metrics_token_presented())
    return Response(body, content_type=content_type)


def _metrics_token_presented():
    """True for METRICS_TOKEN; False for the shared key; ApiError for anything else."""
    token = resources().config.metrics_token
    if token:
        try:
            authenticate(StaticKey(token), request.headers)
            return True
        except ApiError:
            pass
    require_key()
    return False


@bp.get("/openapi.json")
def openapi_document():
    """Serve the OpenAPI 3 document of this API."""
    return jsonify(openapi.document())
