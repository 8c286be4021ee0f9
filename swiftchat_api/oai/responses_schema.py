"""The body of POST /v1/responses, OpenAI's Responses API. Unknown fields are ignored, as on chat.

Input items are loaded into one plain shape per type (below), so that the translation to a
chat-completions body (responses.py) reads no raw JSON. What this server cannot do (built-in
tools, remote files, background runs, conversations) is refused here with a 400 that names it.
"""

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from .schemas import (
    EFFORT_SHARE,
    MAX_DATA_URL,
    MAX_PARTS,
    MAX_TEXT,
    MAX_TOOLS,
    TOOL_NAME,
    WholeMatch,
    _JsonSchema,
    _Open,
    load_each,
    temperature_field,
    top_p_field,
)

MAX_ITEMS = 2000  # input items in one request, as chat takes messages
MAX_ID = 512  # characters of a call id or an item id
MAX_METADATA = 16  # OpenAI's limits: 16 pairs, keys of 64 characters, values of 512
MAX_INCLUDE = 16

# Built-in tools run by OpenAI's servers; this one runs none. Named in the 400.
HOSTED_TOOLS = (
    "web_search",
    "web_search_preview",
    "file_search",
    "computer",
    "computer_use_preview",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
    "namespace",
    "tool_search",
)
# Values of ``include``: the encrypted reasoning is always in the answer; the others name outputs
# of tools this server does not run, or log probabilities (which Bedrock does not give).
INCLUDABLE = (
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
)
ROLES = ("user", "system", "developer", "assistant")
_NAME = re.compile(TOOL_NAME)
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal", "summary_text": "text"}


def _text(value, what="Text"):
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string.")
    if len(value) > MAX_TEXT:
        raise ValidationError(f"{what} longer than {MAX_TEXT} characters.")
    return value


def _image(part):
    if part.get("file_id") is not None:
        raise ValidationError("Files uploaded to OpenAI are not on this server: send the image as a data URL.")
    url = part.get("image_url")
    if isinstance(url, dict):  # as chat sends it
        url = url.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("An input_image part needs image_url (a data URL).")
    if len(url) > MAX_DATA_URL:
        raise ValidationError(f"Image data longer than {MAX_DATA_URL} characters.")
    return {"type": "image", "url": url}


def _part(part):
    """One content part: ``{"type": "text", "text"}`` or ``{"type": "image", "url"}``."""
    if not isinstance(part, dict):
        raise ValidationError("Each content part must be an object.")
    kind = part.get("type")
    if not isinstance(kind, str):
        raise ValidationError("A content part's type must be a string.")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": _text(part.get(_TEXT_PARTS[kind]), f"A {kind} part's {_TEXT_PARTS[kind]}")}
    if kind == "input_image":
        return _image(part)
    if kind in ("input_file", "input_audio"):
        raise ValidationError(f"{kind} parts are not supported by this server: it takes input_text and input_image.")
    raise ValidationError("Unsupported content part type: this server takes input_text, input_image and output_text.")


def _parts(value, what="content"):
    """A string, or a list of parts, as a list of parts."""
    if isinstance(value, str):
        return [{"type": "text", "text": _text(value)}]
    if not isinstance(value, list):
        raise ValidationError(f"The {what} must be a string or a list of content parts.")
    if len(value) > MAX_PARTS:
        raise ValidationError(f"At most {MAX_PARTS} content parts.")
    return load_each(value, _part)


def _identifier(item, key, required=True):
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        raise ValidationError({key: [f"Must be a string of 1 to {MAX_ID} characters."]})
    return value


def _message(item):
    role = item.get("role")
    if role not in ROLES:
        raise ValidationError({"role": [f"Must be one of: {', '.join(ROLES)}."]})
    try:
        content = _parts(item.get("content"))
    except ValidationError as error:
        raise ValidationError({"content": error.messages}) from None
    if role != "user" and any(part["type"] == "image" for part in content):
        raise ValidationError({"content": ["Only user messages carry images."]})
    return {"type": "message", "role": role, "content": content}


