"""The request bodies of /v1: chat completions, embeddings and images. Unknown fields are ignored."""

import base64
import binascii
import json
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from ..adapt import EFFORT_SHARE  # reasoning_effort's values; adapt.py maps each per model
from ..schemas import PlainFirst
from . import tokens

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
MAX_EMBEDDING_TOKENS = 8192  # in one token array: OpenAI's embedding models' context
MAX_REQUEST_TOKENS = 300_000  # in all the token arrays of one request, as OpenAI bounds them
MAX_TOKEN_ID = max(tokens.LARGEST.values())
# The JSON values an embeddings body may hold: every token id of the largest request, and its lists.
MAX_EMBEDDING_VALUES = MAX_REQUEST_TOKENS + MAX_EMBEDDING_INPUTS + 100
EMBEDDING_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")  # Cohere's words

TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # as the OpenAPI document says it (ECMA); matched whole (WholeMatch)

MAX_THINKING_BLOCKS = 64  # in one assistant message
MAX_SIGNATURE = 100_000  # characters of one thinking block's signature
_BUDGET = validate.Range(min=1024, max=10_000_000, error="Claude's thinking budget is at least 1024 tokens.")


def temperature_field():
    """``temperature`` as Bedrock takes it (chat's body and the Responses API's): 0 to 1, or left out."""
    return fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=1, error="Bedrock models take a temperature from 0 to 1."),
    )


def top_p_field():
    """``top_p`` as Bedrock takes it: 0 to 1, or left out."""
    return fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=1))


class WholeMatch(validate.Regexp):
    """A pattern the whole value must match: ``$`` alone also matches before a final newline."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


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


def load_each(values, load):
    """``load`` of every value; one ValidationError naming each that failed by its index."""
    loaded, problems = [], {}
    for index, value in enumerate(values):
        try:
            loaded.append(load(value))
        except ValidationError as error:
            problems[index] = error.messages
    if problems:
        raise ValidationError(problems)
    return loaded


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
        return load_each(value, _part)


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
    name = fields.String(required=True, validate=WholeMatch(TOOL_NAME, error="Not a valid function name."))
    arguments = fields.String(load_default="", validate=validate.Length(max=MAX_TEXT))


class _ToolCall(_Open):
    id = fields.String(required=True, validate=validate.Length(min=1, max=512))
    type = fields.String(load_default="function", validate=validate.OneOf(["function"]))
    function = fields.Nested(_CalledFunction, required=True)


_ROLES = ("system", "developer", "user", "assistant", "tool")


def _base64(text):
    try:
        return bool(text) and bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False


class _ThinkingBlock(_Open):
    """A signed thinking block of an assistant's answer, sent back as the answer gave it (LiteLLM's shape)."""

    type = fields.String(required=True, validate=validate.OneOf(["thinking", "redacted_thinking"]))
    thinking = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    signature = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=MAX_SIGNATURE))
    data = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=MAX_TEXT))

    @validates_schema
    def _complete(self, data, **kwargs):
        if data["type"] == "thinking" and (data.get("thinking") is None or not data.get("signature")):
            raise ValidationError("A thinking block needs its thinking and its signature, as the answer gave them.")
        if data["type"] == "redacted_thinking" and not _base64(data.get("data")):
            raise ValidationError("A redacted_thinking block needs its data (base64), as the answer gave it.")


class _Thinking(_Open):
    """Anthropic's ``thinking`` (through ``extra_body``): adapted to the model's own switch (adapt.py)."""

    type = fields.String(required=True, validate=validate.OneOf(["enabled", "adaptive", "disabled"]))
    budget_tokens = fields.Integer(load_default=None, allow_none=True, validate=_BUDGET)


class _Message(_Open):
    role = fields.String(required=True, validate=validate.OneOf(_ROLES))
    content = _Content(load_default=None, allow_none=True)
    tool_calls = fields.List(
        fields.Nested(_ToolCall), load_default=None, allow_none=True, validate=validate.Length(max=MAX_TOOL_CALLS)
    )
    tool_call_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=512))
    cache_control = _CacheControl(load_default=None, allow_none=True)
    thinking_blocks = fields.List(
        fields.Nested(_ThinkingBlock),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_THINKING_BLOCKS),
    )

    @validates_schema
    def _fits_the_role(self, data, **kwargs):
        role, content = data["role"], data.get("content")
        if data.get("thinking_blocks") and role != "assistant":
            raise ValidationError("Only assistant messages carry thinking_blocks.", "thinking_blocks")
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
    name = fields.String(required=True, validate=WholeMatch(TOOL_NAME, error="Not a valid function name."))
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
    name = fields.String(load_default="response", validate=WholeMatch(TOOL_NAME, error="Not a valid name."))
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


class _FunctionCallChoice(fields.Field):
    """The legacy ``function_call``: ``"none"``, ``"auto"`` or ``{"name": ...}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("none", "auto"):
            return value
        name = value.get("name") if isinstance(value, dict) else None
        if isinstance(name, str) and re.fullmatch(TOOL_NAME, name):
            return {"name": name}
        raise ValidationError('Must be "none", "auto" or {"name": ...}.')


