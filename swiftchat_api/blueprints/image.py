"""POST /api/image: generate or edit an image."""

from flask import Blueprint
from flask import request as flask_request

from ..schemas import ImageRequest
from ..services import images
from .common import body, require_key, state

bp = Blueprint("image", __name__)
_schema = ImageRequest()


@bp.post("/api/image")
def generate_image():
    """Generate an image with a Titan, Nova Canvas or Stability model."""
    require_key()
    request = body(_schema)
    flask_request.environ["swiftchat.model"] = request["modelId"]
    app = state()
    helper = images.helper_model(request["region"], app.config.image_helper_model_id)
    return images.generate(app.clients.get("bedrock-runtime", request["region"]), helper, request)
