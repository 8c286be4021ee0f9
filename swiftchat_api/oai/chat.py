"""Chat completions ⇄ Converse: an OpenAI body in, boto3 arguments out; Converse's answer in, OpenAI's out.

Where OpenAI and Bedrock do not line up (the README repeats these for users):
- ``tool_choice: "none"``: Bedrock's toolChoice has no "none", and any toolConfig makes its
  tools callable. So the call goes without a toolConfig, and tool calls and results already in
  the history travel as plain text (Bedrock refuses toolUse/toolResult blocks without one).
- Tools in the history but no ``tools`` in the request: each tool used is declared with an
  open schema (Bedrock wants a toolConfig whenever such blocks are present).
- ``temperature``, ``top_p``, ``top_k``, ``stop``, ``reasoning_effort`` and ``thinking`` are fitted to
  the model's profile last (adapt.py: what thinking forbids dropped, each family's own reasoning
  switch), every change a note on the arguments that /v1 answers in ``x-swiftchat-adapted``. Signed
  thinking goes back to Claude from an assistant message's ``thinking_blocks`` (LiteLLM's shape), so
  Claude thinks through a tool loop; a tool call sent back without them turns thinking off.
- ``response_format`` ``json_schema`` → Converse ``outputConfig.textFormat`` where the model's
  profile says it has structured output (Bedrock refuses it for the others) and, for Claude, the
  schema is within the subset Claude takes (structured.py: its objects then sent closed); else a forced
  "answer tool" whose input schema is the schema: its input becomes the message's content,
  whole or streamed, and never a tool call. ``json_object`` has no Bedrock counterpart and goes
  by an answer tool with an open object schema; a model without tool use is asked for JSON in the
  system prompt instead (not enforced), and given a ``json_schema`` it is a 400.
  With the caller's own tools, they stay callable beside the answer tool (toolChoice ``any``):
  the model either calls them, or answers. A model that cannot be made to call a tool (Llama)
  is offered the answer tool and asked in the system prompt to call it.
- ``temperature`` above 1 is refused: Bedrock's range is 0 to 1, and rescaling would quietly
  change every other value.
"""

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass

from marshmallow import ValidationError

from .. import adapt, bodies
from ..profile import profile
from .errors import refuse
from .structured import claude_schema

_TOOL_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")  # what Bedrock takes as a toolUseId

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

# The user turn put before a conversation that opens with the assistant: Bedrock wants the user first.
OPENING_TURN = "."

JSON_INSTRUCTION = "Reply with one valid JSON object and nothing else: no prose, no code fence."
JSON_OBJECT_TOOL = "json_answer"  # the answer tool of ``json_object``, which names none
ANSWER_DESCRIPTION = "Give your final answer by calling this tool: its input is the answer."

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def _tool_id(raw):
    """A toolUseId Bedrock takes, the same for a call and its result (other providers' ids vary)."""
    if _TOOL_ID.fullmatch(raw):
        return raw
    return "call_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def _image_block(url, param):
    if not url.startswith("data:"):
        refuse(
            "Image URLs are not fetched by this server; send the image inline as a data URL "
            "(data:image/png;base64,...).",
            param,
            "image_url_not_supported",
        )
    header, _, data = url.partition(",")
    media, *options = header[len("data:") :].split(";")
    fmt = IMAGE_FORMATS.get(media.strip().lower())
    if fmt is None:
        refuse("Images must be PNG, JPEG, GIF or WebP.", param)
    if "base64" not in (option.strip().lower() for option in options):
        refuse("Image data URLs must be base64 (data:image/png;base64,...).", param)
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        refuse("The image is not valid base64 data.", param)
    return {"image": {"format": fmt, "source": {"bytes": raw}}}


def _blocks(parts, param):
    """Converse blocks for normalised content parts; blank text dropped, a cache point after a marked part."""
    blocks = []
    for index, part in enumerate(parts or []):
        if part["type"] == "image":
            blocks.append(_image_block(part["url"], f"{param}[{index}].image_url"))
        elif part["text"].strip():  # Bedrock refuses blank text blocks
            blocks.append({"text": part["text"]})
        else:
            continue
        if part["cache"]:
            blocks.append({"cachePoint": dict(part["cache"])})
    return blocks