def _legacy_choice(value):
    """The ``tool_choice`` a legacy ``function_call`` stands for (None when it is not one: its field says why)."""
    if value in ("none", "auto"):
        return value
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    return None


def _legacy_messages(messages):
    """Messages of the legacy functions API as tool calls and tool messages, with ids made up to pair them.

    An assistant's ``function_call`` becomes its one tool call; a ``function`` message answers the
    latest of them (legacy calls carry no id).
    """
    converted, latest = [], None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            converted.append(message)
            continue
        called = message.get("function_call")
        if called is not None:
            if message.get("tool_calls") is not None or not isinstance(called, dict):
                problem = 'Must be {"name": ..., "arguments": ...}, without tool_calls beside it.'
                raise ValidationError({index: {"function_call": [problem]}})
            latest = (f"call_function_{index}", called.get("name"))
            message = {**message, "tool_calls": [{"id": latest[0], "type": "function", "function": called}]}
        elif message.get("role") == "function":
            if latest is None:
                problem = "A function message must follow an assistant message with a function_call."
                raise ValidationError({index: {"role": [problem]}})
            if message.get("name", latest[1]) != latest[1]:
                raise ValidationError({index: {"name": ["Not the function of the function_call before it."]}})
            message = {**message, "role": "tool", "tool_call_id": latest[0]}
            latest = None
        converted.append(message)
    return converted


def _plain_message(value):
    """A message of text without tool fields, loaded as ``_Message`` loads it; None for any other."""
    if type(value) is not dict or "cache_control" in value:
        return None
    if value.get("tool_calls") is not None or value.get("tool_call_id") is not None:
        return None
    if value.get("thinking_blocks") is not None:
        return None
    role, content = value.get("role"), value.get("content")
    if type(role) is not str or role not in _TEXT_ROLES or type(content) is not str or len(content) > MAX_TEXT:
        return None
    loaded = {"role": role, "content": [_text(content)], "tool_calls": None, "tool_call_id": None}
    return {**loaded, "cache_control": None, "thinking_blocks": None}


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
    temperature = temperature_field()
    top_p = top_p_field()
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
    # Beyond OpenAI's body (clients send them through extra_body): honoured where the model takes them.
    top_k = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=1000))
    thinking = fields.Nested(_Thinking, load_default=None, allow_none=True)
    logprobs = fields.Boolean(
        load_default=None,
        allow_none=True,
        validate=validate.Equal(False, error="Bedrock returns no token log probabilities: logprobs is not supported."),
    )
    top_logprobs = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Equal(0, error="Bedrock returns no token log probabilities: top_logprobs is not supported."),
    )
    # OpenAI's legacy functions API, read as tools (see _legacy_functions); kept so the answer speaks it too.
    functions = fields.List(
        fields.Nested(_FunctionSpec), load_default=None, allow_none=True, validate=validate.Length(max=MAX_TOOLS)
    )
    function_call = _FunctionCallChoice(load_default=None, allow_none=True)

    @pre_load
    def _legacy_functions(self, data, **kwargs):
        """The legacy ``functions``, ``function_call`` and ``function`` messages read as tools and tool messages."""
        if not isinstance(data, dict):
            return data
        data, functions = dict(data), data.get("functions")
        if functions is not None:
            if data.get("tools") is not None:
                raise ValidationError("Send tools or the legacy functions, not both.", "functions")
            try:  # its errors in its own words, before tools exist
                self.fields["functions"].deserialize(functions)
            except ValidationError as error:
                raise ValidationError({"functions": error.messages}) from None
            data["tools"] = [{"type": "function", "function": function} for function in functions]
        if data.get("function_call") is not None:
            if data.get("tool_choice") is not None:
                raise ValidationError("Send tool_choice or the legacy function_call, not both.", "function_call")
            choice = data["tool_choice"] = _legacy_choice(data["function_call"])
            names = [function["name"] for function in functions or []]
            if isinstance(choice, dict) and choice["function"]["name"] not in names:
                raise ValidationError("function_call names a function that is not in functions.", "function_call")
        messages = data.get("messages")
        if isinstance(messages, list) and len(messages) <= MAX_MESSAGES:
            try:
                data["messages"] = _legacy_messages(messages)
            except ValidationError as error:
                raise ValidationError({"messages": error.messages}) from None
        return data

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


