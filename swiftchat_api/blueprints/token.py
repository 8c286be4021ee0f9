"""POST /api/token: temporary AWS credentials for newer apps."""

from flask import Blueprint

from ..schemas import RegionRequest
from ..services.credentials import temporary_credentials
from .common import body, require_key, resources

bp = Blueprint("token", __name__)
_schema = RegionRequest()


@bp.post("/api/token")
def issue_token():
    """Assume the configured client role for an hour and hand out its credentials (shared key, or a key made to)."""
    identity = require_key()
    region = body(_schema)["region"]
    app = resources()
    return temporary_credentials(app.clients.get("sts", region), app.config.client_role_arn, identity)
