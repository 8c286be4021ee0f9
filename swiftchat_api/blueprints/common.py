"""What every /api view does first: check the key, then read the body through its schema."""

from flask import current_app, request

from .. import bodies
from ..auth import authenticate
from ..exceptions import ApiError
from ..observe import FACTS


def resources():
    """The app's shared resources (config, key source, boto3 clients, caches)."""
    return current_app.extensions["swiftchat"]


def facts():
    """The record of the current request that the access log and metrics are written from."""
    return request.environ[FACTS]


def require_key(refresh=False):
    """Authenticate the current request against the app's key source."""
    authenticate(resources().keys, request.headers, refresh=refresh)


def raw_body():
    """The request body's bytes: 413 past the limit (chunked bodies too), 408 when the client stalls."""
    config = resources().config
    try:
        return bodies.read(
            request.environ["wsgi.input"], config.max_body_bytes, config.body_timeout, request.content_length
        )
    except bodies.BodyTooLarge:
        raise ApiError(413, f"The request body is larger than {config.max_body_bytes // (1024 * 1024)} MB.") from None
    except bodies.BodyStalled:
        raise ApiError(408, f"The request body stopped arriving for {config.body_timeout:g} s.") from None


def body(schema):
    """The request's JSON body loaded by a schema; 422 for bad JSON or a bad shape."""
    return schema.load(bodies.loads(raw_body()))


state = resources  # TODO(lead): remove once image.py and models.py call resources()
