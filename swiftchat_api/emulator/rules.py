"""What real Bedrock refuses in a Converse request, per model family, in its words (ValidationException).

The emulator's own account of Bedrock, written from Bedrock's and the providers' documentation
and from users' reports of real refusals (the server's model profile is not consulted: tests
would then only prove the server agrees with itself). Where a report quotes Bedrock, the
message here is that quote:
- "The model returned the following errors: `temperature` and `top_p` cannot both be specified
  for this model. Please use only one." (Claude Opus 4.1, the 4.5 generation and 4.6:
  langfuse#9882, skydiscover#15); "`temperature` is deprecated for this model." (Opus 4.7, 4.8 and
  later: promptfoo#10307, zeroclaw#6095, anything-llm#5821).
- Thinking: "temperature may only be set to 1 when thinking is enabled." (aider#3720), "top_p
  must be unset when thinking is enabled." (Claude 3.7: n8n#14288), "`top_k` must be unset when
  thinking is enabled." (quarkus-langchain4j#1812), "Thinking may not be enabled when
  tool_choice forces tool use.", and the signed-thinking rule of a tool loop (opencode#3077).
- "stop_sequences: each stop sequence must contain non-whitespace" (litellm#3286).
- "This model doesn't support tool use." (DeepSeek R1: langchain-aws#447), "This model doesn't
  support the toolConfig.toolChoice.any field. Remove toolConfig.toolChoice.any and try again."
- "output_config.format: Extra inputs are not permitted" (structured output on a Claude that has
  none: hindsight#3300); "Malformed input request: #: extraneous key [x] is not permitted" (the
  other families' validators).
Messages marked "(emulator's wording)" stand where no report quotes Bedrock.
"""

import base64
import hashlib
from dataclasses import dataclass

from . import catalogue, formats

