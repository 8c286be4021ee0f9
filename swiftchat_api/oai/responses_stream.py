"""ConverseStream events → the Responses API's server-sent events: the /v1/responses stream dialect.

Each Bedrock content block becomes one output item, announced, filled and finished as OpenAI's
parsers expect (``response.output_item.added``, its part or summary part, the deltas, the
``.done`` events, ``response.output_item.done``), between ``response.created`` /
``response.in_progress`` and one terminal event: ``response.completed``, ``response.incomplete``
or, for a failure after the stream began, ``response.failed``. Every event carries the next
``sequence_number``.
"""

import json

from ..exceptions import ApiError
from ..wire import Dialect, jsonable
from . import chat, responses
from .chat import client_tool
from .errors import upstream_error
from .stream import OpenAIStream

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=jsonable).encode


class _Block:
    """One Bedrock content block being streamed as an output item."""

    __slots__ = ("kind", "tool", "id", "index", "pieces", "call_id", "name", "signature", "redacted", "summary_open")

    def __init__(self, kind, index, tool=False, call_id=None, name=None):
        self.kind = kind  # "message", "reasoning" or "function_call"
        self.tool = tool  # its deltas are a tool call's input (a function call, or the answer tool's message)
        self.id = responses.item_id(kind)
        self.index = index  # its output_index
        self.pieces = []
        self.call_id = call_id
        self.name = name
        self.signature = None
        self.redacted = []
        self.summary_open = False

    def item(self, summarised, status="completed"):
        text = "".join(self.pieces)
        if self.kind == "message":
            return responses.message_item(self.id, text, status)
        if self.kind == "reasoning":
            return responses.reasoning_item(self.id, text, self.signature, self.redacted, summarised, status)
        return responses.function_call_item(self.id, self.call_id, self.name, text, status)


