"""Building and opening a Bedrock ConverseStream call from an app's chat request."""

from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import refused

DEFAULT_MAX_TOKENS = 4096

# (how the model id is matched, the text, maxTokens); the first rule that matches wins.
MAX_TOKENS = (
    ("prefix", "meta.llama", 2048),
    ("contains", "deepseek.r1", 32000),
    ("contains", "claude-opus-4", 32000),
    ("contains", "claude-3-7-sonnet", 64000),
    ("contains", "claude-sonnet-4", 64000),
)

THINKING = {"reasoning_config": {"type": "enabled", "budget_tokens": 16000}}


def max_tokens(model_id):
    """The maxTokens the original server asks for with this model."""
    for how, text, tokens in MAX_TOKENS:
        if model_id.startswith(text) if how == "prefix" else text in model_id:
            return tokens
    return DEFAULT_MAX_TOKENS


def command(request):
    """The ConverseStream arguments for a validated chat request."""
    args = {
        "modelId": request["modelId"],
        "messages": request["messages"],
        "inferenceConfig": {"maxTokens": max_tokens(request["modelId"])},
    }
    if request.get("system") is not None:
        args["system"] = request["system"]
    if request.get("enableThinking"):
        args["additionalModelRequestFields"] = THINKING
    return args


def open_stream(client, args):
    """Make the ConverseStream call and return boto3's event stream; StreamRefused if Bedrock refuses it.

    Bedrock answers the call itself with its HTTP status before any event, so a refusal (after
    botocore's bounded retries) has a real status; how long it may take is the relay's bound.
    """
    try:
        return client.converse_stream(**args)["stream"]
    except (ClientError, BotoCoreError) as error:
        raise refused(error) from None
