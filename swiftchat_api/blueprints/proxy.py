"""POST /api/gpt and /api/openai: "Use Proxy", relayed to an OpenAI-compatible provider the operator allows."""

import ipaddress
import re

from flask import Blueprint, current_app, request

from .. import auth, bodies
from ..exceptions import ApiError
from ..services import proxy
from ..store import KEY_PREFIX, shaped_like_a_key
from .common import raw_body, require_key, resources
from .streaming import relayed

bp = Blueprint("proxy", __name__)
_schema = proxy.ChatCompletionsRequest()
_EXTENSION = "swiftchat.proxy"
_KEY_REQUIRED = "swiftchat.proxy.key_required"
KEY_NEEDED = (
    "Error: Use Proxy on this server needs this server's API key in x-api-key (the provider's key goes in"
    " Authorization)."
)
# Names that only ever mean a host on the server's own network.
_PRIVATE_NAMES = re.compile(r"(localhost|[^.]+|.*\.(local|localhost|internal|lan|home\.arpa|intranet|corp))\Z")


@bp.record_once
def _build(state):
    """Build the app's proxy service (allowed targets, time-outs, TLS trust) once, from its config."""
    config = state.app.extensions["swiftchat"].config
    state.app.extensions[_EXTENSION] = proxy.Proxy.from_config(config)
    required = config.openai_proxy_require_key
    if required is None:  # by default, whenever the relay could reach into the server's own network
        hosts = [proxy.parse_host_entry(entry)[0] for entry in config.openai_proxy_hosts]
        if config.openai_gpt_url:
            hosts.append(proxy.parse_target(config.openai_gpt_url).host)
        required = any(not _public_host(host) for host in hosts)
    state.app.extensions[_KEY_REQUIRED] = required


def _public_host(host):
    """Whether a listed host is a public provider (not an address or name on a private network)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return not _PRIVATE_NAMES.match(host)
    return address.is_global and not address.is_multicast


def _check_caller():
    """This server's key, in x-api-key, when sent or required, admitted and counted like any request's; none of
    its keys is ever sent on to a provider."""
    _refuse_our_key_as_the_providers()
    key = request.headers.get("x-api-key")
    if key is None and not current_app.extensions[_KEY_REQUIRED]:
        return  # app generations before main send none (OPENAI_PROXY_REQUIRE_KEY=off, or only public providers)
    if not key:
        raise ApiError(403, KEY_NEEDED)
    require_key(headers={"x-api-key": key})


def _refuse_our_key_as_the_providers():
    """403 when Authorization holds one of this server's keys, however it is spelt (with or without
    ``Bearer``, any whitespace, any separator)."""
    given = request.headers.get("Authorization", "")
    if not given.strip():
        return
    ours = KEY_PREFIX in given  # a per-person key, working or not: no provider's looks so
    if not ours:
        try:
            shared = resources().keys.get()
        except ApiError:  # the shared key cannot be read: nothing to compare with
            shared = None
        if shared:
            parts = [part for part in re.split(r"[\s,;:=]+", given) if part]
            ours = shared in given or any(auth.is_shared_key(resources().keys, part) for part in parts)
    if ours or any(shaped_like_a_key(part) for part in given.split()):
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
