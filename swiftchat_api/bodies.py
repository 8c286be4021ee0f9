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


def _invalid(message):
    return ValidationError({"_schema": [message]})


def _too_deep():
    return _invalid(f"The body is nested too deeply (at most {MAX_DEPTH} levels).")


def _too_many(marks):
    containers = marks.count(b"{") + marks.count(b"[")
    return containers > MAX_CONTAINERS or containers + marks.count(b",") > MAX_VALUES


def _check_counts(raw):
    """Refuse a body with too many objects, lists or values before it is parsed.

    Brackets and commas are counted on the raw bytes first, which counts those inside strings
    too: an upper bound, and quick. Only when that is over a limit are the strings cut out (a
    regular expression, ten to fifty times slower) for the exact count.
    """
    if not _too_many(raw.translate(None, _NOT_MARKS)):
        return
    skeleton, strings = _STRING.subn(b'""', raw, count=_MOST_STRINGS + 1)
    if strings > _MOST_STRINGS or _too_many(skeleton.translate(None, _NOT_MARKS)):
        raise _invalid(
            f"The body holds too many values (at most {MAX_CONTAINERS:,} objects and lists and "
            f"{MAX_VALUES:,} values in all)."
        )


def _deeper_than(value, levels):
    """True if a parsed body's objects and lists nest more than ``levels`` deep (read a level at a time)."""
    level = [value]
    while True:
        containers = [item for item in level if type(item) is dict or type(item) is list]
        if not containers:
            return False
        if levels == 0:
            return True
        levels -= 1
        level = [child for item in containers for child in (item.values() if type(item) is dict else item)]


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


def loads(raw):
    """Parse a body as JSON within the bounds above; ValidationError (never quoting the body) otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("The body is not valid UTF-8 text.") from None
    if not text.strip():
        return {}
    _check_counts(raw)
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _invalid(f"JSON decode error: {error}.") from None  # line, column and offset, never the text
    except ValueError:  # a non-finite number, or an integer past Python's digit limit
        raise _invalid("The body holds a number that is too large or not finite.") from None
    except RecursionError:
        raise _too_deep() from None
    if _deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(value):
        raise _invalid("The body holds text that is not valid Unicode (an unpaired surrogate escape).")
    return value
