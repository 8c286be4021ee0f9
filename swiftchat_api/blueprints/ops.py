"""Operator routes: health, readiness, metrics, the OpenAPI document and the docs page."""

from flask import Blueprint, Response, jsonify, request
from flask_swagger_ui import get_swaggerui_blueprint

from .. import openapi, telemetry
from ..auth import StaticKey, authenticate
from ..exceptions import ApiError
from .common import require_key, resources

bp = Blueprint("ops", __name__)
docs = get_swaggerui_blueprint("/docs", "/openapi.json", config={"app_name": "swiftchat-api"}, blueprint_name="docs")


@bp.get("/healthz")
def healthz():
    """Say the process is alive (no auth, no upstream call)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Say whether requests can be authenticated: the API key source is readable."""
    try:
        resources().keys.get()
    except ApiError as error:
        return {"status": "unavailable", "detail": error.detail}, 503
    return {"status": "ready"}


@bp.get("/metrics")
def metrics():
    """Expose Prometheus metrics, summed over workers (API key, or METRICS_TOKEN when set)."""
    token = resources().config.metrics_token
    if token:
        authenticate(StaticKey(token), request.headers)
    else:
        require_key()
    body, content_type = telemetry.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document():
    """Serve the OpenAPI 3 document of this API."""
    return jsonify(openapi.document())
