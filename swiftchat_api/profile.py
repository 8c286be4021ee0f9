"""The model profile: one place that knows, per model, what a Converse request to it may carry.

Every route asks here (the apps' routes for ``maxTokens`` and ``enableThinking``, ``/v1`` for
everything else). A model is known by its base id: the id after any inference-profile
geography (``us.``, ``eu.``, ``global.`` ...). A model nobody listed gets the defaults, which
real Bedrock accepts for every text model.
"""

import re
from dataclasses import dataclass

_PROFILE_PREFIX = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")

DEFAULT_MAX_TOKENS = 4096


@dataclass(frozen=True)
class Profile:
    """What one model takes; the defaults are what every Converse text model accepts."""

    family: str = "other"
    max_tokens: int = DEFAULT_MAX_TOKENS
    # How the model reasons: None, "claude" (thinking with a token budget), "nova2", "gpt-oss", "deepseek".
    reasoning: str | None = None
    structured_output: bool = False  # Converse outputConfig.textFormat taken natively
    tools: bool = True
    caching: bool = False  # cachePoint blocks taken
    cache_min_tokens: int = 0  # the shortest prefix the model caches


# (how the base id is matched, the text, the profile); the first rule that matches wins.
# ``max_tokens`` here is what the original server asked for; the apps' requests keep it.
_RULES = (
    ("prefix", "meta.llama", Profile(family="llama", max_tokens=2048)),
    ("contains", "deepseek.r1", Profile(family="deepseek", max_tokens=32000, tools=False)),
    # Structured output (outputConfig.textFormat), from Bedrock's user guide: Claude 4.5 and later.
    ("contains", "claude-sonnet-4-5", Profile(family="claude", max_tokens=64000, reasoning="claude", caching=True,
                                              cache_min_tokens=1024, structured_output=True)),
    ("contains", "claude-haiku-4-5", Profile(family="claude", reasoning="claude", caching=True,
                                             cache_min_tokens=4096, structured_output=True)),
    ("contains", "claude-opus-4-5", Profile(family="claude", max_tokens=32000, reasoning="claude", caching=True,
                                            cache_min_tokens=4096, structured_output=True)),
    ("contains", "claude-opus-4", Profile(family="claude", max_tokens=32000, reasoning="claude", caching=True,
                                          cache_min_tokens=1024)),
    ("contains", "claude-3-7-sonnet", Profile(family="claude", max_tokens=64000, reasoning="claude", caching=True,
                                              cache_min_tokens=1024)),
    ("contains", "claude-sonnet-4", Profile(family="claude", max_tokens=64000, reasoning="claude", caching=True,
                                            cache_min_tokens=1024)),
    ("prefix", "anthropic.", Profile(family="claude")),
    ("prefix", "amazon.nova", Profile(family="nova")),
)  # fmt: skip


def base_model(model_id):
    """The model id without its inference-profile geography (``us.``, ``global.``...)."""
    return _PROFILE_PREFIX.sub("", model_id, count=1)


def profile(model_id):
    """The Profile of a model id, bare or with a geography prefix."""
    base = base_model(model_id)
    for how, text, found in _RULES:
        if base.startswith(text) if how == "prefix" else text in base:
            return found
    return Profile()
