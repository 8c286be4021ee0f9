"""The model profile: one place that knows, per model, what a Converse request to it may carry.

Every route asks here (the apps' routes for ``maxTokens`` and ``enableThinking``, ``/v1`` for
everything else). A model is known by its base id: the id after any inference-profile
geography (``us.``, ``eu.``, ``global.`` ...); an application inference profile's ARN is
resolved once through Bedrock's GetInferenceProfile (``resolve``) and then stands for its
model. A model nobody listed gets the defaults, which real Bedrock accepts for every text
model; what it refuses on top of them is learnt at run time (``learn``, see adapt.py).

Where the facts come from (Bedrock's and the providers' documentation, and users' reports
where the documentation is silent):
- Claude: extended thinking (3.7 and later) refuses temperature other than 1, top_k, top_p
  below 0.95 (any top_p on 3.7) and forced tool use, with a budget of at least 1,024 tokens
  below max_tokens (Anthropic, "Building with extended thinking"). Opus 4.1 and the 4.5
  generation refuse temperature and top_p together (langfuse#9882, open-webui/functions#9);
  Opus 4.7 and later take no sampling parameters at all ("temperature is deprecated for this
  model": promptfoo#10307, kibana#274136) and think only adaptively, as the Claude 5 and
  Mythos/Fable models do (Bedrock user guide, "Adaptive thinking"); 4.6 thinks either way.
  Effort (Converse ``outputConfig.effort``): Opus 4.5 low–high, 4.6 adds max, 4.7 and later
  add xhigh (not Mythos Preview); above high only while thinking (Anthropic, "Effort"; botocore's OutputConfig).
  Native structured output: Haiku/Sonnet/Opus 4.5 and later (Bedrock, "structured output").
- Nova 2: ``reasoningConfig`` with ``maxReasoningEffort`` low/medium/high; with high, no
  maxTokens, temperature or topP (Nova 2 user guide, "Extended thinking"; inspect_ai#3848).
- gpt-oss and DeepSeek V3.x: ``reasoning_effort`` low/medium/high in the additional fields
  (langchain-aws#1261); DeepSeek R1 always reasons and has no tool use on Converse.
"""

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

_PROFILE_PREFIX = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")
_APPLICATION_PROFILE = re.compile(r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]+:\d{12}:application-inference-profile/[a-z0-9]+$")
# claude-3-5-sonnet…, claude-sonnet-4-5-2025…, claude-opus-4-7, claude-3-haiku…, claude-fable-5-1
_CLAUDE_VERSION = re.compile(
    r"claude-(?:(?P<a>\d)-(?P<b>\d)-[a-z]|[a-z]+-(?P<c>\d{1,2})(?:-(?P<d>\d)(?!\d))?(?![0-9])|(?P<e>\d)-[a-z])"
)

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024  # Claude refuses a smaller budget
EFFORTS = ("low", "medium", "high", "xhigh", "max")  # Converse outputConfig.effort, lowest first
RESOLVED = 512  # application profiles remembered per process
LEARNT = 1024  # models whose learnt refusals are remembered per process


@dataclass(frozen=True)
class Profile:
    """What one model takes; the defaults are what every Converse text model accepts."""

    family: str = "other"
    max_tokens: int = DEFAULT_MAX_TOKENS
    # How the model reasons: None, "claude" (thinking), "nova2" (reasoningConfig), "gpt-oss" and
    # "deepseek" (reasoning_effort), "always" (reasons whatever it is asked: DeepSeek R1).
    reasoning: str | None = None
    thinking: tuple = ()  # Claude's thinking types it takes: "enabled" (a budget), "adaptive"
    efforts: tuple = ()  # the outputConfig.effort levels it takes
    sampling: str = "any"  # "any", "one" (temperature or top_p, not both), "none" (neither, nor top_k)
    thinking_top_p: float | None = None  # the lowest top_p taken while thinking (None: no top_p then)
    top_k: str | None = "top_k"  # where top_k goes in additionalModelRequestFields ("a.b": nested); None: not taken
    structured_output: bool = False  # Converse outputConfig.textFormat taken natively
    tools: bool = True
    tool_choice: bool = True  # toolChoice any / tool taken (a tool call can be forced)
    caching: bool = False  # cachePoint blocks taken
    cache_min_tokens: int = 0  # the shortest prefix the model caches
    known: bool = True  # False: the defaults, for a model nobody listed

    @property
    def adaptive_only(self):
        """Whether the model thinks only adaptively (a budget is a 400, so is thinking "disabled")."""
        return self.thinking == ("adaptive",)


