"""A request body's bounds: objects, lists and values counted, nesting measured, and text never mistaken for either."""

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from swiftchat_api.bodies import MAX_CONTAINERS, MAX_DEPTH, MAX_VALUES, Budget, loads

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


# --- One budget for the body and the JSON read out of its text --------------------------------


def _wrapped(value, levels):
    for _ in range(levels):
        value = {"x": value}
    return value


def _budget_refusal(outer, text, depth, max_bytes=None):
    """The message a body and then JSON ``text`` read from a string ``depth`` deep in it are refused with, or None."""
    budget = Budget(max_bytes)
    try:
        budget.body(outer.encode())
        budget.nested(text, depth)
    except ValidationError as error:
        return error.messages["_schema"][0]
    return None


def _measured(raw):
    """(objects and lists, values, depth) of a body whose strings hold no brackets or commas, counted on its text."""
    containers = raw.count("[") + raw.count("{")
    return containers, containers + raw.count(","), _depth(json.loads(raw))


def _split_body(probe, share, past):
    """(body around a JSON text, the text, its depth in the body, the same body with the JSON in place of the text).

    The JSON in place takes the body ``past`` over one limit (``probe``: 0 objects and lists, 1
    values, 2 depth), the others well within reach; the body around the text holds ``share``
    percent of what the limit allows, the JSON the rest.
    """
    limit = (MAX_CONTAINERS, MAX_VALUES, MAX_DEPTH)[probe]
    spread = [20, 50, 8]  # the body's own objects and lists, values and levels, where not probed
    spread[probe] = ((MAX_CONTAINERS - 100, MAX_VALUES - 100, MAX_DEPTH - 6)[probe] * share) // 100
    outer_lists, outer_zeros, outer_levels = spread

    def bodies(lists, zeros, levels):
        inner = _wrapped([[]] * lists + [0] * zeros, levels)
        text = json.dumps(inner)

        def body(there):
            return json.dumps({"pad": [[]] * outer_lists + [0] * outer_zeros, "x": _wrapped(there, outer_levels)})

        return body(text), text, body(inner)

    # One object or list, value or level more in the JSON is one more in the body holding it.
    sizes = [1, 1, 0]
    sizes[probe] += limit + past - _measured(bodies(*sizes)[2])[probe]
    outer, text, merged = bodies(*sizes)
    assert _measured(merged)[probe] == limit + past
    # The text sits in the body's object and outer_levels objects more.
    return outer, text, 1 + outer_levels, merged


@pytest.mark.parametrize("past", [0, 1], ids=["at the limit", "one over"])
@pytest.mark.parametrize("share", [0, 50, 100], ids=["all in the text", "half in each", "nearly all in the body"])
@pytest.mark.parametrize("probe", [0, 1, 2], ids=["objects and lists", "values", "depth"])
def test_json_read_from_text_is_bounded_as_if_it_were_part_of_the_body(probe, share, past):
    """The body and the JSON in its text draw on one total: refused exactly when the body holding that JSON is."""
    outer, text, depth, merged = _split_body(probe, share, past)
    assert _refusal(outer) is None
    assert _refusal(merged) == (None if past == 0 else (TOO_MANY, TOO_MANY, TOO_DEEP)[probe])
    refusal = _budget_refusal(outer, text, depth)
    assert (refusal is None) == (past == 0), refusal


@pytest.mark.parametrize("extra", [0, 1], ids=["at the limit", "one byte over"])
def test_the_body_and_the_json_in_its_text_share_one_byte_limit(extra):
    """Bytes are the body's plus each text's UTF-8: "é" counts two."""
    text = json.dumps({"a": "é" * 100}, ensure_ascii=False)
    outer = json.dumps({"arguments": text})
    refusal = _budget_refusal(outer, text, 1, max_bytes=len(outer) + len(text.encode()) - extra)
    if extra == 0:
        assert refusal is None
    else:
        assert refusal.startswith("The body and the JSON inside its text are larger than")


def test_json_in_text_far_past_the_limits_is_refused_before_it_is_parsed():
    """4 MB of "{}," in a tool call's arguments: parsing it would build 1.3 million objects (hundreds of MB)."""
    text = '{"a":[' + ",".join(["{}"] * 1_330_000) + "]}"
    tracemalloc.start()
    try:
        refusal = _budget_refusal(json.dumps({"arguments": "x"}), text, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refusal is not None and "too many values" in refusal
    assert peak < 30 << 20, f"{peak >> 20} MB to refuse {len(text) >> 20} MB of JSON text"


def test_brackets_in_the_text_of_json_read_from_text_do_not_count():
    """Code in a tool call's arguments: its brackets and commas are text, and the call is read."""
    code = "[{" * MAX_CONTAINERS + "," * MAX_VALUES
    text = json.dumps({"path": "a.py", "content": code})
    assert _budget_refusal(json.dumps({"arguments": text, "code": code}), text, 1) is None
