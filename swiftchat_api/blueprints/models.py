"""POST /api/models: the text and image models offered in a region."""

from flask import Blueprint, jsonify

from ..exceptions import Unfulfilled, UpstreamError
from ..schemas import RegionRequest
from .common import body, region_models, require_key

bp = Blueprint("models", __name__)
_schema = RegionRequest()


@bp.post("/api/models")
def list_models():
    """List the streaming text models and the image models callable in a region."""
    require_key()
    try:
        return jsonify(region_models(body(_schema)["region"]))
    except UpstreamError as error:  # the apps read Bedrock's refusal from a 200 {"error"}
        raise Unfulfilled(error.detail, cause=error.cause) from None
