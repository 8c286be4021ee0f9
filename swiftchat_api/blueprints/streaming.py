"""The one way a view answers with a Bedrock stream, whatever its wire dialect."""

import socket

from flask import Response, request

from .. import telemetry
from ..exceptions import refused
from ..relay import Relay
from ..services import converse
from .common import facts, resources

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def stream_response(client, args, dialect, content_type="text/event-stream"):
    """Open a ConverseStream call and answer with its events in ``dialect``.

    Refusals before the first event raise StreamRefused (rendered with a real status by the
    error handlers); the response headers go out once Bedrock's first event arrives, or after
    the configured window, whichever is first; after that, failures travel in-band.
    """
    app = resources()
    record = facts()
    record.model = args["modelId"]  # for the access log; usage names it only once Bedrock answered with usage
    stream = converse.open_stream(client, args, app.config.first_byte_timeout)
    client_socket = request.environ.get("gunicorn.socket")
    if client_socket is not None:
        # A client that does not read blocks the relay's write and so its read from Bedrock; this
        # bounds what the kernel holds for that client meanwhile (it would take megabytes).
        client_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, app.config.stream_buffer_bytes)
    relay = Relay(stream, dialect, app.ticker, app.relay_limits, environ=request.environ)
    relay.start()
    try:
        relay.wait_for_first_event(app.config.first_event_window)
    except Exception as error:
        raise refused(error) from None

    def finished(relay):
        telemetry.OPEN_STREAMS.dec()
        telemetry.stream_finished(record.route, record.model, record.started, relay)
        # Recorded against the key once the response is over (see common.require_key), in the
        # background: the store never holds a stream or the connection's next request.
        record.usage = relay.usage
        record.disconnected = relay.client_gone
        record.bytes_sent = relay.bytes_sent

    relay.on_done = finished
    telemetry.OPEN_STREAMS.inc()
    return Response(relay, content_type=content_type, headers=STREAM_HEADERS, direct_passthrough=True)