def _token_id(value):
    return type(value) is int and 0 <= value <= MAX_TOKEN_ID


def _token_arrays(values):
    """Token arrays, checked for shape and size (whether each id is in the encoding is checked on decoding)."""
    problems = {}
    for index, array in enumerate(values):
        if not array or len(array) > MAX_EMBEDDING_TOKENS:
            problems[index] = [f"A token array holds 1 to {MAX_EMBEDDING_TOKENS} tokens."]
        elif not all(_token_id(token) for token in array):
            problems[index] = [f"Token ids are whole numbers from 0 to {MAX_TOKEN_ID}."]
    if problems:
        raise ValidationError(problems)
    if sum(map(len, values)) > MAX_REQUEST_TOKENS:
        raise ValidationError(f"At most {MAX_REQUEST_TOKENS} tokens in one request.")
    return values


class _EmbeddingInput(fields.Field):
    """``input``: a string, a list of strings, a token array or a list of token arrays; a list either way."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values:
            raise ValidationError("Must be a string, a token array, or a non-empty list of strings or token arrays.")
        if len(values) > MAX_EMBEDDING_INPUTS:
            raise ValidationError(f"At most {MAX_EMBEDDING_INPUTS} inputs.")
        if all(type(item) is list for item in values):
            return _token_arrays(values)
        if all(type(item) is int for item in values):  # one token array
            return _token_arrays([values])
        if not all(isinstance(item, str) for item in values):
            raise ValidationError("Must be strings or token arrays (lists of token ids), not a mixture.")
        if any(not item.strip() for item in values):
            raise ValidationError("Inputs must not be empty.")
        if any(len(item) > MAX_EMBEDDING_TEXT for item in values):
            raise ValidationError(f"Each input must be at most {MAX_EMBEDDING_TEXT} characters.")
        return values


class EmbeddingsRequest(_Open):
    """The body of POST /v1/embeddings; token arrays are loaded as the texts they encode (see tokens.py).

    Token arrays are read in ``token_encoding`` when the request names one, else in cl100k_base
    (what OpenAI's embedding models and LangChain use), or o200k_base when an id lies past
    cl100k_base's last one.
    """

    model = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    input = _EmbeddingInput(required=True)
    encoding_format = fields.String(load_default="float", validate=validate.OneOf(["float", "base64"]))
    dimensions = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=100_000))
    input_type = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(EMBEDDING_INPUT_TYPES))
    token_encoding = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(list(tokens.ENCODINGS)))

    @post_load
    def _texts(self, data, **kwargs):
        """The request with every token array decoded to its text."""
        arrays = [item for item in data["input"] if not isinstance(item, str)]
        if not arrays:
            return data
        name = data["token_encoding"] = data.get("token_encoding") or tokens.fitting(arrays)
        texts, problems = [], {}
        for index, item in enumerate(data["input"]):
            if isinstance(item, str):
                texts.append(item)
                continue
            unknown = next((at for at, token_id in enumerate(item) if not tokens.known(token_id, name)), None)
            text = "" if unknown is not None else tokens.decode(item, name)
            if unknown is not None:
                problems[index] = {unknown: [f"Not a token id of {name}."]}
            elif not text.strip():
                problems[index] = ["The tokens are blank text."]
            elif len(text) > MAX_EMBEDDING_TEXT:
                problems[index] = [f"The tokens are more than {MAX_EMBEDDING_TEXT} characters of text."]
            texts.append(text)
        if problems:
            raise ValidationError({"input": problems})
        data["input"] = texts
        return data


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
