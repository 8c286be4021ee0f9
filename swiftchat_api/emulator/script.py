"""What the emulator answers, read from the request so tests and benchmarks can steer it.

A text block of the last user message may hold one directive such as
``[[emulator words=200 delay_ms=20 fail_after=5 id=abc]]``; see the README for every key.
Everything is deterministic: the same request always gets the same reply.
"""

import base64
import re
import shlex
from dataclasses import dataclass

from . import frames

_DIRECTIVE = re.compile(r"\[\[emulator([^\]]*)\]\]")
_TOKEN = re.compile(r"\s*\S+")
_VOCABULARY = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dogs",
    "while",
    "streams",
    "of",
    "tokens",
    "flow",
    "from",
    "a",
    "patient",
    "model",
    "to",
    "every",
    "app",
    "that",
    "asked",
)

# error=<name> → (HTTP status, AWS error code) for a refused call.
REFUSALS = {
    "validation": (400, "ValidationException"),
    "access": (403, "AccessDeniedException"),
    "notfound": (404, "ResourceNotFoundException"),
    "throttling": (429, "ThrottlingException"),
    "internal": (500, "InternalServerException"),
    "unavailable": (503, "ServiceUnavailableException"),
    "unrecognized": (403, "UnrecognizedClientException"),
    "quota": (429, "ServiceQuotaExceededException"),
    "notready": (503, "ModelNotReadyException"),
}


def refusal(status, code, message):
    """(status, body, headers) of a refused call, as Bedrock's REST JSON errors look."""
    return status, {"message": message}, [f"x-amzn-ErrorType: {code}"]


class DirectiveError(ValueError):
    """A directive the emulator cannot follow."""


@dataclass
class Script:
    reply: str
    reasoning: str = ""
    redacted: bool = False
    delay: float = 0.0
    first_delay: float = 0.0
    header_delay: float = 0.0
    start_delay: float = 0.0
    fail_after: int | None = None
    fail_with: str = "modelStreamErrorException"
    error: str | None = None
    chunk: int = 1
    tag: str | None = None
    input_tokens: int = 0


def _texts(message):
    return [block["text"] for block in message.get("content", []) if isinstance(block, dict) and "text" in block]


def _words(count, offset=0):
    return " ".join(_VOCABULARY[(offset + i) % len(_VOCABULARY)] for i in range(count))


def read_script(model_id, body):
    """Build the script for a Converse or ConverseStream request body."""
    messages = body.get("messages") or []
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    said = " ".join(_texts(user))
    options = {}
    match = _DIRECTIVE.search(said)
    if match:
        try:
            options = dict(item.split("=", 1) for item in shlex.split(match.group(1)))
        except ValueError as error:
            raise DirectiveError(f"unreadable emulator directive: {error}") from None
        said = (said[: match.start()] + said[match.end() :]).strip()
    try:
        script = _from_options(model_id, body, said, options)
    except (TypeError, ValueError) as error:
        raise DirectiveError(f"bad emulator directive: {error}") from None
    script.input_tokens = sum(len(_TOKEN.findall(_DIRECTIVE.sub("", t))) for m in messages for t in _texts(m)) or 1
    return script


def _from_options(model_id, body, said, options):
    unknown = set(options) - {
        "words",
        "reply",
        "reasoning",
        "redacted",
        "delay_ms",
        "first_delay_ms",
        "header_delay_ms",
        "start_delay_ms",
        "fail_after",
        "fail_with",
        "error",
        "chunk",
        "id",
    }
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if "error" in options and options["error"] not in REFUSALS:
        raise ValueError(f"error must be one of {sorted(REFUSALS)}")
    if "reply" in options:
        reply = options["reply"]
    elif "words" in options:
        reply = _words(int(options["words"]))
    else:
        reply = f"Hello from the SwiftChat Bedrock emulator ({model_id}). You said: {said or 'nothing'}"
    thinking = ((body.get("additionalModelRequestFields") or {}).get("reasoning_config") or {}).get("type")
    reasoning_words = int(options.get("reasoning", 12 if thinking == "enabled" else 0))
    return Script(
        reply=reply,
        reasoning=_words(reasoning_words, offset=3),
        redacted=options.get("redacted") == "1",
        delay=int(options.get("delay_ms", 0)) / 1000,
        first_delay=int(options.get("first_delay_ms", 0)) / 1000,
        header_delay=int(options.get("header_delay_ms", 0)) / 1000,
        start_delay=int(options.get("start_delay_ms", 0)) / 1000,
        fail_after=int(options["fail_after"]) if "fail_after" in options else None,
        fail_with=options.get("fail_with", Script.fail_with),
        error=options.get("error"),
        chunk=max(1, int(options.get("chunk", 1))),
        tag=options.get("id"),
    )


def _pieces(text, chunk):
    tokens = _TOKEN.findall(text)
    return ["".join(tokens[i : i + chunk]) for i in range(0, len(tokens), chunk)]


def stream_frames(script):
    """Yield (delay before it, frame bytes) for a ConverseStream reply."""
    index = 0
    yield script.start_delay, frames.event("messageStart", {"role": "assistant"})
    first = script.first_delay
    if script.reasoning or script.redacted:
        for piece in _pieces(script.reasoning, script.chunk):
            yield first or script.delay, _delta(index, {"reasoningContent": {"text": piece}})
            first = 0.0
        if script.redacted:
            secret = base64.b64encode(b"\x00\x01redacted-by-emulator\xff").decode()
            yield script.delay, _delta(index, {"reasoningContent": {"redactedContent": secret}})
        yield (
            script.delay,
            _delta(index, {"reasoningContent": {"signature": "emulator-signature-" + str(len(script.reasoning))}}),
        )
        yield 0.0, frames.event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    output_tokens = 0
    for piece in _pieces(script.reply, script.chunk):
        output_tokens += len(_TOKEN.findall(piece))
        yield first or script.delay, _delta(index, {"text": piece})
        first = 0.0
    yield 0.0, frames.event("contentBlockStop", {"contentBlockIndex": index})
    yield 0.0, frames.event("messageStop", {"stopReason": "end_turn"})
    usage = {"inputTokens": script.input_tokens, "outputTokens": output_tokens}
    usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
    yield 0.0, frames.event("metadata", {"usage": usage, "metrics": {"latencyMs": 42}})


def _delta(index, delta):
    return frames.event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def converse_output(script):
    """The body of a non-streaming Converse answer."""
    output_tokens = len(_TOKEN.findall(script.reply))
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": script.reply}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": script.input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": script.input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 42},
    }
