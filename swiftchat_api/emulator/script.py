"""What the emulator answers, read from the request so tests and benchmarks can steer it.

A text block of the last user message may hold one directive such as
``[[emulator words=200 delay_ms=20 fail_after=5 id=abc]]``; see the README for every key.
Everything is deterministic: the same request always gets the same reply.
"""

import base64
import json
import re
import shlex
from dataclasses import dataclass

from . import examples, frames, rules, tools

_REDACTED = b"\x00\x01redacted-by-emulator\xff"
_DIRECTIVE = re.compile(r"\[\[emulator(.*?)\]\]", re.DOTALL)  # up to the first "]]": args may hold a list
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
    tool_calls: tuple = ()  # (toolUseId, name, input as JSON text) of each call, after the text
    arg_chunk: int = 8  # characters of tool input per delta
    stop_reason: str | None = None
    cache_read: int = 0
    cache_write: int = 0


def _texts(message):
    return [block["text"] for block in message.get("content", []) if isinstance(block, dict) and "text" in block]


def _words(count, offset=0):
    return " ".join(_VOCABULARY[(offset + i) % len(_VOCABULARY)] for i in range(count))


def read_script(model_id, body):
    """Build the script for a Converse or ConverseStream request body."""
    refused = tools.problem(body)
    if refused:
        raise DirectiveError(refused)
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
    script.input_tokens = input_tokens(body)
    return script


def blocks(body):
    """(section, index, block) of every block of a Converse request in prefix order (tools, system, messages),
    with each message's role marked: what Bedrock reads, and bills, as the input."""
    for index, tool in enumerate((body.get("toolConfig") or {}).get("tools") or []):
        yield "tools", index, tool
    for block in body.get("system") or []:
        yield "system", None, block
    for message in body.get("messages") or []:
        yield "role", None, {"role": message.get("role")}
        for block in message.get("content") or []:
            yield "messages", None, block


def block_tokens(block):
    """The emulator's tokens of one block: a text's words (directives aside), else its JSON's words."""
    if "text" in block and isinstance(block["text"], str):
        return len(_TOKEN.findall(_DIRECTIVE.sub("", block["text"])))
    return len(_TOKEN.findall(json.dumps(block, sort_keys=True)))  # tools, tool use and results, images


def input_tokens(body):
    """The input tokens the emulator bills for a Converse request (its usage, and its CountTokens): the words of
    its tools, system prompt and messages, as Bedrock bills them all."""
    read = (block for section, _, block in blocks(body) if section != "role" and isinstance(block, dict))
    return sum(block_tokens(block) for block in read) or 1


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
        "count_delay_ms",  # CountTokens' (emulator/counting.py)
        "fail_after",
        "fail_with",
        "error",
        "chunk",
        "id",
        "tools",
        "args",
        "arg_chunk",
        "stop_reason",
        "cache_read",
        "cache_write",
    }
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if "error" in options and options["error"] not in REFUSALS:
        raise ValueError(f"error must be one of {sorted(REFUSALS)}")
    if options.get("stop_reason", "end_turn") not in tools.STOP_REASONS:
        raise ValueError(f"stop_reason must be one of {list(tools.STOP_REASONS)}")
    calls = tools.plan(options, body, said)
    if "reply" in options:
        reply = options["reply"]
    elif "words" in options:
        reply = _words(int(options["words"]))
    elif calls:
        reply = ""  # a reply that goes straight to its tool calls
    else:
        reply = (
            examples.output_text(body)  # a structured-output request is answered in its schema, always
            or tools.results_reply(body)
            or f"Hello from the SwiftChat Bedrock emulator ({model_id}). You said: {said or 'nothing'}"
        )
    reasoning_words = int(options.get("reasoning", 12 if _reasons(body) else 0))
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
        tool_calls=calls,
        arg_chunk=max(1, int(options.get("arg_chunk", 8))),
        stop_reason=options.get("stop_reason"),
        cache_read=int(options.get("cache_read", 0)),
        cache_write=int(options.get("cache_write", 0)),
    )


def _reasons(body):
    """Whether the request switches the model's reasoning on (Claude's thinking, Nova 2's, an effort)."""
    fields = body.get("additionalModelRequestFields") or {}
    kinds = {(fields.get(key) or {}).get("type") for key in ("thinking", "reasoning_config", "reasoningConfig")}
    return bool(kinds & {"enabled", "adaptive"}) or "reasoning_effort" in fields


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
            secret = base64.b64encode(_REDACTED).decode()
            yield script.delay, _delta(index, {"reasoningContent": {"redactedContent": secret}})
        yield (
            script.delay,
            _delta(index, {"reasoningContent": {"signature": rules.sign(script.reasoning)}}),
        )
        yield 0.0, frames.event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    output_tokens = 0
    if script.reply or not script.tool_calls:
        for piece in _pieces(script.reply, script.chunk):
            output_tokens += len(_TOKEN.findall(piece))
            yield first or script.delay, _delta(index, {"text": piece})
            first = 0.0
        yield 0.0, frames.event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    for tool_use_id, name, arguments in script.tool_calls:
        start = {"toolUse": {"toolUseId": tool_use_id, "name": name}}
        yield first or script.delay, frames.event("contentBlockStart", {"contentBlockIndex": index, "start": start})
        first = 0.0
        for at in range(0, len(arguments), script.arg_chunk):
            yield script.delay, _delta(index, {"toolUse": {"input": arguments[at : at + script.arg_chunk]}})
        output_tokens += len(_TOKEN.findall(arguments))
        yield 0.0, frames.event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    yield 0.0, frames.event("messageStop", {"stopReason": _stop_reason(script)})
    yield 0.0, frames.event("metadata", {"usage": _usage(script, output_tokens), "metrics": {"latencyMs": 42}})


def _stop_reason(script):
    return script.stop_reason or ("tool_use" if script.tool_calls else "end_turn")


def _usage(script, output_tokens):
    usage = {"inputTokens": script.input_tokens, "outputTokens": output_tokens}
    if script.cache_read:
        usage["cacheReadInputTokens"] = script.cache_read
    if script.cache_write:
        usage["cacheWriteInputTokens"] = script.cache_write
    # Bedrock's inputTokens leaves out cached tokens; its total counts them.
    return {**usage, "totalTokens": sum(usage.values())}


def _delta(index, delta):
    return frames.event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def converse_output(script):
    """The body of a non-streaming Converse answer."""
    output_tokens = len(_TOKEN.findall(script.reply))
    content = []
    if script.reasoning:
        signed = {"text": script.reasoning, "signature": rules.sign(script.reasoning)}
        content.append({"reasoningContent": {"reasoningText": signed}})
    if script.redacted:
        content.append({"reasoningContent": {"redactedContent": base64.b64encode(_REDACTED).decode()}})
    if script.reply or not script.tool_calls:
        content.append({"text": script.reply})
    for tool_use_id, name, arguments in script.tool_calls:
        content.append({"toolUse": {"toolUseId": tool_use_id, "name": name, "input": json.loads(arguments)}})
        output_tokens += len(_TOKEN.findall(arguments))
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _stop_reason(script),
        "usage": _usage(script, output_tokens),
        "metrics": {"latencyMs": 42},
    }