def _function_call(item):
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError({"name": ["Not a valid function name."]})
    arguments = item.get("arguments", "")
    try:
        arguments = _text(arguments, "arguments")
    except ValidationError as error:
        raise ValidationError({"arguments": error.messages}) from None
    return {"type": "function_call", "call_id": _identifier(item, "call_id"), "name": name, "arguments": arguments}


def _function_call_output(item):
    output = item.get("output")
    try:
        parts = _parts(output, "output")
    except ValidationError as error:
        raise ValidationError({"output": error.messages}) from None
    return {"type": "function_call_output", "call_id": _identifier(item, "call_id"), "output": parts}


def _reasoning(item):
    summary = item.get("summary") or []
    if not isinstance(summary, list) or len(summary) > MAX_PARTS:
        raise ValidationError({"summary": [f"Must be a list of at most {MAX_PARTS} summary_text parts."]})
    texts = []
    for part in summary:
        if not isinstance(part, dict):
            raise ValidationError({"summary": ["Each summary part must be an object."]})
        texts.append(_text(part.get("text"), "A summary's text"))
    encrypted = item.get("encrypted_content")
    if encrypted is not None:
        try:
            encrypted = _text(encrypted, "encrypted_content")
        except ValidationError as error:
            raise ValidationError({"encrypted_content": error.messages}) from None
    return {
        "type": "reasoning",
        "id": _identifier(item, "id", required=False),
        "summary": texts,
        "encrypted_content": encrypted,
    }


_ITEMS = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "reasoning": _reasoning,
}


def _item(item):
    if not isinstance(item, dict):
        raise ValidationError("Each input item must be an object.")
    kind = item.get("type")
    if kind is None and "role" in item:  # OpenAI's "easy" message: a role and content
        kind = "message"
    if not isinstance(kind, str):
        raise ValidationError("An input item's type must be a string.")
    load = _ITEMS.get(kind)
    if load is not None:
        return load(item)
    if kind == "item_reference":
        raise ValidationError(
            "item_reference is not supported: send the item itself, or continue with previous_response_id."
        )
    raise ValidationError(
        "Unsupported input item type: this server takes message, function_call, function_call_output and "
        "reasoning items."
    )


def load_items(raw):
    """Items in OpenAI's shape (a stored conversation) loaded as ``input`` loads them; ValidationError otherwise."""
    return [_item(item) for item in raw]


class _Input(fields.Field):
    """``input``: a string (one user message) or a list of items; loaded into the plain shapes above."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return [{"type": "message", "role": "user", "content": [{"type": "text", "text": _text(value)}]}]
        if not isinstance(value, list):
            raise ValidationError("Must be a string or a list of input items.")
        if not value:
            raise ValidationError("Must hold at least one input item.")
        if len(value) > MAX_ITEMS:
            raise ValidationError(f"At most {MAX_ITEMS} input items.")
        return load_each(value, _item)


class _FunctionTool(_Open):
    type = fields.String(required=True)
    name = fields.String(required=True, validate=WholeMatch(TOOL_NAME, error="Not a valid function name."))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    parameters = _JsonSchema(load_default=None, allow_none=True)
    strict = fields.Boolean(load_default=None, allow_none=True)


class _Tool(fields.Field):
    """A ``function`` tool; a built-in tool type is refused by name."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("Each tool must be an object.")
        kind = value.get("type")
        if kind == "function":
            return _FunctionTool().load(value)
        if isinstance(kind, str) and kind in HOSTED_TOOLS:
            raise ValidationError(
                {
                    "type": [
                        f'Built-in tool "{kind}" is not supported: this server runs no tools; declare function tools.'
                    ]
                }
            )
        raise ValidationError({"type": ["Only function tools are supported."]})


