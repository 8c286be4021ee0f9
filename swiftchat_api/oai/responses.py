"""The Responses API on the chat-completions core: a Responses body in, a chat-completions body out (which
``chat.converse_args`` turns into Converse's arguments, so the model profile, reasoning, structured output
and caching apply to both routes alike); Converse's answer in, a ``response`` object out.

Where the Responses API and Bedrock do not line up (the README repeats these for users):
- Reasoning comes back as ``reasoning`` items whose ``encrypted_content`` holds the model's reasoning
  and Bedrock's signature of it (base64 JSON, not encrypted: Bedrock gives the reasoning to the
  caller anyway). Sent back, the item becomes the signed thinking block Claude wants to see again
  in a tool loop. A reasoning item without one cannot go back to Bedrock, which takes reasoning
  only with its signature, and is left out of the call; one that another server made is refused.
- The reasoning text is the item's ``summary_text`` when ``reasoning.summary`` asks for one.
- ``output_tokens_details.reasoning_tokens`` is an estimate from the reasoning's text: Bedrock
  counts reasoning in ``outputTokens`` without telling it apart.
"""

import base64
import binascii
import json
import math
import re
import uuid

from marshmallow import ValidationError

from .. import bodies
from ..charges import BYTES_PER_TOKEN
from ..exceptions import ApiError
from . import chat
from .errors import invalid_body, refuse
from .responses_schema import load_items
from .schemas import MAX_THINKING_BLOCKS, ChatCompletionRequest

_CHAT = ChatCompletionRequest()
SEALED = "swiftchat-reasoning-1:"  # what a reasoning item's encrypted_content made here starts with
SEALED_DEPTH = 3  # the body, input, the item: where an encrypted_content's JSON sits in the body

# Bedrock's stopReason → (the response's status, why it is incomplete or what failed).
_ENDINGS = {
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
    "content_filtered": ("incomplete", "content_filter"),
    "guardrail_intervened": ("incomplete", "content_filter"),
    "malformed_model_output": ("failed", "The model's output was malformed (Bedrock's stopReason)."),
    "malformed_tool_use": ("failed", "The model's tool call was malformed (Bedrock's stopReason)."),
}


ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


def item_id(kind):
    """A fresh id for an item of type ``kind``: ``msg_…``, ``fc_…``, ``fco_…``, ``rs_…`` (``item_…`` for another)."""
    return f"{ITEM_PREFIXES.get(kind, 'item')}_{uuid.uuid4().hex}"


# --- request -------------------------------------------------------------------------------------


def seal(text, signature, redacted):
    """A reasoning item's ``encrypted_content``: its text, Bedrock's signature and any redacted blocks."""
    kept = {"text": text, "signature": signature, "redacted": [base64.b64encode(data).decode() for data in redacted]}
    return SEALED + base64.b64encode(json.dumps(kept, ensure_ascii=False).encode()).decode()


def _thinking_blocks(encrypted, place, budget):
    """The chat body's ``thinking_blocks`` for a reasoning item's ``encrypted_content`` (made by ``seal``)."""
    if not encrypted.startswith(SEALED):
        refuse("This reasoning item's encrypted_content was not made by this server.", f"{place}.encrypted_content")
    try:
        # The caller may have written it: its JSON is read on the request's budget, as a tool call's arguments are.
        kept = budget.nested(base64.b64decode(encrypted[len(SEALED) :], validate=True).decode(), SEALED_DEPTH)
        text, signature, redacted = kept["text"], kept["signature"], kept["redacted"]
        if not (isinstance(text, str) and isinstance(signature, (str, type(None))) and isinstance(redacted, list)):
            raise TypeError
        if len(redacted) > MAX_THINKING_BLOCKS:
            refuse(f"This reasoning item holds more than {MAX_THINKING_BLOCKS} blocks.", f"{place}.encrypted_content")
        for data in redacted:
            base64.b64decode(data, validate=True)
    except bodies.OverBudget as error:
        refuse(error.reason, f"{place}.encrypted_content")
    except (ValidationError, ValueError, TypeError, KeyError, binascii.Error):
        refuse("This reasoning item's encrypted_content is damaged.", f"{place}.encrypted_content")
    blocks = [{"type": "thinking", "thinking": text, "signature": signature}] if signature else []
    return blocks + [{"type": "redacted_thinking", "data": data} for data in redacted]


