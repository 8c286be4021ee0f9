"""Building and opening a Bedrock ConverseStream call from an app's chat request."""

import gevent
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StreamRefused, refused

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


class Upstream:
    """A started ConverseStream whose first event has already arrived."""

    def __init__(self, stream, events, first):
        self._stream = stream
        self._events = events
        self._first = first

    def __iter__(self):
        yield self._first
        yield from self._events

    def close(self):
        self._stream.close()


def open_stream(client, args, timeout):
    """Start the call and wait for its first event; StreamRefused if Bedrock says no, or not in time.

    Waiting for the first event lets a refusal that Bedrock sends as the stream's first frame
    (throttling, validation) still be answered with a real HTTP status.
    """
    # gevent.Timeout is a BaseException, so botocore's retry loop cannot swallow it.
    deadline = gevent.Timeout(timeout)
    stream = None
    try:
        with deadline:
            stream = client.converse_stream(**args)["stream"]
            events = iter(stream)
            return Upstream(stream, events, next(events))
    except gevent.Timeout as expired:
        if expired is not deadline:
            raise
        failure = StreamRefused(504, f"Bedrock did not start answering within {timeout:g} s.")
    except (ClientError, BotoCoreError) as error:
        failure = refused(error)
    except StopIteration:
        failure = StreamRefused(502, "Bedrock ended the stream before its first event.")
    if stream is not None:
        stream.close()
    raise failure
