"""The request bodies of /v1: chat completions, embeddings and images. Unknown fields are ignored."""

import json
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from ..schemas import PlainFirst

MAX_MESSAGES = 2000
MAX_PARTS = 256  # content parts in one message
MAX_TEXT = 4_000_000  # characters in one text
MAX_DATA_URL = 16_000_000  # characters in one data: URL (Bedrock takes images up to 3.75 MB)
MAX_TOOLS = 128
MAX_TOOL_CALLS = 128  # in one assistant message
MAX_SCHEMA = 100_000  # characters of one JSON schema, serialised
MAX_STOPS = 64
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_TEXT = 50_000

TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"

# reasoning_effort → share of maxTokens given to thinking; never under Claude's minimum budget.
EFFORT_SHARE = {"minimal": 0.0, "low": 0.25, "medium": 0.5, "high": 0.75}


class _Open(Schema):
    """OpenAI adds fields often; one this server does not know is ignored, never an error."""

    class Meta:
        unknown = EXCLUDE


def _json_size(value):
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError, RecursionError):
        return MAX_SCHEMA + 1


class _JsonSchema(fields.Dict):
    """A JSON schema object, bounded in size."""

    def _deserialize(self, value, attr, data, **kwargs):
        loaded = super()._deserialize(value, attr, data, **kwargs)
        if _json_size(loaded) > MAX_SCHEMA:
            raise ValidationError(f"The schema is larger than {MAX_SCHEMA} characters.")
        return loaded


CACHE_TTLS = ("5m", "1h")  # Bedrock's cachePoint ttl values, as Anthropic names them


def _cache_point(control):
    """The Converse cachePoint a ``cache_control`` asks for, or None for none."""
    if control is None:
        return None
    ttl = control.get("ttl") if isinstance(control, dict) else None
    if not isinstance(control, dict) or control.get("type") != "ephemeral" or ttl not in (None, *CACHE_TTLS):
        raise ValidationError('cache_control must be {"type": "ephemeral"}, with an optional "ttl" of "5m" or "1h".')
    return {"type": "default", "ttl": ttl} if ttl else {"type": "default"}


class _CacheControl(fields.Field):
    """``cache_control`` of a message or a tool, loaded as the Converse cachePoint it asks for."""

    def _deserialize(self, value, attr, data, **kwargs):
        return _cache_point(value)


def _text(text, cache=None):
    """A content part of text, as every message's content is normalised."""
    return {"type": "text", "text": text, "cache": cache}


def _text_part(part):
    text = part.get("text")
    if not isinstance(text, str):
        raise ValidationError("A text part needs a string text.")
    if len(text) > MAX_TEXT:
        raise ValidationError(f"Text longer than {MAX_TEXT} characters.")
    return _text(text, _cache_point(part.get("cache_control")))


def _image_part(part):
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise ValidationError("An image_url part needs image_url.url.")
    if len(url) > MAX_DATA_URL:
        raise ValidationError(f"Image data longer than {MAX_DATA_URL} characters.")
    return {"type": "image", "url": url, "cache": _cache_point(part.get("cache_control"))}