class _ToolChoice(fields.Field):
    """``"none"``, ``"auto"``, ``"required"`` or ``{"type": "function", "name": ...}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("none", "auto", "required"):
            return value
        if isinstance(value, dict) and value.get("type") == "function":
            name = value.get("name")
            if isinstance(name, str) and _NAME.fullmatch(name):
                return {"type": "function", "name": name}
        elif isinstance(value, dict) and value.get("type") in (*HOSTED_TOOLS, "allowed_tools"):
            raise ValidationError(f'tool_choice "{value["type"]}" is not supported: name a function, or use auto.')
        raise ValidationError('Must be "none", "auto", "required" or {"type": "function", "name": ...}.')


_SUMMARIES = ("auto", "concise", "detailed")


class _Reasoning(_Open):
    effort = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["none", *EFFORT_SHARE]))
    summary = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(_SUMMARIES))
    generate_summary = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(_SUMMARIES))


class _Format(_Open):
    type = fields.String(required=True, validate=validate.OneOf(["text", "json_object", "json_schema"]))
    name = fields.String(load_default="response", validate=WholeMatch(TOOL_NAME, error="Not a valid name."))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    schema = _JsonSchema(load_default=None, allow_none=True)
    strict = fields.Boolean(load_default=None, allow_none=True)

    @validates_schema
    def _schema_given(self, data, **kwargs):
        if data["type"] == "json_schema" and data.get("schema") is None:
            raise ValidationError("A json_schema format needs its schema.", "schema")


class _Text(_Open):
    format = fields.Nested(_Format, load_default=None, allow_none=True)


class _Metadata(fields.Dict):
    """Up to 16 string pairs, kept and echoed as OpenAI keeps them."""

    def __init__(self, **kwargs):
        super().__init__(
            keys=fields.String(validate=validate.Length(max=64)),
            values=fields.String(validate=validate.Length(max=512)),
            **kwargs,
        )

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict) and len(value) > MAX_METADATA:
            raise ValidationError(f"At most {MAX_METADATA} metadata pairs.")
        return super()._deserialize(value, attr, data, **kwargs)


_TOKENS = validate.Range(min=1, max=10_000_000)


class ResponsesRequest(_Open):
    """The body of POST /v1/responses."""

    model = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    input = _Input(
        required=True,
        metadata={"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "object"}}]},
    )
    instructions = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    stream = fields.Boolean(load_default=False, allow_none=True)
    store = fields.Boolean(load_default=True, allow_none=True)
    previous_response_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=256))
    tools = fields.List(
        _Tool(metadata={"type": "object"}), load_default=None, allow_none=True, validate=validate.Length(max=MAX_TOOLS)
    )
    tool_choice = _ToolChoice(
        load_default=None,
        allow_none=True,
        metadata={"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]}, {"type": "object"}]},
    )
    parallel_tool_calls = fields.Boolean(load_default=True, allow_none=True)
    reasoning = fields.Nested(_Reasoning, load_default=None, allow_none=True)
    text = fields.Nested(_Text, load_default=None, allow_none=True)
    max_output_tokens = fields.Integer(load_default=None, allow_none=True, validate=_TOKENS)
    temperature = temperature_field()
    top_p = top_p_field()
    metadata = _Metadata(load_default=None, allow_none=True)
    user = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=512))
    truncation = fields.String(
        load_default="disabled",
        allow_none=True,
        validate=validate.OneOf(
            ["disabled"], error='Only "disabled": this server never drops turns of a conversation to make it fit.'
        ),
    )
    include = fields.List(
        fields.String(validate=validate.OneOf(INCLUDABLE)),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_INCLUDE),
    )
    background = fields.Boolean(
        load_default=False,
        allow_none=True,
        validate=validate.Equal(False, error="Background responses are not supported: stream, or wait for the answer."),
    )
    conversation = fields.Raw(load_default=None, allow_none=True)
    prompt = fields.Raw(load_default=None, allow_none=True)

    @validates_schema
    def _fits(self, data, **kwargs):
        if data.get("conversation") is not None:
            raise ValidationError(
                "Conversations are not supported: continue with previous_response_id.", "conversation"
            )
        if data.get("prompt") is not None:
            raise ValidationError("Stored prompt templates are not supported: send instructions.", "prompt")
        names = [tool["name"] for tool in data.get("tools") or []]
        if len(set(names)) != len(names):
            raise ValidationError("Tool names must be unique.", "tools")
        choice = data.get("tool_choice")
        if choice == "required" and not names:
            raise ValidationError('tool_choice "required" needs tools.', "tool_choice")
        if isinstance(choice, dict) and choice["name"] not in names:
            raise ValidationError("tool_choice names a function that is not in tools.", "tool_choice")
