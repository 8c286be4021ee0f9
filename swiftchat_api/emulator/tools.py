"""Tool use as the emulator plays it: what Bedrock checks about a conversation, and the calls a reply makes.

A model can call only the tools the request offers (``toolConfig``), and must call one when
``toolChoice`` says so; the directive ``tools=a,b`` says which offered tools the reply calls.
Messages never quote the caller's ids or text, so an error answer echoes nothing.
"""

import base64
import hashlib
import json

from . import examples

STOP_REASONS = (
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop_sequence",
    "guardrail_intervened",
    "content_filtered",
    "malformed_model_output",
    "malformed_tool_use",
    "model_context_window_exceeded",
)


def _blocks(message, kind):
    return [block[kind] for block in message.get("content") or [] if isinstance(block, dict) and kind in block]


def _ids(message, kind):
    return [block.get("toolUseId") for block in _blocks(message, kind) if isinstance(block, dict)]


def problem(body):
    """What Bedrock refuses (ValidationException) about a request's messages and tools, or None."""
    messages = body.get("messages") or []
    for i, message in enumerate(messages):
        if i == 0 and message.get("role") != "user":
            return (
                "A conversation must start with a user message. Try again with a conversation that starts "
                "with a user message."
            )
        if i and message.get("role") == messages[i - 1].get("role"):
            return (
                "A conversation must alternate between user and assistant roles. Make sure the conversation "
                "alternates between user and assistant roles and try again."
            )
    try:
        examples.output_schema(body)
    except ValueError:
        return "The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema is not a valid JSON object."
    config = body.get("toolConfig")
    if not config and any(_blocks(m, "toolUse") or _blocks(m, "toolResult") for m in messages):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    for i, message in enumerate(messages):
        asked = _ids(messages[i - 1], "toolUse") if i and message.get("role") == "user" else []
        answered = _ids(message, "toolResult")
        if any(result not in asked for result in answered) or len(set(answered)) != len(answered):
            return (
                f"messages.{i}.content: each toolResult block must answer a toolUse block of the previous "
                "(assistant) message, once."
            )
        if asked and set(asked) - set(answered):
            return f"Expected toolResult blocks at messages.{i}.content for every toolUse block of messages.{i - 1}."
    if config:
        names = [(tool.get("toolSpec") or {}).get("name") for tool in config.get("tools") or []]
        if len(set(names)) != len(names):
            return "Tool names must be unique."
        for i, tool in enumerate(config.get("tools") or []):
            schema = ((tool.get("toolSpec") or {}).get("inputSchema") or {}).get("json")
            if "toolSpec" in tool and (not isinstance(schema, dict) or schema.get("type") != "object"):
                where = f"toolConfig.tools.{i}.toolSpec.inputSchema.json.type"
                return f"The value at {where} must be one of the following: object."
        forced = (config.get("toolChoice") or {}).get("tool")
        if forced and forced.get("name") not in names:
            return "toolChoice names a tool that is not in toolConfig.tools."
    return None


def tool_use_id(name, position, said):
    """A deterministic id shaped like Bedrock's (``tooluse_`` and 22 URL-safe characters)."""
    digest = hashlib.sha256(f"{name}|{position}|{said}".encode()).digest()[:16]
    return "tooluse_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def plan(options, body, said):
    """The (toolUseId, name, input JSON text) of each call the reply makes: asked for, offered, or forced."""
    config = body.get("toolConfig") or {}
    offered = [(tool.get("toolSpec") or {}).get("name") for tool in config.get("tools") or []]
    choice = config.get("toolChoice") or {}
    wanted = [name for name in options.get("tools", "").split(",") if name in offered]
    if "tool" in choice:
        wanted = [choice["tool"]["name"]]
    elif "any" in choice and not wanted and offered:
        wanted = offered[:1]
    arguments = json.loads(options.get("args", "{}"))
    if not isinstance(arguments, dict):
        raise ValueError("args must be a JSON object")
    schemas = {
        (tool.get("toolSpec") or {}).get("name"): ((tool.get("toolSpec") or {}).get("inputSchema") or {}).get("json")
        for tool in config.get("tools") or []
    }
    calls = []
    for position, name in enumerate(wanted):
        text = json.dumps(arguments or default_input(schemas.get(name), position), ensure_ascii=False)
        calls.append((tool_use_id(name, position, said), name, text))
    return tuple(calls)


def default_input(schema, position):
    """A call's input when the directive gives none: one the tool's schema accepts (an open schema's is a city)."""
    if isinstance(schema, dict) and (schema.get("properties") or schema.get("$ref")):
        value = examples.example(schema, position)
        if isinstance(value, dict):
            return value
    if isinstance(schema, dict) and schema.get("additionalProperties") is False:
        return {}
    return {"city": "Paris", "call": position}


def results_reply(body):
    """The default reply after tool results: it quotes them, so a test sees they reached the model."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    results = _blocks(last, "toolResult") if last.get("role") == "user" else []
    if not results:
        return None
    texts = [part.get("text", "") for result in results for part in result.get("content") or [] if "text" in part]
    return "Tool results received: " + " | ".join(texts)
