"""A request body's bounds: objects, lists and values counted, nesting measured, and text never mistaken for either."""

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from swiftchat_api.bodies import MAX_CONTAINERS, MAX_DEPTH, MAX_VALUES, loads

TOO_DEEP = f"The body is nested too deeply (at most {MAX_DEPTH} levels)."
TOO_MANY = (
    f"The body holds too many values (at most {MAX_CONTAINERS:,} objects and lists and {MAX_VALUES:,} values in all)."
)
# Text the apps send as it is: code and tables are full of brackets, commas, quotes and backslashes.
AWKWARD_TEXT = st.text(alphabet='[]{},"\\\n/a\u00e9\U0001f600', max_size=12)


def _refusal(raw):
    """The message a body is refused with, or None if it is read."""
    try:
        loads(raw.encode() if isinstance(raw, str) else raw)
    except ValidationError as error:
        return error.messages["_schema"][0]
    return None


def _depth(value):
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@st.composite
def _nested(draw):
    """A value nested about MAX_DEPTH deep, each level an object or a list with awkward text beside the next."""
    value = draw(st.one_of(AWKWARD_TEXT, st.integers(), st.just({}), st.just([])))
    for _ in range(draw(st.integers(MAX_DEPTH - 4, MAX_DEPTH + 3))):
        siblings = draw(st.lists(AWKWARD_TEXT, max_size=2))
        if draw(st.booleans()):
            value = [*siblings, value]
        else:
            value = {**{f"{text}{n}": text for n, text in enumerate(siblings)}, draw(AWKWARD_TEXT): value}
    return value


@settings(max_examples=300, deadline=None)
@given(value=_nested())
def test_a_body_is_refused_exactly_when_it_nests_deeper_than_the_limit(value):
    """Brackets inside text never count, and an object or list at the limit's depth is read."""
    raw = json.dumps(value, ensure_ascii=False)
    assert _refusal(raw) == (TOO_DEEP if _depth(value) > MAX_DEPTH else None)


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}"), ('{"a":[', "]}")])
def test_nesting_far_past_python_s_recursion_limit_is_refused_as_too_deep(opening, closing):
    levels = 3000 // len(closing)
    assert _refusal(opening * levels + "0" * (opening[-1] == ":") + closing * levels) == TOO_DEEP


def test_text_full_of_brackets_and_commas_is_read_whatever_their_number():
    """A pasted table or log: far more commas and brackets than the limits allow, all of them inside text."""
    text = "[{" * MAX_CONTAINERS + "," * MAX_VALUES
    body = {"messages": [{"role": "user", "content": [{"text": text}, {"text": '\\"[' + text}]}]}
    assert loads(json.dumps(body).encode()) == body


def _among_escaped_quotes(strings):
    """A list of text made of escaped quotes, commas and brackets, then ``strings`` strings: ``strings + 1`` values."""
    return '["' + '\\",[{' * MAX_VALUES + '", ' + ",".join(['"[{,"'] * strings) + "]"


@pytest.mark.parametrize(
    "raw, refusal",
    [
        ("[" + ",".join(["[]"] * (MAX_CONTAINERS - 1)) + "]", None),
        ("[" + ",".join(["[]"] * MAX_CONTAINERS) + "]", TOO_MANY),
        ('{"a": [' + ",".join(["{}"] * MAX_CONTAINERS) + "]}", TOO_MANY),
        ("[[" + ",".join(["0"] * (MAX_VALUES - 1)) + "]]", None),
        ("[[" + ",".join(["0"] * MAX_VALUES) + "]]", TOO_MANY),
        (_among_escaped_quotes(MAX_VALUES - 1), None),
        (_among_escaped_quotes(MAX_VALUES), TOO_MANY),
    ],
    ids=[
        "lists at the limit",
        "a list over it",
        "objects over it",
        "values at the limit",
        "a value over it",
        "values at the limit, after text of escaped quotes",
        "a value over it, after text of escaped quotes",
    ],
)
def test_objects_lists_and_values_are_counted_outside_text_only(raw, refusal):
    assert _refusal(raw) == refusal


def test_a_body_of_millions_of_short_strings_is_refused_in_bounded_memory():
    """Cutting out each of 4 million strings held a piece of each: 767 MB for this 13 MB body (3.9 GB at 64 MB)."""
    raw = b"[" + b'"",' * (4 << 20) + b'""]'
    tracemalloc.start()
    try:
        refusal = _refusal(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refusal == TOO_MANY
    assert peak < 150 << 20, f"{peak >> 20} MB to refuse a {len(raw) >> 20} MB body"
