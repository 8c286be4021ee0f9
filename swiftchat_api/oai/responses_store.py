"""Stored responses of /v1/responses: what ``store: true`` keeps, and ``previous_response_id`` continues.

A stored response is a user's conversation turn: the Response object as it was answered and the
input items it was made from, kept in ``SWIFTCHAT_STORE`` beside the keys (SQLite on one host,
Redis across instances) for ``SWIFTCHAT_RESPONSES_TTL`` after the last turn that continued it.
It belongs to the key that made it: another key, the shared key included, is told it does not
exist, and a key made again for the same name (after a revoke) owns none of the old key's.

The route of ``POST /v1/responses`` calls, with ``owner`` the key's name and a hash of the key
itself (store.response_owner)::

    stored = current_app.extensions["swiftchat"].responses
    items = stored.history(owner, previous_response_id)   # [] for None; before Bedrock is called
    response_id = responses_store.new_id()           # unguessable: the shared key's holders are many
    unstored = stored.keep(owner, response, input_items, previous_response_id)   # why it was not, or None

``history`` gives the earlier turns' input items then output items, turn after turn, oldest
first. It raises ApiError, rendered as OpenAI's error: 400 when storing is off, 400
``previous_response_not_found`` for an id the key has no stored response under (never saying
whose it is), 400 when the conversation is past ``SWIFTCHAT_RESPONSES_MAX_TURNS`` responses or
holds more than a request body may (``SWIFTCHAT_MAX_BODY_MB``) — both known from one read, with
no walk of the chain; 503 when the store cannot be reached. ``save`` takes the answered Response
object (its ``output`` is what a later turn continues from) and this request's input items, as
the SDK's input item shapes with ``type`` set; an item without an ``id`` is given one. It evicts
the least recently continued responses past ``SWIFTCHAT_RESPONSES_KEY_MB`` (the key's own first)
and ``SWIFTCHAT_RESPONSES_TOTAL_MB``, and raises 413 for a response that on its own is larger than
a key may keep. The route calls ``keep``, which saves but never fails the answer Bedrock billed:
it marks it ``store: false`` and says why; call it before the answer's last event, so that it
can still say so.
"""

import json
import re
import secrets
import time

from marshmallow import Schema, fields, validate

from .. import auth, telemetry
from ..exceptions import ApiError
from ..store import ResponseBounds, StoreUnavailable
from .responses import item_id

ID_PREFIX = "resp_"
# 192 random bits: for the shared key, which every app carries, the id is the only secret.
_ID_SHAPE = re.compile(r"resp_[0-9a-f]{48}\Z")
MAX_LIMIT = 100
NOT_FOUND = "No stored response has this id: it may never have been stored, or it expired or was deleted."
STORE_DOWN = "The response store cannot be reached just now; please try again in a moment."
STORING_OFF = (
    "This server stores no responses (SWIFTCHAT_RESPONSES_TTL=0), so previous_response_id cannot be used: "
    "send the whole conversation as input."
)
NO_PREVIOUS = (
    "No stored response has the id given as previous_response_id: it may never have been stored (store: false),"
    " or it expired or was deleted."
)
GAP = (
    "An earlier response of this conversation is no longer stored (it expired, was deleted, or was evicted to keep"
    " within the server's bounds): send the conversation as input."
)


# What ``include`` may ask for on retrieve and input_items: what a stored item here can hold, which is
# always answered whole (an image's URL, a reasoning item's encrypted_content). Logprobs are not kept, and
# the rest belongs to built-in tools this server does not run.
INCLUDABLE = ("message.input_image.image_url", "reasoning.encrypted_content")


def new_id():
    """A fresh, unguessable response id, ``resp_`` and 48 hex digits."""
    return ID_PREFIX + secrets.token_hex(24)


def _megabytes(size):
    return f"{size / (1024 * 1024):,.1f} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _with_id(item):
    if not isinstance(item, dict) or isinstance(item.get("id"), str):
        return item
    return {"id": item_id(item.get("type")), **item}