UNKNOWN = Profile(known=False)


def _claude_version(base):
    """Claude's version as a number (3.5, 4.6...); 99 for a named model with none (claude-mythos-preview)."""
    if re.search(r"claude-(?:instant|v\d)", base):
        return 2.0
    found = _CLAUDE_VERSION.search(base)
    if not found:
        return 99.0 if re.search(r"claude-[a-z]+-[a-z]", base) else 0.0
    if found["a"]:
        return int(found["a"]) + int(found["b"]) / 10
    if found["c"]:
        return int(found["c"]) + int(found["d"] or 0) / 10
    return float(found["e"])


def _claude(base):
    version = _claude_version(base)
    if version < 3:  # claude-v2, claude-instant: no Converse tool use, no thinking
        return Profile(family="claude", tools=False, top_k="top_k")
    opus, haiku = "claude-opus" in base, "haiku" in base
    if "claude-3-7-sonnet" in base or "claude-sonnet-4" in base or (version >= 5 or version == 99):
        max_tokens = 64000
    elif "claude-opus-4" in base:
        max_tokens = 32000
    elif haiku and version >= 4.5:
        max_tokens = 64000  # thinks, so the apps' 16,000-token budget needs more than 4,096
    else:
        max_tokens = DEFAULT_MAX_TOKENS
    if version < 3.7:
        thinking = ()
    elif version < 4.6:
        thinking = ("enabled",)
    elif version < 4.7:
        thinking = ("enabled", "adaptive")
    else:
        thinking = ("adaptive",)
    if "mythos-preview" in base:
        efforts = ("low", "medium", "high", "max")  # Anthropic, "Effort": max but not xhigh
    elif version >= 4.7:
        efforts = EFFORTS
    elif version >= 4.6:
        efforts = ("low", "medium", "high", "max")
    elif opus and version >= 4.5:
        efforts = ("low", "medium", "high")
    else:
        efforts = ()
    sampling = "none" if version >= 4.7 else "one" if version >= 4.1 else "any"
    return Profile(
        family="claude",
        max_tokens=max_tokens,
        reasoning="claude" if thinking else None,
        thinking=thinking,
        efforts=efforts,
        sampling=sampling,
        thinking_top_p=0.95 if version >= 4 else None,
        top_k=None if sampling == "none" else "top_k",
        structured_output=version >= 4.5,
        caching=version >= 3.5 and ("haiku" in base or version >= 3.7),
        cache_min_tokens=4096 if (opus or haiku) and version >= 4.5 else 2048 if haiku else 1024,
    )


def _nova(base):
    if base.startswith("amazon.nova-2-"):
        return Profile(family="nova", reasoning="nova2", top_k="inferenceConfig.topK", caching=True,
                       cache_min_tokens=1000)  # fmt: skip
    if base.startswith(("amazon.nova-micro", "amazon.nova-lite", "amazon.nova-pro", "amazon.nova-premier")):
        return Profile(family="nova", top_k="inferenceConfig.topK", caching=True, cache_min_tokens=1000)
    return None  # Canvas, Reel, Sonic, embeddings: not chat models


