"""ConverseStream events → OpenAI's ``chat.completion.chunk`` server-sent events: the /v1 stream dialect."""

import json

from ..wire import Dialect, jsonable
from .chat import client_tool, finish_reason, thinking_block, usage
from .errors import body_of, upstream_error


class ChunkTranslator:
    """Turns one ConverseStream's events into ``chat.completion.chunk`` dicts; one per stream.

    Tool calls are numbered from 0 in the order they start, never by Bedrock's content block
    index (which counts text and reasoning blocks too, so a peer that subtracted one broke
    whenever a tool call came first). With an ``answer`` tool (structured output by tool), its
    input streams as content deltas, and while it is forced the model's text is reasoning.
    """

    def __init__(self, model, completion_id, created, include_usage=False, answer=None):
        self.model = model
        self.id = completion_id
        self.created = created
        self.include_usage = include_usage
        self.answer = answer
        self._role_sent = False
        self._calls = {}  # Bedrock contentBlockIndex → this answer's tool call index
        self._thinking = {}  # Bedrock contentBlockIndex → the pieces of its reasoning text, until its signature
        self._answers = set()  # the contentBlockIndex of each call of the answer tool

    def _chunk(self, delta, finish=None):
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the last chunk carries usage
        return chunk

    def chunks(self, event):
        """The chunks (possibly none) for one boto3 ConverseStream event."""
        if "messageStart" in event:
            return [] if self._role_sent else [self._chunk({"content": ""})]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool_use = (start.get("start") or {}).get("toolUse")
            if not tool_use or not client_tool(tool_use):
                return []
            if self.answer and tool_use.get("name") == self.answer.name:
                self._answers.add(start.get("contentBlockIndex"))
                return []
            index = self._calls[start.get("contentBlockIndex")] = len(self._calls)
            call = {"index": index, "id": tool_use["toolUseId"], "type": "function",
                    "function": {"name": tool_use["name"], "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"])
        if "messageStop" in event:
            return [self._chunk({}, finish_reason(event["messageStop"].get("stopReason"), bool(self._calls)))]
        if "metadata" in event:
            counted = usage(event["metadata"].get("usage"))
            if not self.include_usage:
                return []
            last = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            return [{**last, "choices": [], "usage": counted}]
        return []

    def _delta(self, block):
        delta = block.get("delta") or {}
        if delta.get("text"):
            field = "reasoning_content" if self.answer and self.answer.forced else "content"
            return [self._chunk({field: delta["text"]})]
        content = delta.get("reasoningContent") or {}
        if content.get("text"):
            self._thinking.setdefault(block.get("contentBlockIndex"), []).append(content["text"])
            return [self._chunk({"reasoning_content": content["text"]})]
        if "redactedContent" in content:
            return [self._chunk({"thinking_blocks": [thinking_block(content)]})]
        if content.get("signature"):
            # The whole signed block once it is complete, as a client sends it back (thinking_blocks).
            text = "".join(self._thinking.pop(block.get("contentBlockIndex"), []))
            signed = {"reasoningText": {"text": text, "signature": content["signature"]}}
            return [self._chunk({"thinking_blocks": [thinking_block(signed)]})]
        fragment = (delta.get("toolUse") or {}).get("input")
        if fragment and block.get("contentBlockIndex") in self._answers:
            return [self._chunk({"content": fragment})]
        index = self._calls.get(block.get("contentBlockIndex"))
        if fragment and index is not None:  # a block never started as a client tool call is not ours
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})]
        return []


def _sse(value):
    """One server-sent event holding ``value`` as compact JSON, as OpenAI writes its chunks."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=jsonable)
    # A lone surrogate in a model's text must not fail the stream: it becomes "?".
    return b"data: " + text.encode("utf-8", "replace") + b"\n\n"


class OpenAIStream(Dialect):
    """OpenAI's chat-completions SSE for one stream: a ``chat.completion.chunk`` per ``data:`` line.

    One object per stream, since the chunks share an id and number the tool calls as they come.
    """

    # An SSE comment: every SSE client skips it, and proxies see bytes on the connection.
    keepalive = b": keep-alive\n\n"

    def __init__(self, translator):
        self._translator = translator

    def event(self, event):
        """The ``data:`` events of the chunks one Bedrock event becomes (possibly none)."""
        return b"".join(_sse(chunk) for chunk in self._translator.chunks(event))

    def error(self, error):
        """One ``data: {"error": ...}`` event; the SDKs raise APIError on it, so nothing may follow."""
        return _sse(body_of(upstream_error(error)))

    def end(self):
        """OpenAI's end of stream, after the usage chunk when one was asked for."""
        return b"data: [DONE]\n\n"