class _Content(fields.Field):
    """A message's content: a string, or a list of parts; normalised to a list of parts."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise ValidationError(f"Text longer than {MAX_TEXT} characters.")
            return [_text(value)]
        if not isinstance(value, list):
            raise ValidationError("Content must be a string or a list of content parts.")
        if len(value) > MAX_PARTS:
            raise ValidationError(f"At most {MAX_PARTS} content parts in one message.")
        parts, problems = [], {}
        for index, part in enumerate(value):
            try:
                parts.append(_part(part))
            except ValidationError as error:
                problems[index] = error.messages
        if problems:
            raise ValidationError(problems)
        return parts


def _part(part):
    if not isinstance(part, dict):
        raise ValidationError("Each content part must be an object.")
    kind = part.get("type")
    if kind == "text":
        return _text_part(part)
    if kind == "refusal":  # an assistant's refusal, sent back in the history
        return _text_part({"text": part.get("refusal")})
    if kind == "image_url":
        return _image_part(part)
    raise ValidationError("Unsupported content part type: this server takes text and image_url parts.")


class _CalledFunction(_Open):
    name = fields.String(required=True, validate=validate.Regexp(TOOL_NAME, error="Not a valid function name."))
    arguments = fields.String(load_default="", validate=validate.Length(max=MAX_TEXT))


class _ToolCall(_Open):
    id = fields.String(required=True, validate=validate.Length(min=1, max=512))
    type = fields.String(load_default="function", validate=validate.OneOf(["function"]))
    function = fields.Nested(_CalledFunction, required=True)


_ROLES = ("system", "developer", "user", "assistant", "tool")


class _Message(_Open):
    role = fields.String(required=True, validate=validate.OneOf(_ROLES))
    content = _Content(load_default=None, allow_none=True)
    tool_calls = fields.List(
        fields.Nested(_ToolCall), load_default=None, allow_none=True, validate=validate.Length(max=MAX_TOOL_CALLS)
    )
    tool_call_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=512))
    cache_control = _CacheControl(load_default=None, allow_none=True)

    @validates_schema
    def _fits_the_role(self, data, **kwargs):
        role, content = data["role"], data.get("content")
        if role == "assistant":
            if content is None and not data.get("tool_calls"):
                raise ValidationError("An assistant message needs content or tool_calls.", "content")
        elif content is None:
            raise ValidationError(f"A {role} message needs content.", "content")
        if data.get("tool_calls") and role != "assistant":
            raise ValidationError("Only assistant messages carry tool_calls.", "tool_calls")
        if role == "tool" and not data.get("tool_call_id"):
            raise ValidationError("A tool message needs the tool_call_id it answers.", "tool_call_id")
        if role not in ("user", "tool") and any(part["type"] == "image" for part in content or []):
            raise ValidationError("Only user and tool messages carry images.", "content")


class _FunctionSpec(_Open):
    name = fields.String(required=True, validate=validate.Regexp(TOOL_NAME, error="Not a valid function name."))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_SCHEMA))
    parameters = _JsonSchema(load_default=None, allow_none=True)
    strict = fields.Boolean(load_default=None, allow_none=True)


class _Tool(_Open):
    type = fields.String(
        required=True, validate=validate.OneOf(["function"], error="Only function tools are supported.")
    )
    function = fields.Nested(_FunctionSpec, required=True)
    cache_control = _CacheControl(load_default=None, allow_none=True)


class _ToolChoice(fields.Field):
    """``"none"``, ``"auto"``, ``"required"`` or ``{"type": "function", "function": {"name": ...}}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("none", "auto", "required"):
            return value
        if isinstance(value, dict) and value.get("type", "function") == "function":
            function = value.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            if isinstance(name, str) and re.fullmatch(TOOL_NAME, name):
                return {"name": name}
        raise ValidationError('Must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.')


