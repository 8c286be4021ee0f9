"""Reading a request body as JSON within bounds, before anything is built from it.

The API key ships inside every app, so any body may be hostile: a few megabytes of ``{},``
become a million objects, deep nesting exhausts the stack of every recursive consumer
(marshmallow, botocore's validator and serialiser), and text that is not Unicode breaks
whatever encodes it later. The checks here are linear in the body's size, with a short answer
(the largest hostile bodies, 64 MB, take about 0.2 s to refuse):
- objects, lists and values are counted on the raw bytes, before parsing, at C speed;
- JSON's parser stops itself at Python's recursion limit (1,000 levels; nothing here raises it,
  and the counts keep any body under 10,000), and the parsed body's depth is then measured
  without recursion, before anything else reads it;
- lone surrogates are looked for only when the raw bytes hold such an escape.

JSON read out of a string inside the body (a /v1 tool call's ``arguments``) is as hostile, and
nothing else bounds it: a 64 MB body of such strings parsed to 21 million objects that froze a
worker for 24 s. A ``Budget`` holds one request's running totals: the body and every JSON text
read out of it draw on the same limits (objects and lists, values, depth counted from the body's
top, bytes), and each text is checked the way the body is, on its bytes, before it is parsed.
"""

import json
import math
import re

import gevent
from marshmallow import ValidationError

MAX_DEPTH = 64  # objects and lists inside each other
MAX_CONTAINERS = 10_000  # objects and lists in one body
MAX_VALUES = 100_000  # members and items in one body

# Possessive, and an unterminated string runs to the end: every attempt succeeds where it starts,
# so the pass stays linear (a backtracking pattern took quadratic time on '"' + '\\"' * n).
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_MARKS = bytes(set(range(256)) - set(b"[]{},"))
# A string is a key or a value, one of each per member: a body with more strings than this holds
# more than MAX_VALUES members and items, and cutting out the rest (a piece each) took gigabytes.
_MOST_STRINGS = 2 * MAX_VALUES + 1
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class BodyStalled(Exception):
    """The client stopped sending a body it announced (an Exception, so gunicorn closes the connection)."""


class BodyTooLarge(Exception):
    """The body is larger than the configured limit."""


def read(stream, limit, stall_timeout, announced=None):
    """The whole body from a WSGI input stream; BodyTooLarge past ``limit`` bytes (chunked bodies included),
    BodyStalled when no byte arrives for ``stall_timeout`` seconds."""
    if announced is not None and announced > limit:
        raise BodyTooLarge
    parts = []
    size = 0
    while True:
        want = 65536 if announced is None else min(65536, announced - size)
        if want <= 0:
            break
        with gevent.Timeout(stall_timeout, BodyStalled):
            data = stream.read(want)
        if not data:
            break
        size += len(data)
        if size > limit:
            raise BodyTooLarge
        parts.append(data)
    return b"".join(parts)


class OverBudget(ValidationError):
    """A request holds more than its budget allows: objects and lists, values, depth or bytes."""

    def __init__(self, reason):
        super().__init__({"_schema": [reason]})
        self.reason = reason


def _invalid(message):
    return ValidationError({"_schema": [message]})


def _too_deep():
    return OverBudget(f"The body is nested too deeply (at most {MAX_DEPTH} levels).")


_TOO_MANY = "The body holds too many values (at most {:,} objects and lists and {:,} values in all)."
_TOO_MANY_WITH_TEXT = (
    "The body holds too many values, with the JSON inside its text (at most {:,} objects and lists and {:,} "
    "values in all)."
)


def _too_many(marks, containers, values, max_values=MAX_VALUES):
    """True if ``marks`` (brackets and commas) added to counts already spent pass a limit.

    Values are counted as objects and lists plus commas: each object or list counts its
    members, an empty one counts one (``_measure`` counts a parsed value the same way).
    """
    found = marks.count(b"{") + marks.count(b"[")
    return containers + found > MAX_CONTAINERS or values + found + marks.count(b",") > max_values


def _check_counts(raw, containers=0, values=0, message=_TOO_MANY, max_values=MAX_VALUES):
    """Refuse JSON text with too many objects, lists or values before it is parsed, beside those already spent.

    Brackets and commas are counted on the raw bytes first, which counts those inside strings
    too: an upper bound, and quick. Only when that is over a limit are the strings cut out (a
    regular expression, ten to fifty times slower) for the exact count.
    """
    if not _too_many(raw.translate(None, _NOT_MARKS), containers, values, max_values):
        return
    most_strings = _MOST_STRINGS if max_values == MAX_VALUES else 2 * max_values + 1
    skeleton, strings = _STRING.subn(b'""', raw, count=most_strings + 1)
    if strings > most_strings or _too_many(skeleton.translate(None, _NOT_MARKS), containers, values, max_values):
        raise OverBudget(message.format(MAX_CONTAINERS, max_values))


