"""POST /api/converse, /api/converse/v2 and /api/converse/v3: chat, streamed as Bedrock answers."""

from flask import Blueprint

from .. import wire
from ..schemas import ConverseRequest
from ..services import converse
from .common import body, require_key, resources
from .streaming import stream_response

bp = Blueprint("converse", __name__)
_schema = ConverseRequest()


def _stream(dialect):
    require_key()
    chat = body(_schema)
    client = resources().clients.get("bedrock-runtime", chat["region"], streaming=True)
    args = converse.command(chat, resources().config.prompt_cache)
    return stream_response(client, args, wire.DIALECTS[dialect])


@bp.post("/api/converse")
def converse_v1():
    """Stream the reply as plain text, then the token usage."""
    return _stream("v1")


@bp.post("/api/converse/v2")
def converse_v2():
    """Stream every Bedrock event as JSON, back to back."""
    return _stream("v2")


@bp.post("/api/converse/v3")
def converse_v3():
    """Stream every Bedrock event as JSON followed by a blank line, with keep-alives."""
    return _stream("v3")