def _mark(blocks, point):
    """``blocks`` with a cache point after them (a message's ``cache_control``), unless one ends them already."""
    if point and blocks and "cachePoint" not in blocks[-1]:
        blocks.append({"cachePoint": dict(point)})
    return blocks


# A tool call's arguments are text inside the body, in the body's object, its messages, a message,
# its tool_calls, the call and its function: JSON read from them is that many levels deep.
ARGUMENTS_DEPTH = 6


def _arguments(call, param, budget):
    """A tool call's arguments as an object, read on the request's body budget (checked before they are parsed)."""
    text = call["function"]["arguments"]
    try:
        value = budget.nested(text, ARGUMENTS_DEPTH) if text.strip() else {}
    except bodies.OverBudget as error:
        refuse(error.reason, param)
    except ValidationError:  # not JSON
        value = None
    if not isinstance(value, dict):
        refuse("Tool call arguments must be a JSON object.", param)
    return value


def _text_of(parts):
    return "".join(part["text"] for part in parts or [] if part["type"] == "text")


def _tool_turn(message, name, tools_as_text, param):
    """The user-turn blocks of a tool message: its result (text, then images), then a cache point if it asks one.

    Bedrock has no cache point inside a toolResult, so one asked for on any of its parts goes after it.
    """
    raw, parts, result = message["tool_call_id"], message["content"], _text_of(message["content"])
    images = [
        _image_block(part["url"], f"{param}.content[{index}].image_url")
        for index, part in enumerate(parts)
        if part["type"] == "image"
    ]
    if tools_as_text:
        blocks = [{"text": f"[result of tool call {raw} ({name})]: {result}"}, *images]
    else:
        content = [{"text": result}] if result.strip() else []
        blocks = [{"toolResult": {"toolUseId": _tool_id(raw), "content": [*content, *images]}}]
    asked = [part["cache"] for part in parts if part["cache"]]
    return _mark(blocks, message.get("cache_control") or (asked[-1] if asked else None))


def _thinking(message):
    """The reasoning blocks of an assistant message's ``thinking_blocks``, first in its turn as Claude wants them."""
    blocks = []
    for block in message.get("thinking_blocks") or []:
        if block["type"] == "thinking":
            signed = {"text": block["thinking"], "signature": block["signature"]}
            blocks.append({"reasoningContent": {"reasoningText": signed}})
        else:
            blocks.append({"reasoningContent": {"redactedContent": base64.b64decode(block["data"])}})
    return blocks


def _conversation(messages, tools_as_text, budget):
    """(system blocks, alternating Converse messages) for validated OpenAI messages; JSON in them read on ``budget``."""
    system, turns = [], []
    waiting = {}  # raw id → name: the latest assistant tool calls not answered yet
    answered = set()
    for i, message in enumerate(messages):
        role, param = message["role"], f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_mark(_blocks(message["content"], f"{param}.content"), message.get("cache_control")))
            continue
        if role == "tool":
            raw = message["tool_call_id"]
            if raw not in waiting or raw in answered:
                refuse("This tool message answers no open tool call of the assistant message before it.", param)
            answered.add(raw)
            turns.append(("user", _tool_turn(message, waiting[raw], tools_as_text, param)))
            continue
        if set(waiting) - answered:
            refuse("The assistant's tool calls before this message were not all answered by tool messages.", param)
        waiting, answered = {}, set()
        blocks = _thinking(message) + _blocks(message["content"], f"{param}.content")
        for j, call in enumerate(message.get("tool_calls") or []):
            raw, name = call["id"], call["function"]["name"]
            arguments = _arguments(call, f"{param}.tool_calls[{j}].function.arguments", budget)
            if raw in waiting:
                refuse("Two tool calls share one id.", f"{param}.tool_calls[{j}].id")
            waiting[raw] = name
            if tools_as_text:
                blocks.append({"text": f"[tool call {raw}: {name}({json.dumps(arguments, ensure_ascii=False)})]"})
            else:
                blocks.append({"toolUse": {"toolUseId": _tool_id(raw), "name": name, "input": arguments}})
        turns.append((role, _mark(blocks, message.get("cache_control"))))
    if set(waiting) - answered:
        refuse("The last assistant message's tool calls were not answered by tool messages.", "messages")
    merged = _alternating(turns)
    if merged:
        return system, merged
    if not system:
        refuse("The messages hold nothing to answer.", "messages")
    # OpenAI answers a conversation of system messages alone; Bedrock wants a user turn, so they are it.
    return [], [{"role": "user", "content": system}]