class ResponsesStream(Dialect):
    """The Responses API's SSE for one answer: typed events, numbered from 0.

    With chat's ``answer_tool``, its input streams as the message's text (see responses.response).
    ``on_final`` is called with the final ``response`` object (completed or incomplete) before
    its event is written, so that a stored response can be continued as soon as a client has
    read its end.
    """

    keepalive = OpenAIStream.keepalive

    def __init__(self, draft, answer_tool=None, on_final=None):
        self._draft = draft
        self._answer_tool = answer_tool  # chat's AnswerTool: structured output by tool
        self._forced = answer_tool is not None and answer_tool.forced
        self._summarised = draft["reasoning"]["summary"] is not None
        self._on_final = on_final
        self._sequence = 0
        self._started = False
        self._ended = False
        self._blocks = {}  # Bedrock contentBlockIndex → the _Block it is streamed as
        self._output = {}  # output_index → the finished item
        self._stop_reason = None
        self._reasoning_bytes = 0

    def _sse(self, kind, members):
        """One event: ``event:`` names it, ``data:`` holds it as compact JSON with its sequence_number."""
        number = self._sequence
        self._sequence = number + 1
        data = _dumps({"type": kind, "sequence_number": number, **members})
        # A lone surrogate in a model's text must not fail the stream: it becomes "?".
        return b"event: " + kind.encode() + b"\ndata: " + data.encode("utf-8", "replace") + b"\n\n"

    def event(self, event):
        """The events (possibly none) one boto3 ConverseStream event becomes; none after the terminal event."""
        if self._ended:
            return b""
        delta = event.get("contentBlockDelta")
        if delta is not None:
            return self._delta(delta)
        if "messageStart" in event:
            return self._start()
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool_use = (start.get("start") or {}).get("toolUse")
            if not tool_use or not client_tool(tool_use):
                return b""
            index = start.get("contentBlockIndex")
            if self._answer_tool is not None and tool_use.get("name") == self._answer_tool.name:
                return self._block(index, "message", tool=True, fresh=True)[1]
            return self._block(index, "function_call", True, tool_use["toolUseId"], tool_use["name"], fresh=True)[1]
        if "contentBlockStop" in event:
            block = self._blocks.pop(event["contentBlockStop"].get("contentBlockIndex"), None)
            return self._finish(block) if block is not None else b""
        if "messageStop" in event:
            self._stop_reason = event["messageStop"].get("stopReason")
            return self._finish_all()
        if "metadata" in event:
            return self._final(event["metadata"].get("usage"))
        return b""

    def _start(self):
        if self._started:
            return b""
        self._started = True
        shell = {**self._draft, "output": []}
        return self._sse("response.created", {"response": shell}) + self._sse(
            "response.in_progress", {"response": shell}
        )

    def _block(self, index, kind, tool=False, call_id=None, name=None, fresh=False):
        """(the block streamed at Bedrock's ``index``, the events that opened it): the open one if it is of this
        kind, else a new one, announced (after the end of any other block at that index: Bedrock never does this)."""
        block = self._blocks.get(index)
        if block is not None and block.kind == kind and block.tool == tool and not fresh:
            return block, b""
        head = self._finish(self._blocks.pop(index)) if block is not None else b""
        block = self._blocks[index] = _Block(kind, len(self._output) + len(self._blocks), tool, call_id, name)
        head += self._added(block)
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": block.id, "output_index": block.index, "content_index": 0}
            head += self._sse("response.content_part.added", {**where, "part": part})
        return block, head

    def _added(self, block):
        item = block.item(self._summarised, "in_progress")
        if block.kind == "message":
            item["content"] = []
        elif block.kind == "reasoning":
            item["summary"] = []
            item["encrypted_content"] = None
        else:
            item["arguments"] = ""
        return self._sse("response.output_item.added", {"output_index": block.index, "item": item})

    def _delta(self, delta):
        index = delta.get("contentBlockIndex")
        said = delta.get("delta") or {}
        text = said.get("text")
        if text is not None:
            if self._forced:  # beside a forced answer tool, the model's text is its reasoning
                return self._reasoning(index, {"text": text})
            block, head = self._block(index, "message")
            return head + self._text(block, text)
        reasoning = said.get("reasoningContent")
        if reasoning is not None:
            return self._reasoning(index, reasoning)
        fragment = (said.get("toolUse") or {}).get("input")
        block = self._blocks.get(index)
        if not fragment or block is None or not block.tool:  # a block never started as a client tool call
            return b""
        if block.kind == "message":  # the answer tool's input is the message's text
            return self._text(block, fragment)
        block.pieces.append(fragment)
        return self._sse(
            "response.function_call_arguments.delta",
            {"item_id": block.id, "output_index": block.index, "delta": fragment},
        )

    def _text(self, block, text):
        block.pieces.append(text)
        return self._sse(
            "response.output_text.delta",
            {"item_id": block.id, "output_index": block.index, "content_index": 0, "delta": text, "logprobs": []},
        )

    def _reasoning(self, index, reasoning):
        block, head = self._block(index, "reasoning")
        if reasoning.get("signature"):
            block.signature = reasoning["signature"]
        if reasoning.get("redactedContent"):
            block.redacted.append(reasoning["redactedContent"])
        text = reasoning.get("text")
        if not text:
            return head
        block.pieces.append(text)
        self._reasoning_bytes += len(text.encode("utf-8", "replace"))
        if not self._summarised:
            return head
        where = {"item_id": block.id, "output_index": block.index, "summary_index": 0}
        if not block.summary_open:
            block.summary_open = True
            head += self._sse("response.reasoning_summary_part.added", {**where, "part": _summary("")})
        return head + self._sse("response.reasoning_summary_text.delta", {**where, "delta": text})

    def _finish(self, block, status="completed"):
        item = block.item(self._summarised, status)
        self._output[block.index] = item
        where = {"item_id": block.id, "output_index": block.index}
        done = b""
        if block.kind == "message":
            part = item["content"][0]
            done = self._sse("response.output_text.done", {**where, "content_index": 0, "text": part["text"],
                                                           "logprobs": []})  # fmt: skip
            done += self._sse("response.content_part.done", {**where, "content_index": 0, "part": part})
        elif block.kind == "function_call":
            done = self._sse("response.function_call_arguments.done", {**where, "name": block.name,
                                                                       "arguments": item["arguments"]})  # fmt: skip
        elif block.summary_open:
            text = item["summary"][0]["text"]
            done = self._sse("response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text})
            done += self._sse("response.reasoning_summary_part.done", {**where, "summary_index": 0,
                                                                       "part": _summary(text)})  # fmt: skip
        return done + self._sse("response.output_item.done", {"output_index": block.index, "item": item})

    def _finish_all(self, status="completed"):
        blocks, self._blocks = sorted(self._blocks.values(), key=lambda block: block.index), {}
        return b"".join(self._finish(block, status) for block in blocks)

    def _items(self):
        return [self._output[index] for index in sorted(self._output)]

    def _final(self, bedrock_usage):
        if self._ended:
            return b""
        closing = self._start() + self._finish_all()
        counted = responses.usage(bedrock_usage, self._reasoning_bytes) if bedrock_usage else None
        final = responses.finished(self._draft, self._items(), self._stop_reason, counted, chat.now())
        if self._on_final is not None and final["status"] != "failed":
            self._on_final(final)  # stores it; when the store cannot, it is answered with store: false
        self._ended = True
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            final["status"], "response.failed"
        )
        return closing + self._sse(kind, {"response": final})

    def error(self, error):
        """``response.failed`` with the error in OpenAI's words; the items so far are in its output, unfinished."""
        if self._ended:
            return b""
        self._ended = True
        closing = self._start() + self._finish_all("incomplete")
        told = error if isinstance(error, ApiError) else upstream_error(error)
        return closing + self._sse("response.failed", {"response": responses.failed(self._draft, self._items(), told)})

    def end(self):
        """The terminal event, if Bedrock's stream ended without its usage (``metadata``)."""
        return self._final(None)


def _summary(text):
    return {"type": "summary_text", "text": text}
