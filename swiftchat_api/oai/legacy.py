"""Answers to a request made with OpenAI's legacy ``functions``: the call told as ``function_call``.

The request side is read as tools (schemas.ChatCompletionRequest); a client of the legacy API
reads ``message.function_call`` (``delta.function_call`` when streamed) and the finish reason
``function_call``, as OpenAI answers it. The legacy API has one call per answer, and a model
may make several at once: the first is the ``function_call``, the others stay ``tool_calls``
(numbered from 0), so that none is dropped.
"""


def function_call_answer(completion):
    """A ``chat.completion`` whose first tool call is told as ``function_call``."""
    choice = completion["choices"][0]
    message = choice["message"]
    calls = message.pop("tool_calls", None) or []
    if calls:
        message["function_call"] = calls[0]["function"]
        if len(calls) > 1:
            message["tool_calls"] = calls[1:]
        if choice["finish_reason"] == "tool_calls":
            choice["finish_reason"] = "function_call"
    return completion


class FunctionCallChunks:
    """The chunks of a ChunkTranslator with its first tool call streamed as ``function_call``."""

    def __init__(self, translator):
        self._translator = translator

    def chunks(self, event):
        """The translator's chunks for one ConverseStream event, in the legacy words."""
        return [self._legacy(chunk) for chunk in self._translator.chunks(event)]

    @staticmethod
    def _legacy(chunk):
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "function_call"
            delta = choice["delta"]
            calls = delta.pop("tool_calls", None)
            if not calls:
                continue
            later = []
            for call in calls:
                if call["index"] == 0:
                    delta["function_call"] = call["function"]
                else:
                    later.append({**call, "index": call["index"] - 1})
            if later:
                delta["tool_calls"] = later
        return chunk