def _alternating(turns):
    """Merge consecutive same-role turns (Bedrock wants user and assistant to alternate)."""
    merged = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for message in merged:
        if message["role"] == "user":
            message["content"] = _results_first(message["content"])
    if merged and merged[0]["role"] != "user":
        # OpenAI takes a conversation that opens with the assistant (a greeting); Bedrock wants the user first.
        merged.insert(0, {"role": "user", "content": [{"text": OPENING_TURN}]})
    last = merged[-1] if merged else {}
    ends = [i for i, block in enumerate(last.get("content") or []) if "cachePoint" not in block]
    if last.get("role") == "assistant" and ends and "text" in last["content"][ends[-1]]:
        # A final assistant message is a prefill, and Claude refuses one that ends in whitespace.
        last["content"][ends[-1]] = {"text": last["content"][ends[-1]]["text"].rstrip()}
    return merged


def _results_first(content):
    """A user turn's blocks, tool results first (Claude's rule); a cache point stays after the block it follows."""
    groups = []
    for block in content:
        if "cachePoint" in block and groups:
            groups[-1].append(block)
        else:
            groups.append([block])
    groups.sort(key=lambda group: "toolResult" not in group[0])
    return [block for group in groups for block in group]


def _cache_tools(body, tool_config):
    """A cache point after each tool whose ``cache_control`` asks for one (Bedrock caches the tools before it)."""
    points = {tool["function"]["name"]: tool.get("cache_control") for tool in body.get("tools") or []}
    points = {name: point for name, point in points.items() if point}
    if not points:
        return
    tools = []
    for spec in tool_config["tools"]:
        tools.append(spec)
        if spec["toolSpec"]["name"] in points:
            tools.append({"cachePoint": dict(points[spec["toolSpec"]["name"]])})
    tool_config["tools"] = tools


def _tool_spec(tool):
    function = tool["function"]
    spec = {"name": function["name"], "inputSchema": {"json": function.get("parameters") or {"type": "object"}}}
    if function.get("description"):
        spec["description"] = function["description"]
    if function.get("strict"):
        spec["strict"] = True
    return {"toolSpec": spec}


def _tool_config(body, messages, answer):
    choice = body.get("tool_choice")
    if choice == "none":
        return {"tools": [answer], "toolChoice": {"tool": {"name": answer["toolSpec"]["name"]}}} if answer else None
    specs = [_tool_spec(tool) for tool in body.get("tools") or []]
    if not specs:
        used = dict.fromkeys(
            block["toolUse"]["name"] for message in messages for block in message["content"] if "toolUse" in block
        )
        specs = [
            {"toolSpec": {"name": name, "description": "A tool used earlier in this conversation.",
                          "inputSchema": {"json": {"type": "object"}}}}
            for name in used
        ]  # fmt: skip
    if answer:
        return _with_answer(specs, answer, choice)
    if not specs:
        return None
    config = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["name"]}}
    return config


def _with_answer(specs, answer, choice):
    """The tools with the answer tool beside them: the model calls one of them, or answers (forced: only answers)."""
    name = answer["toolSpec"]["name"]
    if any(spec["toolSpec"]["name"] == name for spec in specs):
        refuse(
            f"A tool is named {name}, as the tool that carries the structured answer for this model is: "
            "rename that tool, or name the response format otherwise (json_schema.name).",
            "response_format",
        )
    if not specs:
        return {"tools": [answer], "toolChoice": {"tool": {"name": name}}}
    if isinstance(choice, dict):  # the caller's forced call first; the answer comes on a later turn
        return {"tools": [*specs, answer], "toolChoice": {"tool": {"name": choice["name"]}}}
    return {"tools": [*specs, answer], "toolChoice": {"any": {}}}


def structured_output(body):
    """How ``response_format`` travels to this model: "native", "tool", "prompt", or None for plain text."""
    kind = (body.get("response_format") or {}).get("type")
    if kind not in ("json_schema", "json_object"):
        return None
    found = profile(body["model"])
    if kind == "json_schema" and found.structured_output and _native_schema(body)[1] is None:
        return "native"
    if found.tools:
        return "tool"
    if kind == "json_object":
        return "prompt"
    refuse(
        "This model has neither structured output nor tool use on Bedrock, so a json_schema answer cannot be "
        "enforced: ask for JSON with response_format json_object, or use another model.",
        "response_format",
    )


