"""Building and opening a Bedrock ConverseStream call from an app's chat request."""

from botocore.exceptions import BotoCoreError, ClientError

from .. import adapt, prompt_cache
from ..exceptions import refused
from ..profile import profile

# What the original server asks for with enableThinking; a Claude that thinks by budget still gets it.
THINKING = {"reasoning_config": {"type": "enabled", "budget_tokens": 16000}}


def thinking_fields(model_id):
    """The additionalModelRequestFields that switch this model's reasoning on for ``enableThinking``, or None.

    Claude models that think only adaptively (Opus 4.7 and later) refuse a budget; Nova 2,
    gpt-oss and DeepSeek V3 reason at an effort; a model known not to reason (or that always
    does) is sent none, as Bedrock would refuse it; a model nobody listed gets the original's.
    """
    found = profile(model_id)
    if found.reasoning == "claude":
        return {"thinking": {"type": "adaptive"}} if found.adaptive_only else THINKING
    if found.reasoning == "nova2":
        return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}
    if found.reasoning in ("gpt-oss", "deepseek"):
        return {"reasoning_effort": "medium"}
    return None if found.known else THINKING


def command(request, cache="off"):
    """The ConverseStream arguments for a validated chat request; ``cache`` is SWIFTCHAT_PROMPT_CACHE."""
    args = {
        "modelId": request["modelId"],
        "messages": request["messages"],
        "inferenceConfig": {"maxTokens": profile(request["modelId"]).max_tokens},
    }
    if request.get("system") is not None:
        args["system"] = request["system"]
    thinking = thinking_fields(request["modelId"]) if request.get("enableThinking") else None
    if thinking:
        args["additionalModelRequestFields"] = thinking
    if cache == "auto":
        prompt_cache.place(args)
    return args


def open_stream(client, args):
    """Make the ConverseStream call and return boto3's event stream; StreamRefused if Bedrock refuses it.

    Bedrock answers the call itself with its HTTP status before any event, so a refusal (after
    botocore's bounded retries) has a real status; how long it may take is the relay's bound. A
    refusal of a parameter by name is learnt, and the call made once more without it (adapt.py).
    """
    try:
        return adapt.call(client.converse_stream, args)["stream"]
    except (ClientError, BotoCoreError) as error:
        raise refused(error) from None