def _chat_part(part):
    if part["type"] == "image":
        return {"type": "image_url", "image_url": {"url": part["url"]}}
    return {"type": "text", "text": part["text"]}


def _messages(body, items, history, budget):
    """Chat messages for the conversation ``items`` (the first ``history`` of them stored), and where each came from.

    Where each came from is the request's name for it (``input[3]``, ``instructions``), for errors:
    per chat message, (its place, the places of its tool calls, the item's field its content is part for part).
    """
    messages, places = [], []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
        places.append(("instructions", [], None))
    assistant = None  # the assistant message being put together, while the items still belong to it
    waiting = set()  # call ids of the last assistant turn not answered yet
    for index, item in enumerate(items):
        place = f"input[{index - history}]" if index >= history else "previous_response_id"
        kind = item["type"]
        if kind == "function_call_output":
            if item["call_id"] not in waiting:
                refuse("This function_call_output answers no function_call of the turn before it.", place)
            waiting.discard(item["call_id"])
            output = [_chat_part(part) for part in item["output"]]  # text, and images (Codex's view_image)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
            places.append((place, [], "output"))
            assistant = None
            continue
        if waiting and assistant is None:
            refuse("The function_calls before this item were not all answered by function_call_output items.", place)
        if kind == "message" and item["role"] != "assistant":
            messages.append({"role": item["role"], "content": [_chat_part(part) for part in item["content"]]})
            places.append((place, [], "content"))
            assistant = None
            continue
        if assistant is None:
            assistant = {"role": "assistant", "content": []}
            messages.append(assistant)
            places.append((place, [], None))
        if kind == "message":
            assistant["content"].extend(_chat_part(part) for part in item["content"])
        elif kind == "reasoning":
            if item["encrypted_content"] is not None:
                assistant.setdefault("thinking_blocks", []).extend(
                    _thinking_blocks(item["encrypted_content"], place, budget)
                )
        else:  # function_call
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
            assistant.setdefault("tool_calls", []).append(call)
            places[-1][1].append(place)
            waiting.add(item["call_id"])
    if waiting:
        refuse("The last function_calls were not answered by function_call_output items.", "input")
    return messages, places


