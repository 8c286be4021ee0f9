"""POST /api/image: generate or edit an image."""

from flask import Blueprint

from ..schemas import ImageRequest
from ..services import images
from .common import body, facts, metered, require_key, resources

bp = Blueprint("image", __name__)
_schema = ImageRequest()


@bp.post("/api/image")
def generate_image():
    """Generate an image with a Titan, Nova Canvas or Stability model (a readable ``error`` if it cannot)."""
    require_key()
    wanted = body(_schema)
    facts().model = wanted["modelId"]
    shared = resources()
    helper = images.helper_model(wanted["region"], shared.config.image_helper_model_id)
    return images.generate(metered(shared.clients.get("bedrock-runtime", wanted["region"])), helper, wanted)
