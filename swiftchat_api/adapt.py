"""A Converse request fitted to its model's profile, every change said; and what Bedrock refuses, learnt.

``apply`` turns what a caller asked for (``Wants``) into the inference config and the reasoning
fields the model takes: it drops what thinking forbids, keeps one of temperature and top_p
where the model takes one, drops whitespace-only stop sequences and what the model was seen to
refuse, maps ``reasoning_effort`` and ``thinking`` onto the model's own reasoning switch. Each
change is a note on the ``Adapted`` arguments, which /v1 answers in ``x-swiftchat-adapted``.

``call`` makes the Bedrock call; when Bedrock refuses it with a ValidationException that names a
parameter the request carries, the parameter is left out, remembered for the model (profile.py)
and the call made once more: a model nobody listed works on the day it launches.
"""

import re
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from . import profile as profiles
from .exceptions import ApiError

ADAPTED_HEADER = "x-swiftchat-adapted"

# reasoning_effort → share of maxTokens given to a Claude thinking budget (never under 1,024).
EFFORT_SHARE = {"minimal": 0.0, "low": 0.25, "medium": 0.5, "high": 0.75, "xhigh": 0.85, "max": 0.9}
_LEVELS = ("low", "medium", "high")  # the effort levels of Nova 2, gpt-oss and DeepSeek


class Adapted(dict):
    """boto3 Converse keyword arguments, with ``notes``: what was changed from the request to fit the model."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = []

    def note(self, text):
        """Record one change, once."""
        if text not in self.notes:
            self.notes.append(text)


def header_value(args):
    """The ``x-swiftchat-adapted`` value for these arguments' notes, or None when nothing changed."""
    notes = getattr(args, "notes", None)
    return "; ".join(notes) if notes else None