def _other(base):
    if base.startswith("meta.llama"):
        # Llama 3.0 and the small 3.2 models have no tool use on Converse (epam/ai-dial-adapter-bedrock#181).
        small = re.search(r"llama3-2-(?:1|3|11)b", base) or re.match(r"meta\.llama3-(?:8|70)b", base)
        # Nor toolChoice any/tool on any of them ("This model doesn't support the toolConfig.toolChoice.any field").
        return Profile(family="llama", max_tokens=2048, top_k=None, tools=not small, tool_choice=False)
    if "deepseek.r1" in base:
        return Profile(family="deepseek", max_tokens=32000, reasoning="always", tools=False, top_k=None)
    if base.startswith("deepseek.v3"):
        return Profile(family="deepseek", reasoning="deepseek", top_k=None, structured_output=True)
    if base.startswith("openai.gpt-oss"):
        return Profile(family="gpt-oss", reasoning="gpt-oss", top_k=None, structured_output=True)
    if base.startswith("mistral."):
        # Only the large and small Mistral models call tools on Converse.
        tools = "large" in base or "small" in base
        return Profile(family="mistral", top_k=None, tools=tools, structured_output="large-3" in base)
    if base.startswith(("cohere.command-r", "cohere.command-a")):
        return Profile(family="cohere", top_k=None)
    if base.startswith("amazon.titan-text"):
        return Profile(family="titan", top_k=None, tools=False)
    if base.startswith("qwen."):
        return Profile(family="qwen", top_k=None, structured_output=True)
    return None


def without_geography(model_id):
    """The model id without its cross-region inference profile's geography (``us.``, ``global.``...)."""
    return _PROFILE_PREFIX.sub("", model_id, count=1)


def base_model(model_id):
    """The model id without its inference-profile geography (``us.``, ``global.``...); a resolved ARN's model."""
    resolved = _resolved.get(model_id)
    if resolved is not None:
        return resolved
    return without_geography(model_id)


def profile(model_id):
    """The Profile of a model id: bare, with a geography prefix, or an application profile resolved before."""
    base = base_model(model_id)
    if base.startswith("anthropic.claude"):
        return _claude(base)
    found = _nova(base) if base.startswith("amazon.nova") else _other(base)
    return found or UNKNOWN


def max_tokens(model_id):
    """The maxTokens the apps' routes ask for with this model (and /v1's when the caller gives none)."""
    return profile(model_id).max_tokens


# --- application inference profiles --------------------------------------------------------


class _Bounded(OrderedDict):
    """A dict that forgets its least recently used entries past ``size``; safe across greenlets and threads."""

    def __init__(self, size):
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get(self, key, default=None):
        with self.lock:
            if key not in self:
                return default
            self.move_to_end(key)
            return self[key]

    def put(self, key, value):
        with self.lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


_resolved = _Bounded(RESOLVED)


def is_application_profile(model_id):
    """Whether ``model_id`` is an application inference profile's ARN."""
    return bool(_APPLICATION_PROFILE.match(model_id))


def resolve(model_id, client=None):
    """The base model id behind ``model_id``: an application profile's model (asked of Bedrock once), else its base id.

    ``client`` is a boto3 ``bedrock`` (control plane) client of the request's region; without one,
    only an ARN resolved before is known. When Bedrock will not say (no permission, an unknown
    profile), the ARN stands for itself and gets the defaults; the Converse call then says what is
    wrong with it.
    """
    if not is_application_profile(model_id):
        return base_model(model_id)
    known = _resolved.get(model_id)
    if known is not None or client is None:
        return known or model_id
    try:
        found = client.get_inference_profile(inferenceProfileIdentifier=model_id)
        arns = [model.get("modelArn") or "" for model in found.get("models") or []]
        base = without_geography(arns[0].rsplit("/", 1)[-1]) if arns and arns[0] else None
    except (ClientError, BotoCoreError) as error:
        log.warning("GetInferenceProfile failed for an application profile; it gets the default profile: %s", error)
        return model_id
    if not base:
        return model_id
    _resolved.put(model_id, base)
    return base


# --- what Bedrock refused, learnt --------------------------------------------------------------


@dataclass
class _Refusals:
    names: set = field(default_factory=set)


_learnt = _Bounded(LEARNT)


def learn(model_id, name):
    """Remember that ``model_id`` refuses the parameter ``name`` (adapt.py's names); logged the first time."""
    base = base_model(model_id)
    refusals = _learnt.get(base)
    if refusals is None:
        refusals = _Refusals()
        _learnt.put(base, refusals)
    if name not in refusals.names:
        refusals.names.add(name)
        log.warning("Bedrock refused %s for %s: it is left out of this model's requests from now on", name, base)


def learnt(model_id):
    """The parameters ``model_id`` was seen to refuse (a frozenset of adapt.py's names)."""
    refusals = _learnt.get(base_model(model_id))
    return frozenset(refusals.names) if refusals else frozenset()