def _native_schema(body):
    """(the schema to send as outputConfig, None), or (None, why the model cannot take it natively)."""
    schema = body["response_format"]["json_schema"]["schema"]
    if profile(body["model"]).family == "claude":
        return claude_schema(schema)
    return schema, None


def _object_schema(schema):
    """Whether a schema describes a JSON object, as a tool's input schema must on Bedrock."""
    if "$ref" in schema and "type" not in schema:
        name = str(schema["$ref"]).rpartition("/")[2]
        defined = schema.get("$defs") or schema.get("definitions")
        schema = defined.get(name) if isinstance(defined, dict) else None
        if not isinstance(schema, dict):
            return False
    kind = schema.get("type")
    return kind == "object" or (kind is None and "properties" in schema)


def _answer_spec(body):
    """The toolSpec of the answer tool for this body's response_format."""
    response_format = body["response_format"]
    if response_format["type"] == "json_object":
        return {"toolSpec": {"name": JSON_OBJECT_TOOL, "description": ANSWER_DESCRIPTION,
                             "inputSchema": {"json": {"type": "object"}}}}  # fmt: skip
    spec = response_format["json_schema"]
    if not _object_schema(spec["schema"]):
        refuse(
            "For this model the answer is carried by a tool, whose input must be a JSON object: give "
            'json_schema.schema "type": "object" (wrap other values in a property).',
            "response_format.json_schema.schema",
        )
    schema = {**spec["schema"], "type": "object"}  # Bedrock wants the type spelt out
    description = f"{spec['description']} {ANSWER_DESCRIPTION}" if spec.get("description") else ANSWER_DESCRIPTION
    return {"toolSpec": {"name": spec["name"], "description": description, "inputSchema": {"json": schema}}}


@dataclass(frozen=True)
class AnswerTool:
    """The tool whose input is the answer's content (structured output by tool)."""

    name: str
    # The only tool the model may call: text it writes beside the call is reasoning, not the answer.
    forced: bool


def answer_tool(body, args):
    """The AnswerTool of a body whose structured answer travels by tool, given its ``converse_args``; else None."""
    if structured_output(body) != "tool":
        return None
    response_format = body["response_format"]
    name = JSON_OBJECT_TOOL if response_format["type"] == "json_object" else response_format["json_schema"]["name"]
    return AnswerTool(name, (args.get("toolConfig") or {}).get("toolChoice") == {"tool": {"name": name}})


def _unsigned_tool_turn(messages):
    """Whether the chat ends in tool results for an assistant turn sent back without its signed thinking."""
    if len(messages) < 2 or not any("toolResult" in block for block in messages[-1]["content"]):
        return False
    return "reasoningContent" not in messages[-2]["content"][0]


def wants(body, args):
    """What a chat-completions body asks of its model (adapt.Wants), given its Converse arguments so far."""
    choice = (args.get("toolConfig") or {}).get("toolChoice") or {}
    return adapt.Wants(
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=body.get("stop") or [],
        effort=body.get("reasoning_effort"),
        thinking=body.get("thinking"),
        forced_tool="any" in choice or "tool" in choice,
        unsigned_tool_turn=_unsigned_tool_turn(args["messages"]),
    )


