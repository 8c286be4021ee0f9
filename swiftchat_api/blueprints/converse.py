"""POST /api/converse, /api/converse/v2 and /api/converse/v3: chat, streamed as Bedrock answers."""

from flask import Blueprint, Response, request

from .. import telemetry, wire
from ..relay import Relay
from ..schemas import ConverseRequest
from ..services import converse
from .common import body, require_key, state

bp = Blueprint("converse", __name__)
_schema = ConverseRequest()
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _stream(dialect):
    require_key()
    chat = body(_schema)
    app = state()
    environ = request.environ
    environ["swiftchat.model"] = chat["modelId"]
    client = app.clients.get("bedrock-runtime", chat["region"], streaming=True)
    events = converse.open_stream(client, converse.command(chat), app.config.first_byte_timeout)
    encode, keepalive = wire.DIALECTS[dialect]
    route = environ["swiftchat.route"]

    def finished(relay):
        telemetry.OPEN_STREAMS.dec()
        telemetry.stream_finished(route, chat["modelId"], environ["swiftchat.started"], relay)
        environ["swiftchat.usage"] = relay.usage
        environ["swiftchat.disconnected"] = relay.client_gone

    relay = Relay(
        events,
        encode,
        app.ticker,
        idle_timeout=app.config.bedrock_read_timeout,
        keepalive=keepalive,
        interval=app.config.keepalive_seconds,
        client=environ.get("gunicorn.socket"),
        on_done=finished,
    )
    telemetry.OPEN_STREAMS.inc()
    return Response(relay, content_type="text/event-stream", headers=STREAM_HEADERS, direct_passthrough=True)


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
