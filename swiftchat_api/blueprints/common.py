"""What every /api view does first: check the key, then read the body through its schema."""

import json

from flask import current_app, request
from marshmallow import ValidationError

from ..auth import authenticate


def require_key(refresh=False):
    """Authenticate the current request against the app's key source."""
    authenticate(current_app.extensions["swiftchat"].keys, request.headers, refresh=refresh)


def body(schema):
    """The request's JSON body loaded by a schema; 422 for bad JSON or a bad shape."""
    raw = request.get_data(cache=False)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as error:
        raise ValidationError({"_schema": [f"JSON decode error: {error.msg} at position {error.pos}."]}) from None
    return schema.load(data)


def state():
    """The app's shared resources (config, key source, boto3 clients)."""
    return current_app.extensions["swiftchat"]
