"""POST /api/image: generate or edit an image."""

from flask import Blueprint, request

from ..schemas import ImageRequest
from ..services import images
from .common import body, require_key, state

bp = Blueprint("image", __name__)
_schema = ImageRequest()


@bp.post("/api/image")
def generate_image():
    """Generate an image with a Titan, Nova Canvas or Stability model."""
    require_key()
    wanted = body(_schema)
    request.environ["swiftchat.model"] = wanted["modelId"]
    app = state()
    helper = images.helper_model(wanted["region"], app.config.image_helper_model_id)
    return images.generate(app.clients.get("bedrock-runtime", wanted["region"]), helper, wanted)