class _Stop(fields.Field):
    """``stop``: one string or a list of them; empty strings dropped."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            raise ValidationError("Must be a string or a list of strings.")
        if len(values) > MAX_STOPS or any(len(item) > 1000 for item in values):
            raise ValidationError(f"At most {MAX_STOPS} stop sequences of at most 1000 characters.")
        return [item for item in values if item]


class _JsonSchemaFormat(_Open):
    name = fields.String(load_default="response", validate=validate.Regexp(TOOL_NAME, error="Not a valid name."))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_SCHEMA))
    schema = _JsonSchema(required=True)


class _ResponseFormat(_Open):
    type = fields.String(required=True, validate=validate.OneOf(["text", "json_object", "json_schema"]))
    json_schema = fields.Nested(_JsonSchemaFormat, load_default=None, allow_none=True)

    @validates_schema
    def _schema_given(self, data, **kwargs):
        if data["type"] == "json_schema" and not data.get("json_schema"):
            raise ValidationError("json_schema response_format needs json_schema.schema.", "json_schema")


class _StreamOptions(_Open):
    include_usage = fields.Boolean(load_default=False, allow_none=True)


_TEXT_ROLES = frozenset(_ROLES) - {"tool"}  # a tool's answer needs its tool_call_id


def _plain_message(value):
    """A message of text without tool fields, loaded as ``_Message`` loads it; None for any other."""
    if type(value) is not dict or "cache_control" in value:
        return None
    if value.get("tool_calls") is not None or value.get("tool_call_id") is not None:
        return None
    role, content = value.get("role"), value.get("content")
    if type(role) is not str or role not in _TEXT_ROLES or type(content) is not str or len(content) > MAX_TEXT:
        return None
    return {"role": role, "content": [_text(content)], "tool_calls": None, "tool_call_id": None, "cache_control": None}


_TOKENS = validate.Range(min=1, max=10_000_000)


class ChatCompletionRequest(_Open):
    """The body of POST /v1/chat/completions."""

    model = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    messages = fields.List(
        PlainFirst(_Message, _plain_message), required=True, validate=validate.Length(min=1, max=MAX_MESSAGES)
    )
    stream = fields.Boolean(load_default=False, allow_none=True)
    stream_options = fields.Nested(_StreamOptions, load_default=None, allow_none=True)
    max_tokens = fields.Integer(load_default=None, allow_none=True, validate=_TOKENS)
    max_completion_tokens = fields.Integer(load_default=None, allow_none=True, validate=_TOKENS)
    temperature = fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=1, error="Bedrock models take a temperature from 0 to 1."),
    )
    top_p = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=1))
    stop = _Stop(load_default=None, allow_none=True)
    n = fields.Integer(
        load_default=1, allow_none=True, validate=validate.Equal(1, error="Bedrock gives one answer per call: n=1.")
    )
    tools = fields.List(
        fields.Nested(_Tool), load_default=None, allow_none=True, validate=validate.Length(max=MAX_TOOLS)
    )
    tool_choice = _ToolChoice(load_default=None, allow_none=True)
    reasoning_effort = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(["none", *EFFORT_SHARE])
    )
    response_format = fields.Nested(_ResponseFormat, load_default=None, allow_none=True)

    @validates_schema
    def _tools_fit(self, data, **kwargs):
        names = [tool["function"]["name"] for tool in data.get("tools") or []]
        if len(set(names)) != len(names):
            raise ValidationError("Tool names must be unique.", "tools")
        choice = data.get("tool_choice")
        if choice == "required" and not names:
            raise ValidationError('tool_choice "required" needs tools.', "tool_choice")
        if isinstance(choice, dict) and choice["name"] not in names:
            raise ValidationError("tool_choice names a function that is not in tools.", "tool_choice")


class _EmbeddingInput(fields.Field):
    """``input``: a string or a list of strings (token arrays are OpenAI-only)."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(item, str) for item in values):
            raise ValidationError("Must be a string or a non-empty list of strings (token arrays are not supported).")
        if len(values) > MAX_EMBEDDING_INPUTS:
            raise ValidationError(f"At most {MAX_EMBEDDING_INPUTS} inputs.")
        if any(not item.strip() for item in values):
            raise ValidationError("Inputs must not be empty.")
        if any(len(item) > MAX_EMBEDDING_TEXT for item in values):
            raise ValidationError(f"Each input must be at most {MAX_EMBEDDING_TEXT} characters.")
        return values


class EmbeddingsRequest(_Open):
    """The body of POST /v1/embeddings."""

    model = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    input = _EmbeddingInput(required=True)
    encoding_format = fields.String(load_default="float", validate=validate.OneOf(["float", "base64"]))
    dimensions = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=100_000))


class ImagesRequest(_Open):
    """The body of POST /v1/images/generations."""

    prompt = fields.String(required=True, validate=validate.Length(min=1, max=10000))
    model = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    n = fields.Integer(
        load_default=1, allow_none=True, validate=validate.Equal(1, error="This server draws one image per call: n=1.")
    )
    size = fields.String(
        load_default="1024x1024",
        allow_none=True,
        validate=validate.Regexp(r"^(auto|\d{2,5}x\d{2,5})$", error='Must be "WIDTHxHEIGHT", e.g. "1024x1024".'),
    )
    response_format = fields.String(
        load_default="b64_json",
        allow_none=True,
        validate=validate.OneOf(
            ["b64_json"], error="Only b64_json: this server keeps no images to link to (url is not supported)."
        ),
    )
