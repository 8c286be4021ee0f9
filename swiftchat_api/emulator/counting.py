"""CountTokens as the emulator plays it: the count its own usage would report for the same input.

Bedrock counts tokens for a few Anthropic models only, named by their bare foundation-model id
(the user guide's "Supported models and Regions for token counting"); any other model, and
any cross-region inference profile id, is refused with a ValidationException saying the model
does not count tokens. A count above 200,000 is refused too, as Bedrock does whatever the
model's context window (boto/botocore#3707).
"""

import base64
import binascii
import json
import re

import gevent

from . import tools
from .script import input_tokens, refusal

COUNTS_TOKENS = frozenset(
    {
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-opus-4-20250514-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
    }
)
MOST_TOKENS = 200_000
NOT_COUNTED = "The provided model doesn't support counting tokens."
# The one directive key CountTokens heeds: a count slow to come, for the caller's time bound.
_DELAY = re.compile(r"\[\[emulator[^\]]*\bcount_delay_ms=(\d{1,6})\b")


def count_tokens(model_id, body):
    """(status, body, headers) of a CountTokens call for ``model_id`` with request ``body``."""
    if model_id not in COUNTS_TOKENS:
        return refusal(400, "ValidationException", NOT_COUNTED)
    given = body.get("input") if isinstance(body.get("input"), dict) else {}
    if set(given) not in ({"converse"}, {"invokeModel"}):
        return refusal(400, "ValidationException", "input must name exactly one of converse and invokeModel.")
    if "converse" in given:
        request = given["converse"] if isinstance(given["converse"], dict) else {}
        problem = tools.problem(request)
        if problem:
            return refusal(400, "ValidationException", problem)
    else:
        request = _invoke_request(given["invokeModel"])
        if request is None:
            return refusal(400, "ValidationException", "The invokeModel body is not a JSON object with messages.")
    delay = _DELAY.search(" ".join(_user_texts(request.get("messages") or [])))
    if delay:
        gevent.sleep(int(delay.group(1)) / 1000)
    counted = input_tokens(request)
    if counted > MOST_TOKENS:
        return refusal(400, "ValidationException", f"prompt is too long: {counted} tokens > {MOST_TOKENS} maximum")
    return 200, {"inputTokens": counted}, []


def _invoke_request(invoke):
    """An InvokeModel body (Anthropic's Messages API; text as a string or as blocks) as Converse's messages and
    system, or None."""
    try:
        request = json.loads(base64.b64decode((invoke or {}).get("body") or "", validate=True))
    except (binascii.Error, ValueError, TypeError, AttributeError):
        return None
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        return None
    messages = [
        {**message, "content": [{"text": message["content"]}]} if isinstance(message.get("content"), str) else message
        for message in request["messages"]
        if isinstance(message, dict)
    ]
    system = request.get("system")
    system = [{"text": system}] if isinstance(system, str) else system if isinstance(system, list) else []
    return {"messages": messages, "system": system}


def _user_texts(messages):
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    return [block["text"] for block in last.get("content") or [] if isinstance(block, dict) and "text" in block]
