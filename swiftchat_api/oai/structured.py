"""The JSON Schema Claude's structured output takes (Converse ``outputConfig.textFormat``).

Anthropic documents a subset and answers 400 to anything past it: every object closed
(``additionalProperties`` false), no numeric bounds, no string lengths, no array bounds beyond
``minItems`` 0 or 1, no recursion, only local ``$ref``s. A schema that can be closed goes
natively; any other goes by the answer tool, whose input schema takes all of JSON Schema.
"""

MAX_DEPTH = 64  # nodes deeper than this are not checked one by one: such a schema goes by tool

_UNSUPPORTED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                "maxLength", "maxItems")  # fmt: skip
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAPS = ("properties", "$defs", "definitions")


class _Unfit(Exception):
    """What in a schema Claude's structured output does not take."""


def claude_schema(schema):
    """(the schema with every object closed, None), or (None, why Claude's structured output cannot take it)."""
    try:
        return _closed(schema, {"root": schema, "checked": set()}, (), 0), None
    except _Unfit as unfit:
        return None, str(unfit)


def _target(reference, root):
    if not isinstance(reference, str) or not reference.startswith("#"):
        raise _Unfit("a $ref that is not local")
    node = root
    for part in filter(None, reference[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise _Unfit("a $ref to nothing")
        node = node[part]
    return node


def _closed(node, state, refs, depth):
    """A copy of ``node`` with its objects closed; ``refs`` are the $refs being followed (a cycle is recursion)."""
    if not isinstance(node, dict):
        return node
    if depth > MAX_DEPTH:
        raise _Unfit("nesting deeper than this server checks")
    reference = node.get("$ref")
    if reference is not None and not isinstance(reference, str):
        raise _Unfit("a $ref that is not local")
    if reference is not None and reference not in state["checked"]:
        if reference in refs:
            raise _Unfit("a recursive schema")
        _closed(_target(reference, state["root"]), state, (*refs, reference), depth + 1)
        state["checked"].add(reference)  # each target once: a schema that refers many times stays cheap
    for keyword in _UNSUPPORTED:
        if keyword in node:
            raise _Unfit(f"{keyword}")
    least = node.get("minItems")
    if least is not None and least not in (0, 1):
        raise _Unfit("minItems other than 0 or 1")
    copy = dict(node)
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties", False) is not False:
            raise _Unfit("additionalProperties other than false")
        copy["additionalProperties"] = False
    for key in _MAPS:
        if isinstance(node.get(key), dict):
            copy[key] = {name: _closed(sub, state, refs, depth + 1) for name, sub in node[key].items()}
    for key in _LISTS:
        if isinstance(node.get(key), list):
            copy[key] = [_closed(sub, state, refs, depth + 1) for sub in node[key]]
    if isinstance(node.get("items"), dict):
        copy["items"] = _closed(node["items"], state, refs, depth + 1)
    return copy
