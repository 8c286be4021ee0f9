"""POST /api/upgrade: tell an app whether a newer release exists (and re-read the API key)."""

from flask import Blueprint

from ..schemas import UpgradeRequest
from ..services import releases
from .common import body, require_key, resources

bp = Blueprint("upgrade", __name__)
_schema = UpgradeRequest()


@bp.post("/api/upgrade")
def check_upgrade():
    """Compare the app's version with the newest release; refresh the API key from its source."""
    require_key(refresh=True)
    app_info = body(_schema)
    app = resources()
    config = app.config
    latest = app.releases_cache.get(
        "latest", lambda: releases.latest_tag(app.http, config.upgrade_tags_url, config.upgrade_timeout_seconds)
    )
    return releases.upgrade_answer(latest, app_info["os"], app_info["version"], config.upgrade_download_url)