def _encode(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class ResponsesStore:
    """Stored responses over the app's key store, with the bounds of the configuration."""

    def __init__(self, store, config):
        self._store = store
        self.ttl = config.responses_ttl
        self.bounds = ResponseBounds(
            config.responses_key_bytes, config.responses_total_bytes, config.responses_max_turns
        )
        self.max_conversation_bytes = config.max_body_bytes

    @property
    def enabled(self):
        """Whether responses are stored (``SWIFTCHAT_RESPONSES_TTL`` is not 0)."""
        return self.ttl > 0

    def _call(self, method, *args):
        try:
            return method(*args)
        except StoreUnavailable as error:
            auth.store_failed("responses", error)
            raise ApiError(503, STORE_DOWN) from None

    def history(self, owner, previous_response_id):
        """The input then output items of every earlier turn, oldest first; [] when there is none to continue."""
        if previous_response_id is None:
            return []
        if not self.enabled:
            raise ApiError(400, STORING_OFF, param="previous_response_id")
        if not isinstance(previous_response_id, str) or not _ID_SHAPE.match(previous_response_id):
            raise ApiError(400, NO_PREVIOUS, param="previous_response_id", code="previous_response_not_found")
        head = self._call(self._store.response_head, owner, previous_response_id)
        if head is None:
            raise ApiError(400, NO_PREVIOUS, param="previous_response_id", code="previous_response_not_found")
        if head.turns >= self.bounds.turns:
            raise ApiError(
                400,
                f"This conversation has {head.turns:,} responses, the most that previous_response_id continues on this"
                " server (SWIFTCHAT_RESPONSES_MAX_TURNS): send the part of it you need as input instead.",
                param="previous_response_id",
            )
        if head.conversation_bytes > self.max_conversation_bytes:
            raise ApiError(
                400,
                f"This conversation holds {_megabytes(head.conversation_bytes)}, more than a request may carry on this"
                f" server ({_megabytes(self.max_conversation_bytes)}): send the part of it you need as input instead.",
                param="previous_response_id",
            )
        chain = self._call(self._store.response_chain, owner, previous_response_id, head.turns)
        if not chain or chain[0].previous is not None:
            raise ApiError(400, GAP, param="previous_response_id", code="previous_response_not_found")
        items = []
        for turn in chain:
            items += json.loads(turn.items)
            items += json.loads(turn.response).get("output") or []
        return items

    def save(self, owner, response, input_items, previous_response_id=None):
        """Keep the answered ``response`` and its ``input_items`` for owner; False when storing is off."""
        if not self.enabled:
            return False
        response_id = response["id"]
        if not _ID_SHAPE.match(response_id):
            raise ValueError("a stored response's id comes from responses_store.new_id()")
        answer, items = _encode(response), _encode([_with_id(item) for item in input_items])
        size = len(answer) + len(items)
        if size > self.bounds.owner_bytes:
            raise ApiError(
                413,
                f"This response and its input come to {_megabytes(size)}, more than a key may keep stored on this"
                f" server ({_megabytes(self.bounds.owner_bytes)}, SWIFTCHAT_RESPONSES_KEY_MB): send it with"
                " store: false.",
                param="store",
            )
        expires = time.time() + self.ttl
        evicted = self._call(
            self._store.save_response, owner, response_id, previous_response_id, answer, items, expires, self.bounds
        )
        if evicted:
            telemetry.RESPONSES_EVICTED.inc(evicted)
        return True

    def keep(self, owner, response, input_items, previous_response_id=None):
        """Save as ``save`` does, but never at the cost of the answer: Bedrock made (and billed) it, so when the
        store cannot take it (down, or past the key's bound) it is answered marked ``store: false``. Returns why
        it was not stored, or None."""
        try:
            self.save(owner, response, input_items, previous_response_id)
        except ApiError as error:
            response["store"] = False
            return f"not stored: {error.detail}"
        return None

    def _stored(self, owner, response_id):
        if not self.enabled or not _ID_SHAPE.match(response_id):
            raise ApiError(404, NOT_FOUND)
        found = self._call(self._store.load_response, owner, response_id)
        if found is None:
            raise ApiError(404, NOT_FOUND)
        return found

    def retrieve(self, owner, response_id):
        """The stored Response object's JSON, as bytes; 404 unless owner has one with this id."""
        found = self._stored(owner, response_id).response
        return found if isinstance(found, bytes) else found.encode()

    def delete(self, owner, response_id):
        """Delete owner's stored response: OpenAI's deletion answer; 404 unless owner had one with this id."""
        if not self.enabled or not _ID_SHAPE.match(response_id):
            raise ApiError(404, NOT_FOUND)
        if not self._call(self._store.delete_response, owner, response_id):
            raise ApiError(404, NOT_FOUND)
        return {"id": response_id, "object": "response", "deleted": True}

    def input_items(self, owner, response_id, limit=20, order="desc", after=None):
        """A page of the input items of owner's stored response, as OpenAI lists them."""
        items = json.loads(self._stored(owner, response_id).items)
        if order == "desc":
            items.reverse()
        start = 0
        if after is not None:
            start = next((index + 1 for index, item in enumerate(items) if item.get("id") == after), None)
            if start is None:
                raise ApiError(400, "after: this response has no input item with this id.", param="after")
        page = items[start : start + limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": start + limit < len(items),
        }


# -- the query strings of GET /v1/responses/{id}, DELETE and GET .../input_items -------------------


def _included(data_key=None):
    return fields.List(fields.String(validate=validate.OneOf(INCLUDABLE)), load_default=list, data_key=data_key)


class RetrieveQuery(Schema):
    include = _included()
    include_brackets = _included("include[]")  # how the SDKs send a list
    stream = fields.Boolean(
        load_default=False,
        validate=validate.Equal(False, error="A stored response is answered whole here; stream it as it is made."),
    )


class InputItemsQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, MAX_LIMIT))
    order = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))
    after = fields.String(load_default=None, validate=validate.Length(1, 256))
    include = _included()
    include_brackets = _included("include[]")  # how the SDKs send a list


class NoQuery(Schema):
    """DELETE takes no parameter."""


_LISTS = frozenset({"include", "include[]"})


def query(schema, args):
    """The request's query string loaded by ``schema`` (unknown parameters refused); its paging values."""
    given = {}
    for name in args:
        values = args.getlist(name)
        given[name] = values if name in _LISTS or len(values) > 1 else values[0]
    loaded = schema.load(given)
    return {name: value for name, value in loaded.items() if name in ("limit", "order", "after")}