@dataclass
class Wants:
    """What the caller asked for, before the model's rules."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list = field(default_factory=list)
    effort: str | None = None  # reasoning_effort; "none" asks for no reasoning
    thinking: dict | None = None  # {"type": "enabled"|"adaptive"|"disabled", "budget_tokens": n}
    forced_tool: bool = False  # toolChoice any or tool
    unsigned_tool_turn: bool = False  # the last assistant turn called tools but came back without its thinking


def _refuse(message, param):
    raise ApiError(400, message, param=param, code="unsupported_parameter")


def _down_to(level, levels):
    """The highest of ``levels`` (lowest first) that is not above ``level``; the lowest if none is."""
    order = profiles.EFFORTS
    rank = order.index(level) if level in order else len(order)
    below = [each for each in levels if order.index(each) <= rank]
    return below[-1] if below else levels[0]


def _lowest_is_low(effort):
    """OpenAI's ``minimal`` as the lowest level Bedrock's models name, ``low``; any other effort as it is."""
    return "low" if effort == "minimal" else effort


def _level(effort, levels, args, why):
    """The level of ``levels`` that stands for reasoning_effort ``effort``, a note when it is another."""
    wanted = _lowest_is_low(effort)
    level = wanted if wanted in levels else _down_to(wanted, levels)
    if level != effort and effort != "minimal":
        args.note(f"reasoning_effort {effort} sent as {level} ({why})")
    return level


@dataclass
class _Plan:
    """The reasoning part of a request, decided before the sampling parameters are fitted."""

    fields: dict = field(default_factory=dict)  # additionalModelRequestFields
    effort: str | None = None  # outputConfig.effort
    thinking: bool = False  # Claude thinks on this call
    no_max_tokens: bool = False  # Nova 2 at high effort takes no maxTokens, temperature or topP


def _effort_asked(wants):
    return wants.effort if wants.effort not in (None, "none") else None


def _claude(found, wants, ceiling, args):
    plan = _Plan()
    effort = _effort_asked(wants)
    asked = wants.thinking
    kind = asked["type"] if asked else ("adaptive" if "adaptive" in found.thinking else "enabled") if effort else None
    if kind == "disabled":
        kind = None
    if kind == "enabled" and "enabled" not in found.thinking:
        args.note("thinking adaptive, not by budget (the model thinks only adaptively)")
        kind = "adaptive"
    elif kind == "adaptive" and "adaptive" not in found.thinking:
        args.note("thinking by budget, not adaptive (the model has no adaptive thinking)")
        kind = "enabled"
    if kind and wants.forced_tool:
        args.note("thinking off (Claude does not think when tool_choice forces a tool)")
        kind = None
    if kind and wants.unsigned_tool_turn:
        args.note("thinking off (the assistant's tool calls came back without their thinking_blocks)")
        kind = None
    if kind == "enabled":
        budget = (asked or {}).get("budget_tokens") if (asked or {}).get("type") == "enabled" else None
        if budget is not None:
            if budget >= ceiling:
                _refuse("thinking.budget_tokens must be below max_tokens (Claude's rule).", "thinking.budget_tokens")
        else:
            budget = max(profiles.MIN_THINKING_BUDGET, int(ceiling * EFFORT_SHARE[effort or "medium"]))
            if budget >= ceiling:
                _refuse(f"Thinking needs max_tokens above {profiles.MIN_THINKING_BUDGET}.", "max_tokens")
        plan.fields["reasoning_config"] = {"type": "enabled", "budget_tokens": budget}
    elif kind == "adaptive":
        if (asked or {}).get("budget_tokens") is not None:
            args.note("thinking.budget_tokens dropped (the model thinks adaptively, by effort)")
        plan.fields["thinking"] = {"type": "adaptive"}
    plan.thinking = kind is not None
    if effort and found.efforts:
        levels = found.efforts if plan.thinking else tuple(e for e in found.efforts if e in _LEVELS)
        why = "the most the model takes" + ("" if plan.thinking else " without thinking")
        plan.effort = _level(effort, levels, args, why)
    return plan


def _by_effort(found, wants, args):
    """Nova 2, gpt-oss, DeepSeek V3: an effort level switches reasoning on."""
    plan = _Plan()
    effort = _effort_asked(wants)
    asked = (wants.thinking or {}).get("type")
    if not effort and asked in ("enabled", "adaptive"):
        args.note("thinking sent as reasoning effort medium (the model takes an effort, not a budget)")
        effort = "medium"
    if not effort or asked == "disabled":
        return plan
    level = _level(effort, _LEVELS, args, "the most the model takes")
    if found.reasoning == "nova2":
        plan.fields["reasoningConfig"] = {"type": "enabled", "maxReasoningEffort": level}
        plan.no_max_tokens = level == "high"
    else:
        plan.fields["reasoning_effort"] = level
    return plan


def _reasoning(found, wants, ceiling, args):
    if found.reasoning == "claude":
        return _claude(found, wants, ceiling, args)
    if found.reasoning in ("nova2", "gpt-oss", "deepseek"):
        return _by_effort(found, wants, args)
    plan = _Plan()
    kind = (wants.thinking or {}).get("type")
    effort = _effort_asked(wants)
    if not found.known:  # a model nobody listed: sent as asked; a refusal is learnt
        if wants.thinking is not None:
            plan.fields["thinking"] = dict(wants.thinking)
        if effort:
            plan.effort = _lowest_is_low(effort)
        return plan
    if found.reasoning == "always":
        if effort or kind:
            args.note("reasoning_effort and thinking left out (the model always reasons)")
        return plan
    if kind in ("enabled", "adaptive"):
        _refuse("This model does not think: leave thinking out, or choose a model that does.", "thinking")
    if effort:
        args.note(f"reasoning_effort {effort} dropped (the model does not reason)")
    return plan


def _fit_sampling(found, wants, plan, args):
    """(temperature, top_p, top_k) as the model takes them with this plan; a note for each dropped."""
    temperature, top_p, top_k = wants.temperature, wants.top_p, wants.top_k
    if plan.thinking:
        if temperature is not None and temperature != 1:
            args.note("temperature dropped (Claude takes only temperature 1 while thinking)")
            temperature = None
        if top_k is not None:
            args.note("top_k dropped (Claude takes no top_k while thinking)")
            top_k = None
        if top_p is not None and (found.thinking_top_p is None or top_p < found.thinking_top_p):
            floor = found.thinking_top_p
            why = f"below {floor} while thinking" if floor else "the model takes no top_p while thinking"
            args.note(f"top_p dropped ({why})")
            top_p = None
    if plan.no_max_tokens:
        for name, value in (("temperature", temperature), ("top_p", top_p)):
            if value is not None:
                args.note(f"{name} dropped (Nova 2 takes none at high reasoning effort)")
        temperature = top_p = None
    if found.sampling == "none":
        for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
            if value is not None:
                args.note(f"{name} dropped (the model takes no sampling parameters)")
        temperature = top_p = top_k = None
    elif found.sampling == "one" and temperature is not None and top_p is not None:
        args.note("top_p dropped (the model takes temperature or top_p, not both)")
        top_p = None
    if top_k is not None and found.top_k is None:
        args.note("top_k dropped (the model takes no top_k)")
        top_k = None
    return temperature, top_p, top_k


def _put(fields, path, value):
    *parents, last = path.split(".")
    for name in parents:
        fields = fields.setdefault(name, {})
    fields[last] = value


def apply(args, wants):
    """Fill ``args`` (Adapted, with modelId) with the inference config and reasoning fields its model takes."""
    found = profiles.profile(args["modelId"])
    ceiling = wants.max_tokens or found.max_tokens
    plan = _reasoning(found, wants, ceiling, args)
    temperature, top_p, top_k = _fit_sampling(found, wants, plan, args)
    inference = {}
    if plan.no_max_tokens:
        if wants.max_tokens:
            args.note("max_tokens dropped (Nova 2 takes none at high reasoning effort)")
    else:
        inference["maxTokens"] = ceiling
    if temperature is not None:
        inference["temperature"] = temperature
    if top_p is not None:
        inference["topP"] = top_p
    stops = [stop for stop in wants.stop if stop.strip()]
    if len(stops) < len(wants.stop):
        args.note("stop: whitespace-only sequences dropped (Bedrock refuses them)")
    if stops:
        inference["stopSequences"] = stops
    if inference:
        args["inferenceConfig"] = inference
    else:
        args.pop("inferenceConfig", None)
    fields = {**(args.get("additionalModelRequestFields") or {}), **plan.fields}
    if top_k is not None:
        _put(fields, found.top_k or "top_k", top_k)
    if fields:
        args["additionalModelRequestFields"] = fields
    if plan.effort:
        args["outputConfig"] = {**(args.get("outputConfig") or {}), "effort": plan.effort}
    _fit_messages(found, args)
    for name in sorted(profiles.learnt(args["modelId"])):
        if _applies(name, args) and _remove(args, name.partition("|")[0]):
            args.note(f"{_SHOWN[name.partition('|')[0]]} dropped (Bedrock refused it for this model before)")
    return args


def _fit_messages(found, args):
    """Tool choice and reasoning blocks in the history, as the model takes them."""
    config = args.get("toolConfig") or {}
    choice = config.get("toolChoice") or {}
    if ("any" in choice or "tool" in choice) and not found.tool_choice:
        args["toolConfig"] = {key: value for key, value in config.items() if key != "toolChoice"}
        args.note("tool_choice sent as auto (the model cannot be made to call a tool)")
    if found.known and found.reasoning != "claude":
        dropped = False
        for message in args.get("messages") or []:
            kept = [block for block in message["content"] if "reasoningContent" not in block]
            if len(kept) < len(message["content"]) and kept:
                message["content"], dropped = kept, True
        if dropped:
            args.note("thinking_blocks left out (only Claude takes its thinking back)")


# --- learning what Bedrock refuses --------------------------------------------------------------

# Where each parameter a refusal may name sits in the Converse arguments.
_PLACES = {
    "temperature": (("inferenceConfig", "temperature"),),
    "top_p": (("inferenceConfig", "topP"),),
    "top_k": (("additionalModelRequestFields", "top_k"), ("additionalModelRequestFields", "inferenceConfig", "topK")),
    "stop": (("inferenceConfig", "stopSequences"),),
    "effort": (("outputConfig", "effort"),),
    "thinking": (("additionalModelRequestFields", "thinking"), ("additionalModelRequestFields", "reasoning_config")),
    "reasoning": (
        ("additionalModelRequestFields", "reasoning_effort"),
        ("additionalModelRequestFields", "reasoningConfig"),
    ),
}
_SHOWN = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "stop": "stop",
          "effort": "reasoning_effort", "thinking": "thinking", "reasoning": "reasoning_effort"}  # fmt: skip
# The names Bedrock and the providers give them.
_ALIASES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "topp": "top_p",
    "top_k": "top_k",
    "topk": "top_k",
    "inferenceconfig.topk": "top_k",
    "stop_sequences": "stop",
    "stopsequences": "stop",
    "inferenceconfig.stopsequences": "stop",
    "effort": "effort",
    "output_config.effort": "effort",
    "outputconfig.effort": "effort",
    "thinking": "thinking",
    "reasoning_config": "thinking",
    "reasoning_effort": "reasoning",
    "reasoningconfig": "reasoning",
}
_NAME = r"`?([A-Za-z_][\w.]*)`?"
# (pattern, what the refused parameter depends on: None, "thinking", or the group of the other
# parameter it cannot come with); the parameter is the pattern's first group.
_REFUSALS = (
    (re.compile(_NAME + r" and `?([A-Za-z_]\w*)`? cannot both be specified"), "pair"),
    (
        re.compile(
            _NAME + r" (?:may only be set to 1|must be unset|must be greater than or equal to [\d.]+ or unset)"
            r"[^.]*when thinking is enabled"
        ),
        "thinking",
    ),  # fmt: skip
    (re.compile(_NAME + r" is deprecated for this model"), None),
    (re.compile(r"extraneous key \[([\w.]+)\] is not permitted"), None),
    (re.compile(r"([\w.]+): Extra inputs are not permitted"), None),
    (re.compile(r"doesn't support the ([\w.]+) field"), None),
    (re.compile(_NAME + r" is not supported (?:for|by|on|with) this model"), None),
)


def refused_parameter(message):
    """The parameter (adapt's name, with ``|thinking`` or ``|temperature`` when it depends on it) a refusal names."""
    for pattern, depends in _REFUSALS:
        found = pattern.search(message)
        if not found:
            continue
        if depends == "pair":
            first, second = (_ALIASES.get(name.lower()) for name in found.groups())
            # Keep the first (temperature, in Claude's words); the second goes while the first is there.
            return f"{second}|{first}" if first and second else None
        name = _ALIASES.get(found.group(1).lower())
        if name:
            return f"{name}|thinking" if depends == "thinking" else name
    return None


def _thinks(args):
    fields = args.get("additionalModelRequestFields") or {}
    return any(
        (fields.get(key) or {}).get("type") in ("enabled", "adaptive") for key in ("thinking", "reasoning_config")
    )


def _applies(name, args):
    condition = name.partition("|")[2]
    if condition == "thinking":
        return _thinks(args)
    if condition:
        return any(_find(args, path) for path in _PLACES[condition])
    return True


def _find(args, path):
    value = args
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def _remove(args, name):
    """Leave parameter ``name`` out of ``args``; whether it was there."""
    removed = False
    for path in _PLACES[name]:
        parents = [args]
        for key in path[:-1]:
            child = parents[-1].get(key) if isinstance(parents[-1], dict) else None
            if not isinstance(child, dict):
                break
            parents.append(child)
        else:
            if path[-1] in parents[-1]:
                del parents[-1][path[-1]]
                removed = True
                for parent, key in zip(reversed(parents[:-1]), reversed(path[:-1]), strict=True):
                    if not parent[key]:  # an emptied config goes too: Bedrock refuses some empty ones
                        del parent[key]
    return removed


def relearn(args, error):
    """Whether ``error`` is a refusal of a parameter ``args`` carries: then it is left out and remembered."""
    if not isinstance(error, ClientError) or error.response.get("Error", {}).get("Code") != "ValidationException":
        return False
    name = refused_parameter(error.response.get("Error", {}).get("Message") or "")
    if not name or not _applies(name, args):
        return False
    plain = name.partition("|")[0]
    if not _remove(args, plain):
        return False
    profiles.learn(args["modelId"], name)
    if isinstance(args, Adapted):
        args.note(f"{_SHOWN[plain]} dropped (Bedrock refused it for this model; remembered)")
    return True


def call(operation, args):
    """``operation(**args)``, made once more without a parameter Bedrock refused by name (and that refusal learnt)."""
    try:
        return operation(**args)
    except ClientError as error:
        if not relearn(args, error):
            raise
    return operation(**args)
