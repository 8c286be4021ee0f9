"""The one way a view answers with a stream: Bedrock's, in any wire dialect, or a Use Proxy provider's."""

import time
from functools import partial

from flask import Response, request

from .. import charges, telemetry
from ..connection import CONNECTION
from ..exceptions import ClientGone, refused
from ..relay import BedrockCall, Relay
from ..services import converse
from ..wire import STREAM_HEADERS
from .common import admit_chat, facts, resources


def relayed(upstream, dialect, limits, acceptance=None, deadline=None, content_type="text/event-stream"):
    """Open ``upstream`` through a Relay and answer with what it yields, once it started (or at ``deadline``).

    Raises what the upstream raised if it failed before then; afterwards, failures travel in-band.
    """
    record = facts()
    bedrock = upstream.service == "bedrock"

    def finished(relay):
        telemetry.OPEN_STREAMS.dec()
        if relay.answered:  # a refusal is counted as a request, not as a stream
            telemetry.stream_finished(record.route, record.model, record.started, relay, bedrock)
        # Recorded against the key once the response is over (see common.require_key), in the
        # background: the store never holds a stream or the connection's next request.
        record.usage = relay.usage
        if not bedrock:  # a Use Proxy provider's, when its answer reported it (and the model it names)
            record.usage, record.model = upstream.reported_usage()
        record.disconnected = relay.client_gone
        record.bytes_sent = relay.bytes_sent
        record.text_sent = relay.text_sent

    relay = Relay(upstream, dialect, resources().ticker, limits, request.environ.get(CONNECTION))
    relay.on_done = finished  # before it starts: a client may hang up while the call is made
    telemetry.OPEN_STREAMS.inc()
    relay.start(acceptance)
    relay.wait_for_first_event(deadline)
    headers = {**STREAM_HEADERS, **upstream.headers}
    return Response(relay, status=upstream.status, content_type=content_type, headers=headers, direct_passthrough=True)


def _accepted(record, client, args):
    """Open the stream, and note in the facts that Bedrock accepted the call (from then on, it bills it)."""
    stream = converse.open_stream(client, args)
    record.accepted = True
    return stream


def stream_response(client, args, dialect, content_type="text/event-stream", real_statuses=False):
    """Open a ConverseStream call and answer with its events in ``dialect``.

    The apps' routes send their headers within ``SWIFTCHAT_FIRST_EVENT_WINDOW`` of the request's
    arrival, whatever Bedrock does: a refusal that comes within the window keeps its real status
    (StreamRefused, rendered by the error handlers), Bedrock may then take up to
    ``BEDROCK_READ_TIMEOUT`` to accept the call, and whatever fails later is written in-band.
    ``real_statuses`` (the OpenAI API, whose clients retry on a status) waits for Bedrock's
    acceptance up to ``SWIFTCHAT_FIRST_BYTE_TIMEOUT`` (then 504), and the window on top of it.
    """
    app = resources()
    config = app.config
    record = facts()
    record.model = args["modelId"]  # for the access log; usage names it only once Bedrock answered with usage
    record.input_estimate = charges.estimate_input(args)  # charged if the stream ends without Bedrock's usage
    admit_chat(args)
    if record.reservation is not None:
        # Or Bedrock's count of it, where it counts, for a key with a budget (the figure decides what it may
        # still spend): the stream then holds its chat until it ends, 34 KB more a stream for 32 KB chats.
        record.count_input = app.counter.for_stream(client, args)
    if real_statuses:
        acceptance = config.first_byte_timeout
        deadline = time.monotonic() + acceptance + config.first_event_window
    else:
        acceptance = config.bedrock_read_timeout
        # From the request's arrival in whole: a slow upload does not use up the window.
        deadline = time.monotonic() + config.first_event_window
    connection = request.environ.get(CONNECTION)
    if connection is not None:
        connection.whole_events()
    call = BedrockCall(partial(_accepted, record, client, args))
    try:
        return relayed(call, dialect, app.relay_limits, acceptance, deadline, content_type)
    except ClientGone:
        raise
    except Exception as error:
        raise refused(error) from None
