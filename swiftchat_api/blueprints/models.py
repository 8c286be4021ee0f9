"""POST /api/models: the text and image models offered in a region."""

from botocore.exceptions import BotoCoreError, ClientError
from flask import Blueprint, jsonify

from .. import telemetry
from ..exceptions import describe
from ..schemas import RegionRequest
from ..services.catalogue import catalogue
from .common import body, require_key, resources

bp = Blueprint("models", __name__)
_schema = RegionRequest()


@bp.post("/api/models")
def list_models():
    """List the streaming text models and the image models callable in a region."""
    require_key()
    region = body(_schema)["region"]
    shared = resources()
    try:
        models = shared.models_cache.get(region, lambda: catalogue(shared.clients.get("bedrock", region), region))
    except (ClientError, BotoCoreError) as error:
        telemetry.upstream_error(error)
        return {"error": describe(error)}
    return jsonify(models)