def _measure(value, levels):
    """(objects and lists, values) of a parsed value, a level at a time; None if it nests more than ``levels`` deep."""
    containers = values = 0
    level = [value]
    while True:
        found = [item for item in level if type(item) is dict or type(item) is list]
        if not found:
            return containers, values
        if levels <= 0:
            return None
        levels -= 1
        level = [child for item in found for child in (item.values() if type(item) is dict else item)]
        containers += len(found)
        values += len(level) + len(found) - sum(map(bool, found))  # members, and one for each empty one


def _finite(text):
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("non-finite number")
    return number


def _no_constant(name):
    raise ValueError("non-finite number")


def _lone_surrogate(value):
    """True if any string (or key) in a parsed body holds half of a UTF-16 surrogate pair."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _parse(raw, text, levels, subject, too_deep):
    """(value, objects and lists, values) of counted JSON ``text`` (``raw``: its UTF-8), at most ``levels`` deep."""
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _invalid(f"JSON decode error: {error}.") from None  # line, column and offset, never the text
    except ValueError:  # a non-finite number, or an integer past Python's digit limit
        raise _invalid(f"{subject} holds a number that is too large or not finite.") from None
    except RecursionError:
        raise too_deep() from None
    counts = _measure(value, levels)
    if counts is None:
        raise too_deep()
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(value):
        raise _invalid(f"{subject} holds text that is not valid Unicode (an unpaired surrogate escape).")
    return value, *counts


class Budget:
    """One request's allowance for everything parsed out of it: its body, then JSON read from text inside the body.

    All of it draws on one running total: at most MAX_CONTAINERS objects and lists and
    MAX_VALUES values in all, nothing deeper than MAX_DEPTH levels from the body's top, and at
    most ``max_bytes`` bytes of JSON (the body's, plus each text's UTF-8; None: no byte limit).
    So a text inside the body is refused when the body has already spent what it would need,
    before it is parsed. Make one per request and hand it to whatever parses for that request.
    """

    def __init__(self, max_bytes=None, max_values=MAX_VALUES):
        self.max_bytes = max_bytes
        self.max_values = max_values  # more for a body of numbers (embedding token arrays)
        self.bytes = 0
        self.containers = 0
        self.values = 0

    def _spend(self, size, containers, values):
        self.bytes += size
        self.containers += containers
        self.values += values

    def _too_large(self):
        return OverBudget(
            f"The body and the JSON inside its text are larger than {self.max_bytes / (1024 * 1024):g} MB in all."
        )

    def body(self, raw):
        """Parse the request body (bytes) within the bounds; ValidationError (never quoting the body) otherwise."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid("The body is not valid UTF-8 text.") from None
        if not text.strip():
            self._spend(len(raw), 0, 0)
            return {}
        _check_counts(raw, self.containers, self.values, max_values=self.max_values)
        value, containers, values = _parse(raw, text, MAX_DEPTH, "The body", _too_deep)
        self._spend(len(raw), containers, values)
        return value

    def nested(self, text, depth):
        """Parse JSON ``text`` found in a string ``depth`` objects and lists deep in the body, within what is left.

        The same checks as the body's, in the same order: its size, then its brackets and commas
        counted on its bytes, then the parse (stopped past the levels left below ``depth``).
        OverBudget past a limit, ValidationError for text that is not JSON.
        """
        # A str's length is at most its UTF-8 size: a text far too large costs no encoding.
        if self.max_bytes is not None and self.bytes + len(text) > self.max_bytes:
            raise self._too_large()
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid("The JSON in this text is not valid Unicode.") from None
        if self.max_bytes is not None and self.bytes + len(raw) > self.max_bytes:
            raise self._too_large()
        _check_counts(raw, self.containers, self.values, _TOO_MANY_WITH_TEXT, self.max_values)

        def too_deep():
            return OverBudget(
                f"The JSON in this text is nested too deeply (at most {MAX_DEPTH} levels, counting the {depth} "
                "around it in the body)."
            )

        value, containers, values = _parse(raw, text, MAX_DEPTH - depth, "The JSON in this text", too_deep)
        self._spend(len(raw), containers, values)
        return value


def loads(raw):
    """Parse a body as JSON within the bounds above, on a budget of its own; ValidationError otherwise."""
    return Budget().body(raw)
