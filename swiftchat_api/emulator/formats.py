"""What Claude's structured output refuses in a schema (``outputConfig.textFormat``), in Anthropic's words.

From the refusals users have quoted: "output_config.format.schema: For 'object' type,
'additionalProperties' must be explicitly set to false" (ax-llm/ax#458), "... 'additionalProperties:
true' is not supported. Please set 'additionalProperties' to false" (BerriAI/litellm#35808), "For
'integer' type, property 'minimum' is not supported" (agentjido/req_llm#302), "For 'array' type,
property 'maxItems' is not supported" (req_llm#706), "For 'array' type, 'minItems' values other
than 0 or 1 are not supported" (ghostlobster/memorize-everything#93). Recursion is refused in the
emulator's wording. The emulator's own account: the server's check is not consulted.
"""

import json

_PREFIX = "output_config.format.schema: "
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
           "maxItems")  # fmt: skip
_MAX_NODES = 20_000


def claude_refusal(config):
    """Anthropic's refusal of the schema in an ``outputConfig``, or None when Claude takes it."""
    raw = ((((config.get("textFormat") or {}).get("structure") or {}).get("jsonSchema")) or {}).get("schema")
    try:
        schema = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None  # tools.problem refuses a schema that is not JSON
    if not isinstance(schema, dict):
        return None
    walk = [(schema, ())]
    followed = set()
    for _ in range(_MAX_NODES):  # a schema that refers to one part many times is still checked in bounded time
        if not walk:
            break
        node, refs = walk.pop()
        if not isinstance(node, dict):
            continue
        found = _node_refusal(node)
        if found:
            return _PREFIX + found
        reference = node.get("$ref")
        if isinstance(reference, str):
            if reference in refs:
                return _PREFIX + "Recursive schemas are not supported"  # the emulator's wording
            if (reference, refs) not in followed:
                followed.add((reference, refs))
                walk.append((_target(schema, reference), (*refs, reference)))
        walk.extend((child, refs) for child in _children(node))
    return None


def _kind(node):
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in node else "array" if "items" in node else "string"


def _node_refusal(node):
    kind = _kind(node)
    if kind == "object":
        if "additionalProperties" not in node:
            return "For 'object' type, 'additionalProperties' must be explicitly set to false"
        if node["additionalProperties"] is not False:
            return (
                "For 'object' type, 'additionalProperties: true' is not supported. "
                "Please set 'additionalProperties' to false"
            )
    for keyword in _BOUNDS:
        if keyword in node:
            return f"For '{kind}' type, property '{keyword}' is not supported"
    if node.get("minItems", 0) not in (0, 1):
        return "For 'array' type, 'minItems' values other than 0 or 1 are not supported"
    return None


def _children(node):
    for key in ("properties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            yield from node[key].values()
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(node.get(key), list):
            yield from node[key]
    if isinstance(node.get("items"), dict):
        yield node["items"]


def _target(schema, reference):
    node = schema
    for part in filter(None, reference.lstrip("#").split("/")):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node
