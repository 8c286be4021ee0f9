"""POST /api/models: the text and image models offered in a region."""

from botocore.exceptions import BotoCoreError, ClientError
from flask import Blueprint, jsonify

from .. import telemetry
from ..schemas import RegionRequest
from ..services.catalogue import catalogue
from .common import body, require_key, state

bp = Blueprint("models", __name__)
_schema = RegionRequest()


@bp.post("/api/models")
def list_models():
    """List the streaming text models and the image models callable in a region."""
    require_key()
    region = body(_schema)["region"]
    app = state()
    try:
        models = app.models_cache.get(region, lambda: catalogue(app.clients.get("bedrock", region), region))
    except (ClientError, BotoCoreError) as error:
        telemetry.upstream_error(error)
        return {"error": str(error)}
    return jsonify(models)
