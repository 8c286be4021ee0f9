"""A value a JSON schema accepts: what the emulator's model answers a tool's schema or an output schema with.

It covers what models are given in practice (what pydantic, zod and hand-written schemas hold):
objects, arrays, scalars, ``enum``/``const``, ``anyOf``/``oneOf``/``allOf``, nullable types,
bounds on numbers, lengths and item counts, common string formats, and local ``$ref``s
(``#/$defs/...``), recursive ones included. A ``pattern`` is not followed.
"""

import json
import math

MAX_DEPTH = 16  # a recursive schema stops here; past half of it, only what is required is filled
MAX_ITEMS = 3
MAX_VALUES = 10_000  # values made for one schema: a wide recursive one would otherwise never end
MAX_PADDING = 100_000  # characters added to strings for their minLength, in one value: a model's answer is bounded

_FORMATS = {
    "date-time": "2024-05-01T12:00:00Z",
    "date": "2024-05-01",
    "time": "12:00:00",
    "email": "ada@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
}


def example(schema, position=0):
    """A deterministic value ``schema`` accepts; ``position`` tells apart the calls of one reply."""
    return _value(schema, {"root": schema, "left": MAX_VALUES, "padding": MAX_PADDING}, position, "value", 0)


def output_schema(body):
    """The schema of a request's ``outputConfig`` (structured output), or None; ValueError if it is not JSON."""
    text_format = (body.get("outputConfig") or {}).get("textFormat") or {}
    raw = ((text_format.get("structure") or {}).get("jsonSchema") or {}).get("schema")
    if text_format.get("type") != "json_schema" or not isinstance(raw, str):
        return None
    schema = json.loads(raw)
    if not isinstance(schema, dict):
        raise ValueError("not a JSON object")
    return schema


def output_text(body):
    """The text a model answers a structured-output request with: JSON its schema accepts; None without one."""
    schema = output_schema(body)
    return None if schema is None else json.dumps(example(schema), ensure_ascii=False)


def _resolve(reference, root):
    """The node a local ``$ref`` (``#/$defs/Name``) points at, or None."""
    if not isinstance(reference, str) or not reference.startswith("#"):
        return None
    node = root
    for part in filter(None, reference[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _kind(node):
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in node:
        return "object"
    return "array" if "items" in node else "string"


def _value(node, state, position, name, depth):
    state["left"] -= 1
    if not isinstance(node, dict) or depth > MAX_DEPTH or state["left"] < 0:
        return None
    if "$ref" in node:
        return _value(_resolve(node["$ref"], state["root"]), state, position, name, depth + 1)
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        options = (
            [o for o in options if isinstance(o, dict) and o.get("type") != "null"] if isinstance(options, list) else []
        )
        if options:
            return _value(options[0], state, position, name, depth + 1)
    if isinstance(node.get("allOf"), list):
        merged = {key: value for key, value in node.items() if key != "allOf"}
        properties, required = dict(_dict(node.get("properties"))), _names(node.get("required"))
        for part in node["allOf"]:
            state["left"] -= 1  # each part is merged: as much work as a value (a thousand of one $ref took seconds)
            if state["left"] < 0:
                return None
            part = _resolve(part.get("$ref"), state["root"]) if isinstance(part, dict) and "$ref" in part else part
            if isinstance(part, dict):
                properties.update(_dict(part.get("properties")))
                required.update(_names(part.get("required")))
                merged.setdefault("type", part.get("type"))
        merged["properties"], merged["required"] = properties, list(required)
        return _value(merged, state, position, name, depth + 1)
    kind = _kind(node)
    if kind == "object":
        return _object(node, state, position, depth)
    if kind == "array":
        return _array(node, state, position, name, depth)
    if kind == "string":
        return _string(node, state, position, name)
    if kind in ("integer", "number"):
        return _number(node, position, kind)
    if kind == "boolean":
        return True
    return None


def _object(node, state, position, depth):
    required = _names(node.get("required"))
    properties = node.get("properties") if isinstance(node.get("properties"), dict) else {}
    value = {}
    for key, sub in properties.items():
        if depth > MAX_DEPTH // 2 and key not in required:  # a recursive schema ends at its optional members
            continue
        value[key] = _value(sub, state, position, key, depth + 1)
    return value


def _array(node, state, position, name, depth):
    least = node.get("minItems") if isinstance(node.get("minItems"), int) else 0
    most = node.get("maxItems") if isinstance(node.get("maxItems"), int) else MAX_ITEMS
    count = least if depth > MAX_DEPTH // 2 else min(max(least, 1), most)
    return [_value(node.get("items") or {}, state, position + i, name, depth + 1) for i in range(min(count, 100))]


def _string(node, state, position, name):
    text = (_FORMATS.get(node["format"]) if isinstance(node.get("format"), str) else None) or f"{name} {position}"
    least = node.get("minLength") if isinstance(node.get("minLength"), int) else 0
    most = node.get("maxLength") if isinstance(node.get("maxLength"), int) else None
    padded = text.ljust(min(least, 10_000, len(text) + max(0, state["padding"])), "x")
    state["padding"] -= len(padded) - len(text)
    text = padded
    return text[:most] if most is not None else text


def _number(node, position, kind):
    low = node.get("minimum")
    if _finite(node.get("exclusiveMinimum")):
        low = node["exclusiveMinimum"] + (1 if kind == "integer" else 0.5)
    high = node.get("maximum")
    if _finite(node.get("exclusiveMaximum")):
        high = node["exclusiveMaximum"] - (1 if kind == "integer" else 0.5)
    value = position + 1 if kind == "integer" else position + 1.5
    if _finite(low):
        value = max(value, math.ceil(low) if kind == "integer" else low)
    if _finite(high):
        value = min(value, math.floor(high) if kind == "integer" else high)
    return value


def _finite(bound):
    return isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound)


def _dict(value):
    return value if isinstance(value, dict) else {}


def _names(value):
    """A schema's ``required`` as an ordered set of its names (whatever else it holds is no name)."""
    return dict.fromkeys(name for name in value if isinstance(name, str)) if isinstance(value, list) else {}
