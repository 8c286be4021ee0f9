"""POST /api/gpt and /api/openai: "Use Proxy", relayed to an OpenAI-compatible provider the operator allows."""

from flask import Blueprint, current_app, request

from .. import auth, bodies
from ..exceptions import ApiError
from ..services import proxy
from ..store import shaped_like_a_key
from .common import raw_body, require_key, resources
from .streaming import relayed

bp = Blueprint("proxy", __name__)
_schema = proxy.ChatCompletionsRequest()
_EXTENSION = "swiftchat.proxy"


@bp.record_once
def _build(state):
    """Build the app's proxy service (allowed targets, time-outs, TLS trust) once, from its config."""
    state.app.extensions[_EXTENSION] = proxy.Proxy.from_config(state.app.extensions["swiftchat"].config)


def _check_caller():
    """An x-api-key, when sent, must be a key of this server's; none of its keys is ever sent on to a provider."""
    _refuse_our_key_as_the_providers()
    if "x-api-key" in request.headers:
        require_key(headers={"x-api-key": request.headers["x-api-key"]})


def _refuse_our_key_as_the_providers():
    _, _, provider_key = request.headers.get("Authorization", "").strip().partition(" ")
    provider_key = provider_key.strip()
    if not provider_key:
        return
    ours = shaped_like_a_key(provider_key)  # a per-person key, working or not: no provider's looks so
    if not ours:
        try:
            ours = auth.is_shared_key(resources().keys, provider_key)
        except ApiError:  # the shared key cannot be read: nothing to compare with
            return
    if ours:
        raise ApiError(
            403, "Error: Authorization must carry the provider's API key; this server's key is never sent on."
        )


def _relay(target_of):
    _check_caller()
    service = current_app.extensions[_EXTENSION]
    target = target_of(service)
    raw = raw_body()
    _schema.load(bodies.loads(raw))
    return relayed(service.call(target, raw, request.headers), proxy.PASSTHROUGH, service.limits)


@bp.post("/api/gpt")
def gpt():
    """Relay a chat-completions body to OPENAI_GPT_URL (apps 1.10–2.2)."""
    return _relay(lambda service: service.gpt_target())


@bp.post("/api/openai")
def openai():
    """Relay a chat-completions body to the allowed provider the request_url header names (apps 2.3+)."""
    return _relay(lambda service: service.target(request.headers.get("request_url")))
