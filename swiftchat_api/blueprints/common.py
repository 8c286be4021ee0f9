"""What every /api view does first: check the key, then read the body through its schema."""

import json
from array import array
from functools import partial

import gevent
from flask import Response, current_app, request

from .. import auth, bodies, charges, telemetry
from ..connection import CONNECTION
from ..exceptions import ApiError
from ..observe import FACTS
from ..services.catalogue import catalogue

# Operator routes (/metrics) show every key's name and usage: only the shared key opens them.
_OPERATOR_BLUEPRINTS = frozenset({"ops"})
# Image generations: one of the day's --images-per-day each.
_IMAGE_ENDPOINTS = frozenset({"image.generate_image", "v1.generate_image"})
# Chats: a key with a budget is admitted once the body says what the chat may cost (admit_chat).
_CHAT_ENDPOINTS = frozenset(
    {"converse.converse_v1", "converse.converse_v2", "converse.converse_v3"}
    | {"v1.chat_completions", "v1.create_response"}
)
_MAX_TOKENS = 10**9  # per request; anything else in a usage report is not a count


def resources():
    """The app's shared resources (config, key source, boto3 clients, caches)."""
    return current_app.extensions["swiftchat"]


def facts():
    """The record of the current request that the access log and metrics are written from."""
    return request.environ[FACTS]


def require_key(refresh=False, headers=None):
    """Authenticate the request's key, admit it under the key's limits and name the key in the facts.

    Returns the key's Identity (``auth.SHARED`` for the shared key). Raises ApiError (403, 401,
    503 when the key store cannot admit it) or LimitExceeded (429).
    Once admitted, the request is recorded against the key when its response ends: one request,
    ``facts().model`` and the tokens of ``facts().usage``. ``refresh`` re-reads the shared key
    from its source; ``headers`` replaces the request's own (a route that checks one header).
    On the chat routes a key with a budget is admitted later, by ``admit_chat`` once the body
    is read (or by ``body`` if it cannot be), so that the admission holds the chat's worst case.
    """
    shared = resources()
    record = facts()
    headers = request.headers if headers is None else headers
    if request.blueprint in _OPERATOR_BLUEPRINTS:
        auth.authenticate(shared.keys, headers, refresh=refresh)
        record.key_name = auth.SHARED.name
        return auth.SHARED
    identity = auth.identify(shared.keys, shared.store, headers, refresh=refresh)
    record.key_name = identity.name
    if identity.tokens_per_day is not None and request.endpoint in _CHAT_ENDPOINTS:
        record.admit_later = partial(_admit, shared, record, identity)
        return identity
    _admit(shared, record, identity, 1)
    return identity


def admit_chat(args):
    """Admit a chat whose key's admission waited for its body, holding its worst case: the input's
    estimate plus ``maxTokens`` (capped by the store at what is left of the budget)."""
    reserve = charges.estimate_input(args) + int((args.get("inferenceConfig") or {}).get("maxTokens") or 0)
    _admit_pending(reserve)


def _admit_pending(reserve):
    record = facts()
    admit, record.admit_later = record.admit_later, None
    if admit is not None:
        admit(reserve)


def _admit(shared, record, identity, reserve):
    admission = auth.admit(shared.store, identity, reserve, image=request.endpoint in _IMAGE_ENDPOINTS)
    record.reservation = admission.reservation
    record.on_end = partial(_account, shared.usage)


_INPUT_FIGURES = ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def _tokens(value):
    return value if type(value) is int and 0 <= value < _MAX_TOKENS else 0


def _account(recorder, record):
    """Count a finished, admitted request against its key: metrics now, the store in the background."""
    usage = record.usage if isinstance(record.usage, dict) else {}
    # Bedrock bills tokens read from and written to its prompt cache too (at other rates): a budget
    # that left them out would let a cached 100,000-token prompt be asked about all day for free.
    input_tokens = sum(_tokens(usage.get(name)) for name in _INPUT_FIGURES)
    output_tokens = _tokens(usage.get("outputTokens"))
    telemetry.key_served(record.key_name, input_tokens, output_tokens)
    estimated = (
        input_tokens if "input" in record.estimated else 0,
        output_tokens if "output" in record.estimated else 0,
    )
    # The model id is the caller's text until Bedrock answered (with usage, or a stream it began):
    # recorded only then, so made-up ids cannot add a usage row each (image calls count unnamed).
    model = record.model if usage else None
    recorder.add(record.key_name, model, input_tokens, output_tokens, estimated, record.reservation)


