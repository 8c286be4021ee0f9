"""Prompt caching as Bedrock plays it, so that cache points show in the usage the way they would.

A Converse request is one sequence of blocks: its tools, its system blocks, then its messages.
A ``cachePoint`` marks the prefix before it. Bedrock remembers a marked prefix per model for its
TTL (5 minutes, renewed by each hit; or ``ttl: "1h"``), when the prefix reaches the model's
minimum; a shorter one is neither written nor read, and the call still succeeds. A later request
reads from the cache the longest remembered prefix found at one of its own cache points or, on
Claude, at any block boundary up to 20 blocks before one (Anthropic's lookback; Nova looks at the
points alone), and writes what lies between that and its last cache point. The usage then says
``cacheReadInputTokens`` and ``cacheWriteInputTokens``, and ``inputTokens`` only the rest.

Tokens are the emulator's own (words; script.input_tokens), the tools and the system prompt counted
with the messages as Bedrock bills them. Memory is bounded: the oldest prefixes are forgotten
first (``MAX_ENTRIES``).
"""

import hashlib
import json
import time
from collections import OrderedDict

from .catalogue import without_geography
from .script import DirectiveError, block_tokens, blocks

MAX_POINTS = 4  # cache points in one request, over tools, system and messages
LOOKBACK = 20  # blocks Claude looks back from a cache point for a remembered prefix
MAX_ENTRIES = 10_000
TTL_SECONDS = {None: 300, "5m": 300, "1h": 3600}


# (text in the base model id, family, shortest prefix cached in tokens, takes the 1-hour TTL);
# the first that matches wins. Bedrock's prompt-caching table and Anthropic's minimums.
_CACHING = (
    ("anthropic.claude-3-5-haiku", "claude", 2048, False),
    ("anthropic.claude-haiku-4-5", "claude", 4096, True),
    ("anthropic.claude-opus-4-5", "claude", 4096, True),
    ("anthropic.claude-opus-4-6", "claude", 4096, True),
    ("anthropic.claude-sonnet-4-5", "claude", 1024, True),
    ("anthropic.claude-sonnet-4-6", "claude", 1024, True),
    ("anthropic.claude-3-7-sonnet", "claude", 1024, False),
    ("anthropic.claude-sonnet-4", "claude", 1024, False),
    ("anthropic.claude-opus-4", "claude", 1024, False),
    ("amazon.nova-micro", "nova", 1000, False),
    ("amazon.nova-lite", "nova", 1000, False),
    ("amazon.nova-pro", "nova", 1000, False),
    ("amazon.nova-premier", "nova", 1000, False),
    ("amazon.nova-2-lite", "nova", 1000, False),
)

UNSUPPORTED = (
    "You invoked an unsupported model or your request did not allow prompt caching. "
    "See the documentation for more information."
)


class Refused(DirectiveError):
    """A request with cache points that Bedrock refuses (ValidationException)."""


def _model(model_id):
    base = without_geography(model_id)
    return next((entry[1:] for entry in _CACHING if base.startswith(entry[0])), None)


class _Request:
    """The prefixes of one request: a hash and a token count at every block boundary, and its cache points."""

    def __init__(self, body):
        digest = hashlib.sha256()
        self.boundaries = []  # (hash, tokens) after each block
        self.points = []  # (index into boundaries, ttl, section, tool index)
        tokens = 0
        for section, index, block in blocks(body):
            if not isinstance(block, dict):
                continue
            if "cachePoint" in block:
                ttl = (block["cachePoint"] or {}).get("ttl")
                self.points.append((len(self.boundaries) - 1, ttl, section, index))
                continue
            digest.update(json.dumps([section, block], sort_keys=True).encode())
            if section != "role":
                tokens += block_tokens(block)
            self.boundaries.append((digest.copy().digest(), tokens))
        self.total = tokens


def _check(model_id, request):
    found = _model(model_id)
    if found is None:
        raise Refused(UNSUPPORTED)
    family, _minimum, long_ttl = found
    for _at, ttl, section, index in request.points:
        if section == "tools" and family != "claude":
            raise Refused(
                f"The model returned the following errors: Malformed input request: #/toolConfig/tools/{index}: "
                "extraneous key [cachePoint] is not permitted, please reformat your input and try again."
            )
        if ttl == "1h" and family != "claude":
            raise Refused("Extended TTL prompt caching is only supported for Anthropic models")
        if ttl == "1h" and not long_ttl:
            raise Refused("The model returned the following errors: cachePoint.ttl: Extra inputs are not permitted")
    if len(request.points) > MAX_POINTS:
        found_points = len(request.points)
        raise Refused(f"A maximum of {MAX_POINTS} blocks with cache_control may be provided. Found {found_points}.")
    return found


class PromptCache:
    """The prefixes Bedrock remembers, per model, bounded; ``usage`` accounts one request against them."""

    def __init__(self, max_entries=MAX_ENTRIES, clock=time.monotonic):
        self._entries = OrderedDict()  # (model, prefix hash) → (tokens, expires at, ttl)
        self._max_entries = max_entries
        self._clock = clock

    def usage(self, model_id, body):
        """(inputTokens, cacheReadInputTokens, cacheWriteInputTokens) of a request with cache points, else None.

        Raises Refused with Bedrock's words for cache points Bedrock does not take.
        """
        request = _Request(body)
        if not request.points:
            return None
        family, minimum, _long_ttl = _check(model_id, request)
        model = without_geography(model_id)
        now = self._clock()
        points = [(at, ttl) for at, ttl, _section, _index in request.points if at >= 0]
        points = [(at, ttl) for at, ttl in points if request.boundaries[at][1] >= minimum]
        read = 0
        for at, _ttl in points:
            for back in range(at, max(-1, at - LOOKBACK) if family == "claude" else at - 1, -1):
                key = (model, request.boundaries[back][0])
                entry = self._entries.get(key)
                if entry is None or entry[1] < now:
                    continue
                read = max(read, entry[0])
                self._entries[key] = (entry[0], now + TTL_SECONDS[entry[2]], entry[2])  # a hit renews it
                self._entries.move_to_end(key)
        written = max((request.boundaries[at][1] for at, _ttl in points), default=0)
        write = max(0, written - read)
        for at, ttl in points:
            key = (model, request.boundaries[at][0])
            if key not in self._entries or self._entries[key][1] < now:
                self._entries[key] = (request.boundaries[at][1], now + TTL_SECONDS.get(ttl, 300), ttl)
            self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return request.total - read - write, read, write

    def account(self, model_id, body, script):
        """Set a script's usage from the cache when its request has cache points (a directive's figures win)."""
        if script.error:  # refused anyway: nothing is read or written
            return
        counted = self.usage(model_id, body)
        if counted is not None and not (script.cache_read or script.cache_write):
            script.input_tokens, script.cache_read, script.cache_write = counted
