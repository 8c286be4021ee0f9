"""Cache points in a Converse request: the caller's kept where the model takes them, and the server's own.

Bedrock caches the prefix of a request (its tools, then its system blocks, then its messages) up
to each ``cachePoint`` block, for models that cache, at most four points a request. With
``SWIFTCHAT_PROMPT_CACHE=auto`` the server places points itself, for a chat that is resent whole
with every message (the apps do; so do OpenAI clients): one before the newest user turn, which
the next request finds again; one after the system prompt, shared by every chat with it; and one
before the turn before, where the previous request put its point (Claude finds that one by
looking back 20 blocks, Nova only at a point). A point goes only where the prefix before it is
estimated past the model's minimum (a shorter one is not cached, and costs a point). Points the
caller placed count first; the server never makes a request carry more than four.

Tokens are estimated without a tokenizer: four characters of text a token, an image or a
document 1,600 (about what Claude's resizing leaves of an image at most). A wrong guess costs
little: under the minimum Bedrock caches nothing and charges nothing for it.
"""

import json

from .exceptions import ApiError
from .profile import profile

MAX_POINTS = 4  # Bedrock's limit per request, over toolConfig.tools, system and messages
CHARS_PER_TOKEN = 4
MEDIA_TOKENS = 1600
_MEDIA = ("image", "document", "video", "audio")


def _point(block):
    return isinstance(block, dict) and "cachePoint" in block


def count(args):
    """The cache points a Converse request carries, in its tools, system and messages."""
    tools = (args.get("toolConfig") or {}).get("tools") or []
    messages = [block for message in args.get("messages") or [] for block in message.get("content") or []]
    return sum(1 for block in [*tools, *(args.get("system") or []), *messages] if _point(block))


def _without_points(blocks):
    return [block for block in blocks if not _point(block)]


def adapt(args):
    """Keep the caller's cache points where the model takes them, a note on ``args`` (adapt.Adapted: /v1's
    ``x-swiftchat-adapted``) of those dropped. ApiError past four.

    A model that does not cache gets none (Bedrock refuses the whole call otherwise), and only
    Claude takes them among the tools (Nova refuses them there): caching changes the bill, never
    the answer, so they are dropped and the caller told, rather than the call refused.
    """
    found = profile(args["modelId"])
    config = args.get("toolConfig")
    tool_points = config and any(_point(tool) for tool in config.get("tools") or [])
    if tool_points and (not found.caching or found.family != "claude"):
        args["toolConfig"] = {**config, "tools": _without_points(config["tools"])}
        args.note("cache_control on tools dropped: this model takes no cache point among its tools")
    if not found.caching and count(args):
        if args.get("system"):
            args["system"] = _without_points(args["system"])
        args["messages"] = [{**message, "content": _without_points(message["content"])} for message in args["messages"]]
        args.note("cache_control dropped: this model does not cache prompts on Bedrock")
    points = count(args)
    if points > MAX_POINTS:
        raise ApiError(
            400,
            f"Bedrock takes at most {MAX_POINTS} cache points in a request (cache_control on parts, messages and "
            f"tools); this one has {points}.",
            param="messages",
        )


def _estimate(block):
    """Tokens a block is guessed to take; see the module's docstring."""
    if not isinstance(block, dict):
        return 0
    if isinstance(block.get("text"), str):
        return len(block["text"]) // CHARS_PER_TOKEN
    if any(kind in block for kind in _MEDIA):
        return MEDIA_TOKENS
    try:
        return len(json.dumps(block, default=lambda _raw: "")) // CHARS_PER_TOKEN
    except (TypeError, ValueError):
        return 0


def _boundaries(args):
    """(where, tokens before it) after the tools, after the system prompt, and after each message."""
    tokens = sum(_estimate(tool) for tool in (args.get("toolConfig") or {}).get("tools") or [])
    tokens += sum(_estimate(block) for block in args.get("system") or [])
    ends = [("system", tokens)]
    for message in args.get("messages") or []:
        tokens += sum(_estimate(block) for block in message.get("content") or [])
        ends.append(("message", tokens))
    return ends


def _ttl_after(args, index):
    """ "1h" when a one-hour point comes in a message after ``index`` (-1: the system prompt), else None.

    Bedrock wants the TTLs of a request's points not to grow along it, so a point placed before a
    caller's one-hour point is a one-hour point too.
    """
    later = [block for message in args["messages"][index + 1 :] for block in message["content"]]
    return "1h" if any(_point(block) and block["cachePoint"].get("ttl") == "1h" for block in later) else None


def _user_turns(messages):
    return [i for i, message in enumerate(messages) if message["role"] == "user"]


def place(args):
    """Add the server's cache points to a Converse request (``SWIFTCHAT_PROMPT_CACHE=auto``); how many it added.

    Only for a model that caches, where the prefix is past its minimum, within Bedrock's four.
    The lists changed are copies: the caller's request is left as it came.
    """
    found = profile(args["modelId"])
    room = MAX_POINTS - count(args)
    if not found.caching or room <= 0:
        return 0
    ends = _boundaries(args)
    turns = _user_turns(args["messages"])
    # The end of the message before the newest user turn, the system prompt, the end of the one before the turn before.
    wanted = [turns[-1] - 1 if turns else -2, -1, turns[-2] - 1 if len(turns) > 1 else -2]
    placed = 0
    for index in wanted:
        if placed == room or index < -1 or ends[index + 1][1] < max(found.cache_min_tokens, 1):
            continue
        blocks = (args.get("system") or []) if index == -1 else args["messages"][index]["content"]
        if not blocks or _point(blocks[-1]):
            continue
        ttl = _ttl_after(args, index)
        point = {"cachePoint": {"type": "default", "ttl": ttl} if ttl else {"type": "default"}}
        if index == -1:
            args["system"] = [*blocks, point]
        else:
            args["messages"] = list(args["messages"])
            args["messages"][index] = {**args["messages"][index], "content": [*blocks, point]}
        placed += 1
    return placed
