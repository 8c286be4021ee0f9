"""What a request is charged when Bedrock gave no usage: Bedrock's count where it gives one, else
estimates that err on the side of more.

Bedrock bills a stream cut before its ``metadata`` event (the client gone, the upstream cut, a
time-out) for the whole input and the output generated so far, but tells us neither. Charged
nothing, a person could read a long answer's first kilobytes for free, again and again. So such
a stream is charged its input as Bedrock's ``CountTokens`` counts it (services/counting.py) for
the models that support it, and otherwise estimates of both, marked as estimates:

- input: the UTF-8 bytes of every text the request sends (messages, system prompt, tool
  definitions and results) divided by ``BYTES_PER_TOKEN``, plus ``MESSAGE_TOKENS`` a message,
  and ``IMAGE_TOKENS`` an image. Tokenizers average about 4 bytes a token on English prose and
  code and 3 on CJK text (3 bytes a character), so 3 over-counts those; text made of long runs
  of digits or single symbols averages fewer and can be under-counted, by at most the
  difference between its bytes / 3 and its real count (never more than two-thirds of it).
- output: the UTF-8 bytes of the text, reasoning and tool input relayed to the client
  (``facts().text_sent``, counted by the relay from Bedrock's events, not from the dialect's
  bytes, whose JSON framing would count a one-word event as 60 tokens) divided by the same 3;
  output generated but not yet relayed when the stream was cut is not counted.
"""

import math

BYTES_PER_TOKEN = 3
MESSAGE_TOKENS = 4  # a message's role and framing
IMAGE_TOKENS = 1_600  # Claude's cost of the largest image it takes (1,568 px a side)
_IMAGE_BLOCKS = ("image", "video")


def estimate_input(args):
    """An estimate of the input tokens of a Converse call with ``args``, on the high side."""
    counted = _Counted()
    for message in args.get("messages") or ():
        counted.tokens += MESSAGE_TOKENS
        counted.walk(message)
    counted.walk(args.get("system"))
    counted.walk(args.get("toolConfig"))
    return counted.tokens + math.ceil(counted.bytes / BYTES_PER_TOKEN)


def estimate_output(text_sent):
    """An estimate of the output tokens behind ``text_sent`` bytes of the model's text relayed to the client."""
    return math.ceil((text_sent or 0) / BYTES_PER_TOKEN)


def reported(usage):
    """Whether ``usage`` holds Bedrock's counts (a stream that ended with its ``metadata`` event)."""
    return isinstance(usage, dict) and isinstance(usage.get("inputTokens"), int)


def charged(usage, input_estimate, text_sent, input_counted=None):
    """The usage a finished stream is charged, and which of its figures are estimates.

    Bedrock's usage when it gave its counts (nothing estimated); else, for a Bedrock stream
    (``input_estimate`` set), the input Bedrock's CountTokens gave (``input_counted``) or else
    its estimate, and the output's estimate; else ``usage`` as it is (a Use Proxy provider's).
    The figures estimated are named: ``("input", "output")``, ``("output",)`` or ``()``.
    """
    if reported(usage) or input_estimate is None:
        return usage, ()
    output = estimate_output(text_sent)
    if input_counted is None:
        return {"inputTokens": input_estimate, "outputTokens": output, "totalTokens": input_estimate + output}, (
            "input",
            "output",
        )
    return {"inputTokens": input_counted, "outputTokens": output, "totalTokens": input_counted + output}, ("output",)


class _Counted:
    def __init__(self):
        self.bytes = 0
        self.tokens = 0

    def walk(self, value):
        # A stack, not recursion: a body's nesting is bounded by its schema, but this costs nothing.
        pending = [value]
        while pending:
            value = pending.pop()
            if isinstance(value, str):
                self.bytes += len(value.encode("utf-8", "surrogatepass"))
            elif isinstance(value, bytes | bytearray):
                self.bytes += len(value)  # a document's bytes: at least as many tokens as text of that size
            elif isinstance(value, dict):
                for key, item in value.items():
                    self.bytes += len(str(key))  # a tool schema's property names are read too
                    if key in _IMAGE_BLOCKS:
                        self.tokens += IMAGE_TOKENS
                    else:
                        pending.append(item)
            elif isinstance(value, list | tuple):
                pending.extend(value)
            elif value is not None:
                self.bytes += len(str(value))