def converse_args(body, budget=None):
    """The boto3 ``converse`` / ``converse_stream`` keyword arguments for a validated chat-completions body.

    ``budget`` is the request's ``bodies.Budget``, on which its body was read: the JSON in tool
    calls' arguments counts against the same limits (a fresh budget when none is given).
    """
    budget = bodies.Budget() if budget is None else budget
    model = body["model"]
    tools_as_text = body.get("tool_choice") == "none"
    system, messages = _conversation(body["messages"], tools_as_text, budget)
    response_format = body.get("response_format") or {}
    structured = structured_output(body)
    answer = _answer_spec(body) if structured == "tool" else None
    if structured == "prompt":
        system.append({"text": JSON_INSTRUCTION})
    elif answer and not profile(model).tool_choice:  # a model that cannot be made to call it is asked to
        system.append({"text": f"Give your final answer by calling the tool {answer['toolSpec']['name']}."})
    args = adapt.Adapted(modelId=model, messages=messages)
    if answer and response_format["type"] == "json_schema" and profile(model).structured_output:
        why = _native_schema(body)[1]
        args.note(f"response_format by a tool (its schema has {why}: the model's structured output refuses that)")
    if system:
        args["system"] = system
    tool_config = _tool_config(body, messages, answer)
    if tool_config:
        args["toolConfig"] = tool_config
        _cache_tools(body, tool_config)
    if structured == "native":
        spec = response_format["json_schema"]
        sent = _native_schema(body)[0]
        if sent != spec["schema"]:
            args.note("response_format schema sent with every object closed (Claude's structured output wants it)")
        schema = {"schema": json.dumps(sent), "name": spec["name"]}
        if spec.get("description"):
            schema["description"] = spec["description"]
        args["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
    # Last: the sampling and reasoning fields fit the model, with the whole request in view.
    return adapt.apply(args, wants(body, args))


# --- chat completions: answer ----------------------------------------------------------------


def include_usage(body):
    """Whether a streamed answer ends with a usage chunk (``stream_options.include_usage``)."""
    return bool((body.get("stream_options") or {}).get("include_usage"))


def new_id(prefix="chatcmpl"):
    """A fresh answer id such as ``chatcmpl-…``."""
    return f"{prefix}-{uuid.uuid4().hex}"


def now():
    """OpenAI's ``created``: whole seconds since the epoch."""
    return int(time.time())


def usage(bedrock_usage):
    """OpenAI's usage from Bedrock's: prompt tokens include the cached ones, as OpenAI counts them."""
    bedrock_usage = bedrock_usage or {}
    cached = bedrock_usage.get("cacheReadInputTokens") or 0
    prompt = (bedrock_usage.get("inputTokens") or 0) + cached + (bedrock_usage.get("cacheWriteInputTokens") or 0)
    completion_tokens = bedrock_usage.get("outputTokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def finish_reason(stop_reason, has_tool_calls):
    """OpenAI's finish_reason for Bedrock's stopReason; ``tool_calls`` exactly when the answer has some."""
    reason = FINISH_REASONS.get(stop_reason, "stop")
    if reason == "stop" and has_tool_calls:
        return "tool_calls"
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


def client_tool(tool_use):
    """False for a tool Bedrock ran itself (server_tool_use): the client has nothing to call."""
    return tool_use.get("type") != "server_tool_use"


def thinking_block(content):
    """The ``thinking_blocks`` entry (LiteLLM's shape) of a Converse reasoningContent block; None if unsigned.

    Sent back on the assistant message, it lets Claude go on thinking through a tool loop.
    """
    if "redactedContent" in content:
        data = content["redactedContent"]
        data = base64.b64encode(data).decode() if isinstance(data, bytes) else data
        return {"type": "redacted_thinking", "data": data}
    text = content.get("reasoningText") or {}
    if not text.get("signature"):
        return None
    return {"type": "thinking", "thinking": text.get("text") or "", "signature": text["signature"]}


def completion(response, model, completion_id, created, answer=None):
    """A ``chat.completion`` object from a Converse answer: every text block kept, in order.

    With an ``answer`` tool (structured output by tool), its input is the content; while it is
    forced, the model's text beside it is reasoning.
    """
    texts, reasoning, calls, signed = [], [], [], []
    for block in response.get("output", {}).get("message", {}).get("content", []):
        if "text" in block:
            (reasoning if answer and answer.forced else texts).append(block["text"])
        elif "reasoningContent" in block:
            reasoning.append((block["reasoningContent"].get("reasoningText") or {}).get("text") or "")
            signed.append(thinking_block(block["reasoningContent"]))
        elif "toolUse" in block and client_tool(block["toolUse"]):
            tool_use = block["toolUse"]
            arguments = json.dumps(tool_use.get("input") or {}, ensure_ascii=False)
            if answer and tool_use.get("name") == answer.name:
                texts.append(arguments)
                continue
            calls.append({"id": tool_use["toolUseId"], "type": "function",
                          "function": {"name": tool_use["name"], "arguments": arguments}})  # fmt: skip
    message = {"role": "assistant", "content": "".join(texts) if texts or not calls else None, "refusal": None}
    if "".join(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if any(signed):
        message["thinking_blocks"] = [block for block in signed if block]
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(response.get("stopReason"), bool(calls)),
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(response.get("usage")),
    }