class _Metered:
    """A bedrock-runtime client whose ``converse`` answers add their usage to the request's facts: the image
    helper model's tokens count toward the key's budget like a chat's."""

    def __init__(self, client, record):
        self._client = client
        self._record = record

    def converse(self, **args):
        answer = self._client.converse(**args)
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if isinstance(usage, dict):
            spent = self._record.usage if isinstance(self._record.usage, dict) else {}
            self._record.usage = {
                "inputTokens": _tokens(spent.get("inputTokens")) + _tokens(usage.get("inputTokens")),
                "outputTokens": _tokens(spent.get("outputTokens")) + _tokens(usage.get("outputTokens")),
            }
        return answer

    def __getattr__(self, name):
        return getattr(self._client, name)


def metered(client):
    """``client`` with the usage of its Converse calls counted against the request's key (see _Metered)."""
    return _Metered(client, facts())


def region_models(region):
    """The region's model catalogue (services.catalogue), cached; UpstreamError when Bedrock will not list it."""
    shared = resources()
    return shared.models_cache.get(region, lambda: catalogue(shared.clients.get("bedrock", region), region))


def raw_body():
    """The request body's bytes: 413 past the limit (chunked bodies too), 408 when the client stalls."""
    config = resources().config
    connection = request.environ.get(CONNECTION)
    if connection is not None:
        connection.send_continue()  # only now, the key accepted: the body is wanted
    try:
        return bodies.read(
            request.environ["wsgi.input"], config.max_body_bytes, config.body_timeout, request.content_length
        )
    except bodies.BodyTooLarge:
        raise ApiError(413, f"The request body is larger than {config.max_body_bytes // (1024 * 1024)} MB.") from None
    except bodies.BodyStalled:
        raise ApiError(408, f"The request body stopped arriving for {config.body_timeout:g} s.") from None


def body_budget(max_values=bodies.MAX_VALUES):
    """A fresh budget for one request: its body and any JSON read from text inside it (see bodies.Budget)."""
    return bodies.Budget(resources().config.max_body_bytes, max_values)


def body(schema, budget=None):
    """The request's JSON body loaded by a schema; 422 for bad JSON or a bad shape.

    ``budget``: the request's own, when the view reads JSON out of the body's text later on (a
    tool call's arguments), so that all of it counts against one set of limits.
    """
    if budget is None:
        budget = body_budget()
    try:
        return schema.load(budget.body(raw_body()))
    except Exception:
        _admit_pending(1)  # a chat refused for its body still counts as one request of its key
        raise


_PIECE = 64 * 1024  # bytes of JSON encoded between two turns of the event loop


def _listed(value):
    if isinstance(value, array):  # an embedding's vector, kept compact until it is written
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


_encode = json.JSONEncoder(separators=(",", ":"), default=_listed).encode  # as Flask renders JSON


def _json_parts(answer):
    """``answer`` (a dict) as Flask's compact JSON, in parts: a list's items one by one, lazily."""
    yield "{"
    for position, (key, value) in enumerate(answer.items()):
        yield f"{',' if position else ''}{_encode(key)}:"
        if isinstance(value, list):
            yield "["
            for index, item in enumerate(value):
                yield f"{',' if index else ''}{_encode(item)}"
            yield "]"
        else:
            yield _encode(value)
    yield "}\n"


def _json_pieces(answer):
    """The parts gathered into pieces of about ``_PIECE`` bytes, other greenlets running in between."""
    pending, size = [], 0
    for part in _json_parts(answer):
        pending.append(part)
        size += len(part)
        if size >= _PIECE:
            yield "".join(pending).encode()
            pending, size = [], 0
            gevent.sleep(0)  # other requests run between the pieces of a large answer
    yield "".join(pending).encode()


def large_json(answer):
    """A JSON answer that may run to tens of megabytes (embeddings), encoded and sent in pieces.

    Encoded whole, 2,048 vectors of 1,536 floats held the worker's one thread for a second and
    the text twice over (as str, then bytes); in pieces, other requests run in between and a
    client that reads nothing holds one piece, until the client time-out lets it go.
    """
    return Response(_json_pieces(answer), mimetype="application/json")