def chat_request(body, items, history=0, budget=None):
    """(a chat-completions body, where each of its messages came from) for a loaded Responses body.

    ``items`` is the whole conversation: the ``history`` items stored before it, then the input;
    ``budget`` the request's ``bodies.Budget`` (a fresh one when none is given).
    """
    budget = bodies.Budget() if budget is None else budget
    messages, places = _messages(body, items, history, budget)
    wanted = {"model": body["model"], "messages": messages, "stream": bool(body.get("stream"))}
    if body.get("tools"):
        wanted["tools"] = [
            {"type": "function", "function": {key: value for key, value in tool.items() if value is not None}}
            for tool in body["tools"]
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        wanted["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice:
        wanted["tool_choice"] = choice
    if body.get("parallel_tool_calls") is not None:
        wanted["parallel_tool_calls"] = body["parallel_tool_calls"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        wanted["reasoning_effort"] = effort
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        schema = {"name": text_format["name"], "schema": text_format["schema"]}
        for key in ("description", "strict"):
            if text_format.get(key) is not None:
                schema[key] = text_format[key]
        wanted["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif text_format.get("type") == "json_object":
        wanted["response_format"] = {"type": "json_object"}
    for ours, theirs in (("max_output_tokens", "max_completion_tokens"), ("temperature", None), ("top_p", None)):
        if body.get(ours) is not None:
            wanted[theirs or ours] = body[ours]
    return wanted, places


_MESSAGE_PARAM = re.compile(r"messages\[(\d+)\](?:\.tool_calls\[(\d+)\](\.function\.arguments)?)?")
# A chat body's parameter → the Responses body's, where the names differ.
_RENAMED = (
    ("max_completion_tokens", "max_output_tokens"),
    ("max_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
    ("messages", "input"),
)


def _placed(error, places):
    """``error`` (about the chat body) with its ``param`` named as the Responses request names it."""
    param = error.param
    if not param:
        return error
    found = _MESSAGE_PARAM.match(param)
    if found and int(found.group(1)) < len(places):
        place, calls, parts_field = places[int(found.group(1))]
        call, rest = found.group(2), param[found.end() :]
        if call is not None and int(call) < len(calls):
            place = calls[int(call)] + (".arguments" if found.group(3) else "")
        elif parts_field and rest.startswith(".content["):
            place += f".{parts_field}{rest[len('.content') :]}"  # input[0].content[1].image_url
        param = place
    else:
        param = re.sub(r"\.function(?=\.|$)", "", param)  # tools[0].function.parameters → tools[0].parameters
        for theirs, ours in _RENAMED:
            if param == theirs or param.startswith(theirs + ".") or param.startswith(theirs + "["):
                param = ours + param[len(theirs) :]
                break
    detail = error.detail
    if error.param and detail.startswith(error.param + ":"):  # the marshmallow message names the param first
        detail = param + detail[len(error.param) :]
    return ApiError(error.status, detail, param=param, code=error.code)


def converse_args(body, items, history=0, budget=None):
    """(the Converse arguments, chat's AnswerTool or None) for a loaded Responses body whose conversation is
    ``items`` (see chat_request)."""
    budget = bodies.Budget() if budget is None else budget
    wanted, places = chat_request(body, items, history, budget)
    try:
        loaded = _CHAT.load(wanted)
        args = chat.converse_args(loaded, budget)
    except ValidationError as error:
        raise _placed(invalid_body(error), places) from None
    except ApiError as error:
        raise _placed(error, places) from None
    return args, chat.answer_tool(loaded, args)


def _stored_part(part, text_type):
    if part["type"] == "image":
        return {"type": "input_image", "image_url": part["url"], "detail": "auto"}
    return {"type": text_type, "text": part["text"]}


def stored_input(items):
    """The loaded input items in OpenAI's shape, as the store keeps them and ``input_items`` lists them."""
    shaped = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            text_type = "output_text" if item["role"] == "assistant" else "input_text"
            content = [_stored_part(part, text_type) for part in item["content"]]
            shaped.append({"type": "message", "role": item["role"], "content": content})
        elif kind == "function_call_output":
            parts = item["output"]
            output = (
                "".join(part["text"] for part in parts)
                if all(part["type"] == "text" for part in parts)
                else [_stored_part(part, "input_text") for part in parts]
            )
            shaped.append({"type": kind, "call_id": item["call_id"], "output": output})
        elif kind == "reasoning":
            summary = [{"type": "summary_text", "text": text} for text in item["summary"]]
            shaped.append({"type": "reasoning", "summary": summary, "encrypted_content": item["encrypted_content"]})
        else:
            shaped.append(dict(item))
    return shaped


# --- answer --------------------------------------------------------------------------------------


def draft(body, response_id, created_at):
    """The ``response`` object's members that the request decides: everything but its status, output and usage."""
    reasoning = body.get("reasoning") or {}
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    if text_format["type"] == "json_schema":
        text_format = {key: value for key, value in text_format.items() if value is not None}
    else:
        text_format = {"type": text_format["type"]}
    choice = body.get("tool_choice") or "auto"
    tools = [{"type": "function", "description": None, "parameters": None, "strict": None, **tool}
             for tool in body.get("tools") or []]  # fmt: skip
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": summary_wanted(body)},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"),
        "text": {"format": text_format},
        "tool_choice": choice,
        "tools": tools,
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def summary_wanted(body):
    """The ``reasoning.summary`` asked for (the reasoning text is then the summary), or None."""
    reasoning = body.get("reasoning") or {}
    return reasoning.get("summary") or reasoning.get("generate_summary")


def message_item(item_id, text, status="completed"):
    """An assistant ``message`` output item holding one ``output_text`` part."""
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": [part]}


def reasoning_item(item_id, text, signature, redacted, summarised, status="completed"):
    """A ``reasoning`` output item: the text as its summary when one was asked for, all of it sealed."""
    summary = [{"type": "summary_text", "text": text}] if summarised and text else []
    sealed = seal(text, signature, redacted)
    return {"type": "reasoning", "id": item_id, "status": status, "summary": summary, "encrypted_content": sealed}


def function_call_item(item_id, call_id, name, arguments, status="completed"):
    """A ``function_call`` output item."""
    return {"type": "function_call", "id": item_id, "status": status, "call_id": call_id, "name": name,
            "arguments": arguments or "{}"}  # fmt: skip


def usage(bedrock_usage, reasoning_bytes=0):
    """The Responses API's usage from Bedrock's: input includes cached tokens, as OpenAI counts them."""
    counted = chat.usage(bedrock_usage)
    output = counted["completion_tokens"]
    return {
        "input_tokens": counted["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": counted["prompt_tokens_details"]["cached_tokens"],
            "cache_write_tokens": (bedrock_usage or {}).get("cacheWriteInputTokens") or 0,
        },
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": min(output, math.ceil(reasoning_bytes / BYTES_PER_TOKEN))},
        "total_tokens": counted["total_tokens"],
    }


def finished(draft, output, stop_reason, counted, completed_at):
    """The final ``response`` object: ``draft`` with its output, usage and the status ``stop_reason`` makes."""
    status, why = _ENDINGS.get(stop_reason, ("completed", None))
    final = {**draft, "status": status, "output": output, "usage": counted}
    if status == "incomplete":
        final["incomplete_details"] = {"reason": why}
        if output:
            output[-1]["status"] = "incomplete"
    elif status == "failed":
        final["error"] = {"code": "server_error", "message": why}
    else:
        final["completed_at"] = completed_at
    return final


def failed(draft, output, error):
    """The ``response`` object of a response that failed after it began: ``error`` is an ApiError in OpenAI's words."""
    code = error.code or ("rate_limit_exceeded" if error.status == 429 else "server_error")
    return {**draft, "status": "failed", "output": output, "error": {"code": code, "message": error.detail}}


def response(answer, draft, completed_at, answer_tool=None):
    """The ``response`` object of a Converse answer (called whole): every block kept, in order.

    With chat's ``answer_tool`` (structured output by tool), its input is the message's text; while
    it is forced, the model's text beside it is reasoning.
    """
    output, reasoning_bytes = [], 0
    summarised = draft["reasoning"]["summary"] is not None
    forced = answer_tool is not None and answer_tool.forced
    for block in answer.get("output", {}).get("message", {}).get("content", []):
        if "text" in block and not forced:
            output.append(message_item(item_id("message"), block["text"]))
        elif "text" in block or "reasoningContent" in block:
            content = block.get("reasoningContent") or {"reasoningText": {"text": block["text"]}}
            said = content.get("reasoningText") or {}
            text = said.get("text") or ""
            redacted = [content["redactedContent"]] if content.get("redactedContent") else []
            output.append(reasoning_item(item_id("reasoning"), text, said.get("signature"), redacted, summarised))
            reasoning_bytes += len(text.encode("utf-8", "replace"))
        elif "toolUse" in block and chat.client_tool(block["toolUse"]):
            tool_use = block["toolUse"]
            arguments = json.dumps(tool_use.get("input") or {}, ensure_ascii=False)
            if answer_tool is not None and tool_use.get("name") == answer_tool.name:
                output.append(message_item(item_id("message"), arguments))
            else:
                call = function_call_item(item_id("function_call"), tool_use["toolUseId"], tool_use["name"], arguments)
                output.append(call)
    counted = usage(answer.get("usage"), reasoning_bytes)
    return finished(draft, output, answer.get("stopReason"), counted, completed_at)


class Turn:
    """One request of /v1/responses, translated: its Converse arguments and what its answer is made of."""

    def __init__(self, body, history, response_id, budget=None, storing=True):
        """``history``: the stored items it continues (``responses_store``'s ``history``), in OpenAI's shape;
        ``storing``: whether the server stores responses at all."""
        try:
            earlier = load_items(history)
        except ValidationError:
            refuse("The stored conversation this continues cannot be read back.", "previous_response_id")
        self.args, self.answer_tool = converse_args(body, earlier + body["input"], len(earlier), budget)
        self.store = storing and body.get("store") is not False
        self.draft = {**draft(body, response_id, chat.now()), "store": self.store}
        self.previous = body.get("previous_response_id")
        self.input = stored_input(body["input"])

    def response(self, answer):
        """The ``response`` object of the Converse answer (called whole)."""
        return response(answer, self.draft, chat.now(), self.answer_tool)