_MODEL_SAYS = "The model returned the following errors: "
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
_THINKING_DOCS = (
    "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)


@dataclass(frozen=True)
class Model:
    """What one model takes, as Bedrock enforces it."""

    family: str  # claude, nova, llama, deepseek-r1, deepseek, gpt-oss, refuses-temperature, other
    thinking: tuple = ()  # claude: "enabled", "adaptive"
    top_p_while_thinking: float | None = None  # the lowest top_p taken while thinking; None: no top_p
    one_sampler: bool = False  # temperature and top_p cannot both be given
    no_sampling: bool = False  # temperature, top_p and top_k are deprecated
    efforts: tuple = ()  # outputConfig.effort levels taken
    structured: bool = False  # outputConfig.textFormat taken
    tools: bool = True
    forced_tools: bool = True  # toolChoice any / tool taken
    extra: tuple = ()  # the additionalModelRequestFields keys a non-Claude validator takes


_CLAUDE_35 = Model("claude")
_CLAUDE_37 = Model("claude", thinking=("enabled",))
_CLAUDE_4 = Model("claude", thinking=("enabled",), top_p_while_thinking=0.95)
_CLAUDE_45 = Model("claude", thinking=("enabled",), top_p_while_thinking=0.95, one_sampler=True, structured=True)
_CLAUDE_47 = Model("claude", thinking=("adaptive",), no_sampling=True, efforts=_EFFORTS, structured=True)
_NOVA = Model("nova", extra=("inferenceConfig",))

# (start of the base model id, its rules); the first that matches wins; other ids take anything.
_MODELS = (
    ("anthropic.claude-3-7-sonnet", _CLAUDE_37),
    ("anthropic.claude-3", _CLAUDE_35),
    ("anthropic.claude-sonnet-4-5", _CLAUDE_45),
    ("anthropic.claude-haiku-4-5", _CLAUDE_45),
    ("anthropic.claude-opus-4-1", Model("claude", thinking=("enabled",), top_p_while_thinking=0.95, one_sampler=True)),
    ("anthropic.claude-opus-4-5", Model("claude", thinking=("enabled",), top_p_while_thinking=0.95, one_sampler=True,
                                        efforts=_EFFORTS[:3], structured=True)),
    ("anthropic.claude-opus-4-6", Model("claude", thinking=("enabled", "adaptive"), top_p_while_thinking=0.95,
                                        one_sampler=True, efforts=("low", "medium", "high", "max"), structured=True)),
    ("anthropic.claude-sonnet-4-6", Model("claude", thinking=("enabled", "adaptive"), top_p_while_thinking=0.95,
                                          one_sampler=True, efforts=("low", "medium", "high", "max"), structured=True)),
    ("anthropic.claude-sonnet-4", _CLAUDE_4),
    ("anthropic.claude-opus-4-7", _CLAUDE_47),
    # Opus 4.8 and Fable 5 refuse temperature as 4.7 does (anything-llm#5821, opensearch-build#6330, pr-agent#2456).
    ("anthropic.claude-opus-4-8", _CLAUDE_47),
    ("anthropic.claude-opus-4", _CLAUDE_4),
    ("anthropic.claude-opus-5", _CLAUDE_47),
    ("anthropic.claude-sonnet-5", _CLAUDE_47),
    ("anthropic.claude-fable-5", _CLAUDE_47),
    ("anthropic.claude-v2", Model("claude", tools=False)),
    ("amazon.nova-2-", Model("nova", extra=("inferenceConfig", "reasoningConfig"))),
    ("amazon.nova-", _NOVA),
    ("meta.llama", Model("llama", forced_tools=False)),
    ("deepseek.r1", Model("deepseek-r1", tools=False)),
    ("deepseek.v3", Model("deepseek", extra=("reasoning_effort",), structured=True)),
    ("openai.gpt-oss", Model("gpt-oss", extra=("reasoning_effort",), structured=True)),
    # Bedrock's structured output launch names "select Mistral" models: Large 3 among them (langchain-aws#883).
    ("mistral.mistral-large-3", Model("mistral", structured=True)),
    ("mistral.", Model("mistral")),
    # Models the server's profile has never heard of (example.frontier-1-v1:0 …), that refuse temperature
    # as new Claude models do.
    (catalogue.UNLISTED_MODEL.rsplit("-", 2)[0] + "-", Model("refuses-temperature")),
)  # fmt: skip


def model_rules(model_id):
    """(the rules of the model behind ``model_id``, None) or (None, Bedrock's refusal of the id)."""
    if model_id.startswith("arn:"):
        base = catalogue.application_profile_model(model_id)
        if base is None:
            return None, "The provided model identifier is invalid."
    else:
        base = catalogue.without_geography(model_id)
    return next((rules for start, rules in _MODELS if base.startswith(start)), Model("other")), None


def sign(text):
    """The signature the emulator puts on a thinking block: only that text carries it."""
    return "emu1." + base64.urlsafe_b64encode(hashlib.sha256(b"emulator-thinking|" + text.encode()).digest()).decode()


def problem(model_id, body):
    """Bedrock's ValidationException message for this Converse request, or None if Bedrock takes it."""
    rules, refused = model_rules(model_id)
    if refused:
        return refused
    for check in (_tools, _output, _claude if rules.family == "claude" else _extra, _sampling):
        found = check(rules, body)
        if found:
            return found
    return None


def _unsupported(field):
    return f"This model doesn't support the {field} field. Remove {field} and try again."


def _malformed(what):
    return f"Malformed input request: {what}, please reformat your input and try again."


def _tools(rules, body):
    config = body.get("toolConfig")
    if not config:
        return None
    if not rules.tools:
        return "This model doesn't support tool use."
    for kind in ("any", "tool"):
        if kind in (config.get("toolChoice") or {}) and not rules.forced_tools:
            return (
                f"This model doesn't support the toolConfig.toolChoice.{kind} field. "
                f"Remove toolConfig.toolChoice.{kind} and try again."
            )
    return None


def _thinking(body):
    """Claude's thinking config as sent (under "thinking" or "reasoning_config"), or None."""
    fields = body.get("additionalModelRequestFields") or {}
    found = fields.get("thinking", fields.get("reasoning_config"))
    return found if isinstance(found, dict) else None


def _thinks(body):
    return (_thinking(body) or {}).get("type") in ("enabled", "adaptive")


def _output(rules, body):
    config = body.get("outputConfig") or {}
    if rules.family == "other":  # a model the emulator does not model takes what it is sent
        return None
    if "textFormat" in config and not rules.structured:
        if rules.family == "claude":
            return _MODEL_SAYS + "output_config.format: Extra inputs are not permitted"
        return _unsupported("outputConfig.textFormat")
    if "textFormat" in config and rules.family == "claude":
        found = formats.claude_refusal(config)
        if found:
            return _MODEL_SAYS + found
    effort = config.get("effort")
    if effort is None:
        return None
    if not rules.efforts:
        if rules.family == "claude":
            return _MODEL_SAYS + "output_config.effort: Extra inputs are not permitted"
        return _unsupported("outputConfig.effort")
    if effort not in rules.efforts:
        allowed = ", ".join(f"'{level}'" for level in rules.efforts)
        return _MODEL_SAYS + f"output_config.effort: Input should be {allowed}"
    if effort in ("xhigh", "max") and not _thinks(body):
        # Anthropic: above high, effort needs thinking (emulator's wording).
        return _MODEL_SAYS + f"output_config.effort: '{effort}' requires thinking to be enabled."
    return None


def _claude(rules, body):
    fields = body.get("additionalModelRequestFields") or {}
    for key in fields:
        if key not in ("thinking", "reasoning_config", "top_k", "anthropic_beta"):
            return _MODEL_SAYS + f"{key}: Extra inputs are not permitted"
    thinking = _thinking(body)
    kind = (thinking or {}).get("type")
    inference = body.get("inferenceConfig") or {}
    if thinking is not None:
        found = _thinking_shape(rules, thinking, kind, inference)
        if found:
            return found
    for stop in inference.get("stopSequences") or []:
        if not stop.strip():
            return _MODEL_SAYS + "stop_sequences: each stop sequence must contain non-whitespace"
    if kind in ("enabled", "adaptive"):
        found = _while_thinking(rules, body, kind, inference, fields)
        if found:
            return found
    return _signatures(body)


def _thinking_shape(rules, thinking, kind, inference):
    if not rules.thinking:
        return _MODEL_SAYS + "thinking: Extra inputs are not permitted"
    if kind not in ("enabled", "adaptive", "disabled"):
        tags = "'enabled', 'disabled', 'adaptive'"
        return _MODEL_SAYS + f"thinking.type: Input tag does not match any of the expected tags: {tags}"
    if kind == "adaptive" and "adaptive" not in rules.thinking:
        return _MODEL_SAYS + "thinking.type: adaptive thinking is not supported on this model"  # emulator's wording
    if kind in ("enabled", "disabled") and rules.thinking == ("adaptive",):
        # Bedrock's guide: manual and disabled thinking on these models "will return a 400 error" (emulator's wording).
        advice = "Use 'adaptive' with output_config.effort."
        return _MODEL_SAYS + f"thinking.type: '{kind}' is not supported for this model. {advice}"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return _MODEL_SAYS + "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= (inference.get("maxTokens") or 0):
            where = _THINKING_DOCS + "#max-tokens-and-context-window-size"
            return _MODEL_SAYS + "`max_tokens` must be greater than `thinking.budget_tokens`. " + where
    return None


def _while_thinking(rules, body, kind, inference, fields):
    temperature = inference.get("temperature")
    if temperature is not None and temperature != 1:
        mode = "when thinking is enabled or in adaptive mode" if kind == "adaptive" else "when thinking is enabled"
        return _MODEL_SAYS + f"temperature may only be set to 1 {mode}."
    top_p = inference.get("topP")
    if top_p is not None:
        if rules.top_p_while_thinking is None:
            return _MODEL_SAYS + "top_p must be unset when thinking is enabled."
        if top_p < rules.top_p_while_thinking:
            return _MODEL_SAYS + "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
    if "top_k" in fields:
        return _MODEL_SAYS + "`top_k` must be unset when thinking is enabled. " + _THINKING_DOCS
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    if "any" in choice or "tool" in choice:
        return _MODEL_SAYS + "Thinking may not be enabled when tool_choice forces tool use."
    messages = body.get("messages") or []
    # In a tool loop, the assistant turn that called the tools must start with its (signed) thinking.
    if len(messages) >= 2 and any("toolResult" in block for block in messages[-1].get("content") or []):
        index = len(messages) - 2
        first = (messages[index].get("content") or [{}])[0]
        if "reasoningContent" not in first:
            found = "tool_use" if "toolUse" in first else "text"
            return _MODEL_SAYS + (
                f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. "
                "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. " + _THINKING_DOCS
            )
    return None


def _signatures(body):
    """A thinking block sent back must be one the model wrote: its signature matches its text."""
    for i, message in enumerate(body.get("messages") or []):
        for j, block in enumerate(message.get("content") or []):
            text = (block.get("reasoningContent") or {}).get("reasoningText") if isinstance(block, dict) else None
            if text is None:
                continue
            if not text.get("signature"):
                return _MODEL_SAYS + f"messages.{i}.content.{j}.thinking.signature: Field required"
            if text["signature"] != sign(text.get("text") or ""):
                return _MODEL_SAYS + f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    return None


def _extra(rules, body):
    """The other families' validators take only the additional fields they know."""
    if rules.family == "other":
        return None
    fields = body.get("additionalModelRequestFields") or {}
    for key in fields:
        if key not in rules.extra:
            return _malformed(f"#: extraneous key [{key}] is not permitted")
    effort = fields.get("reasoning_effort")
    if effort is not None and effort not in ("low", "medium", "high"):
        return _MODEL_SAYS + "reasoning_effort: Input should be 'low', 'medium' or 'high'"
    reasoning = fields.get("reasoningConfig")
    if reasoning is not None:
        if reasoning.get("type") not in ("enabled", "disabled") or (
            reasoning.get("type") == "enabled" and reasoning.get("maxReasoningEffort") not in ("low", "medium", "high")
        ):
            shape = "type enabled or disabled, maxReasoningEffort low, medium or high"
            return _malformed(f"#/reasoningConfig: expected {shape}")  # emulator's wording
        inference = body.get("inferenceConfig") or {}
        if reasoning.get("maxReasoningEffort") == "high" and set(inference) & {"maxTokens", "temperature", "topP"}:
            # Nova 2: at high effort the model sets these itself (emulator's wording).
            return "maxTokens, temperature and topP must not be set when reasoningConfig.maxReasoningEffort is high."
    return None


def _sampling(rules, body):
    inference = body.get("inferenceConfig") or {}
    fields = body.get("additionalModelRequestFields") or {}
    if (rules.no_sampling or rules.family == "refuses-temperature") and "temperature" in inference:
        return _MODEL_SAYS + "`temperature` is deprecated for this model."
    if rules.no_sampling:
        if "topP" in inference:
            return _MODEL_SAYS + "`top_p` is deprecated for this model."
        if "top_k" in fields:
            return _MODEL_SAYS + "`top_k` is deprecated for this model."
    if rules.one_sampler and "temperature" in inference and "topP" in inference:
        return _MODEL_SAYS + "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    return None
