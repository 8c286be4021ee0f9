"""OpenAI's API bodies ⇄ Bedrock's: chat completions ⇄ Converse, embeddings and images ⇄ InvokeModel.

Pure functions and one stateful stream translator: a validated OpenAI body in, boto3 keyword
arguments out; Bedrock's answer in, OpenAI's answer out. Nothing here touches Flask or the
network, so the /v1 views stay a few lines and every rule below is tested as a table.

Decisions where OpenAI and Bedrock do not line up (the README repeats them for users):
- ``tool_choice: "none"``: Bedrock's toolChoice has no "none", and any toolConfig makes its
  tools callable. So the call goes without a toolConfig, and tool calls and results already in
  the history travel as plain text (Bedrock refuses toolUse/toolResult blocks without one).
- Tools in the history but no ``tools`` in the request: each tool used is declared with an
  open schema (Bedrock wants a toolConfig whenever such blocks are present).
- ``reasoning_effort`` sets the thinking budget of Claude models that think (3.7, 4 and later)
  to a share of maxTokens; other models ignore it (DeepSeek R1 always reasons). A call that
  forces a tool goes without thinking (Claude refuses both at once), and so does one in the
  middle of a tool loop: Claude then wants the signed thinking block of its last turn back,
  which OpenAI's format cannot carry.
- ``response_format`` ``json_schema`` → Converse ``outputConfig.textFormat``; Bedrock itself
  refuses it (400) for a model without structured output, a list that changes every month.
  ``json_object`` has no Bedrock counterpart: it is asked for in the system prompt, not enforced.
- ``temperature`` above 1 is refused: Bedrock's range is 0 to 1, and rescaling would quietly
  change every other value.
"""

import base64
import binascii
import hashlib
import json
import re
import struct
import time
import uuid

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from . import bodies
from .exceptions import BEDROCK_STATUS, describe
from .schemas import PlainFirst
from .services.converse import max_tokens
from .services.images import family as image_family
from .services.images import size_problem

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
COHERE_BATCH = 96  # texts Cohere embeds in one call

TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
_TOOL_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")  # what Bedrock takes as a toolUseId
_PROFILE_PREFIX = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")
_THINKING_CLAUDE = re.compile(r"anthropic\.claude-(?:3-7-|(?:sonnet|opus|haiku)-(?:[4-9]|\d\d))")
_BEDROCK_CODE = re.compile(r"An error occurred \((\w+)\)")
_OPERATION = re.compile(
    r"^An error occurred \(\w+\)(?: \(reached max retries: \d+\))? when calling the \w+ operation: "
)

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

# reasoning_effort → share of maxTokens given to thinking; never under Claude's minimum budget.
EFFORT_SHARE = {"minimal": 0.0, "low": 0.25, "medium": 0.5, "high": 0.75}
MIN_THINKING_BUDGET = 1024

JSON_INSTRUCTION = "Reply with one valid JSON object and nothing else: no prose, no code fence."

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}

# Bedrock error code → OpenAI's ``code``, where OpenAI has a word for it that clients act on.
ERROR_CODES = {
    "ResourceNotFoundException": "model_not_found",
    "ThrottlingException": "rate_limit_exceeded",
    "ServiceQuotaExceededException": "rate_limit_exceeded",
    "AccessDeniedException": "permission_denied",
}


# --- errors ----------------------------------------------------------------------------------


class OpenAIError(Exception):
    """An error answered in OpenAI's shape, ``{"error": {...}}``, with an HTTP status."""

    def __init__(self, status, message, param=None, code=None, kind=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or error_type(status, code)

    def body(self):
        """The JSON body of this error."""
        return error_body(self.status, self.message, self.param, self.code, self.kind)


def error_type(status, code=None):
    """OpenAI's error ``type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "insufficient_quota" if code == "insufficient_quota" else "rate_limit_exceeded"
    if status == 500:
        return "server_error"
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status, message, param=None, code=None, kind=None):
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI's SDKs parse it."""
    return {"error": {"message": message, "type": kind or error_type(status, code), "param": param, "code": code}}


def upstream_error(error):
    """The OpenAIError for a botocore error: a refused call, or an exception inside a stream."""
    told = describe(error)  # never the caller's values, never a signature
    if isinstance(error, ClientError):
        raw = error.response.get("Error", {}).get("Code") or ""
        code = raw[:1].upper() + raw[1:]  # in-stream exceptions are spelt throttlingException
        message = _OPERATION.sub("", told, count=1)
        if code == "ValidationException" and "too long" in message.lower():
            return OpenAIError(400, message, code="context_length_exceeded")
        return OpenAIError(BEDROCK_STATUS.get(code, 502), message, code=ERROR_CODES.get(code))
    if isinstance(error, ParamValidationError):
        return OpenAIError(400, told)
    if isinstance(error, BotoCoreError):
        return OpenAIError(502, f"The connection to Bedrock failed: {told}")
    return OpenAIError(502, str(error) or type(error).__name__)


def _param(path):
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or None


def _first_problem(messages, path=()):
    if isinstance(messages, dict) and messages:
        key, value = next(iter(messages.items()))
        return _first_problem(value, path if key == "_schema" else (*path, key))
    if isinstance(messages, list) and messages:
        head = messages[0]
        return _first_problem(head, path) if isinstance(head, (dict, list)) else (path, str(head))
    return path, "Invalid value."


def invalid_body(error):
    """A 400 OpenAIError naming the first bad field of a marshmallow ValidationError (never its value)."""
    path, problem = _first_problem(error.messages)
    param = _param(path)
    return OpenAIError(400, f"{param}: {problem}" if param else problem, param=param)


def _refuse(message, param=None, code=None):
    raise OpenAIError(400, message, param=param, code=code)


# --- request schemas -------------------------------------------------------------------------


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


def _cached(part):
    control = part.get("cache_control")
    return isinstance(control, dict) and control.get("type") == "ephemeral"


def _text(text, cache=False):
    """A content part of text, as every message's content is normalised."""
    return {"type": "text", "text": text, "cache": cache}


def _text_part(part):
    text = part.get("text")
    if not isinstance(text, str):
        raise ValidationError("A text part needs a string text.")
    if len(text) > MAX_TEXT:
        raise ValidationError(f"Text longer than {MAX_TEXT} characters.")
    return _text(text, _cached(part))


def _image_part(part):
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise ValidationError("An image_url part needs image_url.url.")
    if len(url) > MAX_DATA_URL:
        raise ValidationError(f"Image data longer than {MAX_DATA_URL} characters.")
    return {"type": "image", "url": url, "cache": _cached(part)}


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
        if role != "user" and any(part["type"] == "image" for part in content or []):
            raise ValidationError("Only user messages carry images.", "content")


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
    if type(value) is not dict or value.get("tool_calls") is not None or value.get("tool_call_id") is not None:
        return None
    role, content = value.get("role"), value.get("content")
    if type(role) is not str or role not in _TEXT_ROLES or type(content) is not str or len(content) > MAX_TEXT:
        return None
    return {"role": role, "content": [_text(content)], "tool_calls": None, "tool_call_id": None}


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


# --- chat completions: request ---------------------------------------------------------------


def base_model(model_id):
    """The model id without its inference-profile geography (``us.``, ``global.``...)."""
    return _PROFILE_PREFIX.sub("", model_id, count=1)


def _tool_id(raw):
    """A toolUseId Bedrock takes, the same for a call and its result (other providers' ids vary)."""
    if _TOOL_ID.fullmatch(raw):
        return raw
    return "call_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def _image_block(url, param):
    if not url.startswith("data:"):
        _refuse(
            "Image URLs are not fetched by this server; send the image inline as a data URL "
            "(data:image/png;base64,...).",
            param,
            "image_url_not_supported",
        )
    header, _, data = url.partition(",")
    media, *options = header[len("data:") :].split(";")
    fmt = IMAGE_FORMATS.get(media.strip().lower())
    if fmt is None:
        _refuse("Images must be PNG, JPEG, GIF or WebP.", param)
    if "base64" not in (option.strip().lower() for option in options):
        _refuse("Image data URLs must be base64 (data:image/png;base64,...).", param)
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        _refuse("The image is not valid base64 data.", param)
    return {"image": {"format": fmt, "source": {"bytes": raw}}}


def _blocks(parts, param):
    """Converse blocks for normalised content parts; blank text dropped, a cache point after a marked part."""
    blocks = []
    for index, part in enumerate(parts or []):
        if part["type"] == "image":
            blocks.append(_image_block(part["url"], f"{param}[{index}].image_url"))
        elif part["text"].strip():  # Bedrock refuses blank text blocks
            blocks.append({"text": part["text"]})
        else:
            continue
        if part["cache"]:
            blocks.append({"cachePoint": {"type": "default"}})
    return blocks


# A tool call's arguments are text inside the body, in the body's object, its messages, a message,
# its tool_calls, the call and its function: JSON read from them is that many levels deep.
ARGUMENTS_DEPTH = 6


def _arguments(call, param, budget):
    """A tool call's arguments as an object, read on the request's body budget (checked before they are parsed)."""
    text = call["function"]["arguments"]
    try:
        value = budget.nested(text, ARGUMENTS_DEPTH) if text.strip() else {}
    except bodies.OverBudget as error:
        _refuse(error.reason, param)
    except ValidationError:  # not JSON
        value = None
    if not isinstance(value, dict):
        _refuse("Tool call arguments must be a JSON object.", param)
    return value


def _text_of(parts):
    return "".join(part["text"] for part in parts or [] if part["type"] == "text")


def _conversation(messages, tools_as_text, budget):
    """(system blocks, alternating Converse messages) for validated OpenAI messages; JSON in them read on ``budget``."""
    system, turns = [], []
    waiting = {}  # raw id → name: the latest assistant tool calls not answered yet
    answered = set()
    for i, message in enumerate(messages):
        role, param = message["role"], f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_blocks(message["content"], f"{param}.content"))
            continue
        if role == "tool":
            raw = message["tool_call_id"]
            if raw not in waiting or raw in answered:
                _refuse("This tool message answers no open tool call of the assistant message before it.", param)
            answered.add(raw)
            result = _text_of(message["content"])
            if tools_as_text:
                block = {"text": f"[result of tool call {raw} ({waiting[raw]})]: {result}"}
            else:
                block = {
                    "toolResult": {"toolUseId": _tool_id(raw), "content": [{"text": result}] if result.strip() else []}
                }
            turns.append(("user", [block]))
            continue
        if set(waiting) - answered:
            _refuse("The assistant's tool calls before this message were not all answered by tool messages.", param)
        waiting, answered = {}, set()
        blocks = _blocks(message["content"], f"{param}.content")
        for j, call in enumerate(message.get("tool_calls") or []):
            raw, name = call["id"], call["function"]["name"]
            arguments = _arguments(call, f"{param}.tool_calls[{j}].function.arguments", budget)
            if raw in waiting:
                _refuse("Two tool calls share one id.", f"{param}.tool_calls[{j}].id")
            waiting[raw] = name
            if tools_as_text:
                blocks.append({"text": f"[tool call {raw}: {name}({json.dumps(arguments, ensure_ascii=False)})]"})
            else:
                blocks.append({"toolUse": {"toolUseId": _tool_id(raw), "name": name, "input": arguments}})
        turns.append((role, blocks))
    if set(waiting) - answered:
        _refuse("The last assistant message's tool calls were not answered by tool messages.", "messages")
    return system, _alternating(turns)


def _alternating(turns):
    """Merge consecutive same-role turns (Bedrock wants user and assistant to alternate)."""
    merged = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for message in merged:
        if message["role"] == "user":  # Claude wants the tool results first in their turn
            message["content"].sort(key=lambda block: "toolResult" not in block)
    if not merged:
        _refuse("The messages hold nothing to answer.", "messages")
    if merged[0]["role"] != "user":
        _refuse("The first message after the system messages must be the user's (Bedrock's rule).", "messages")
    last = merged[-1]
    if last["role"] == "assistant" and "text" in last["content"][-1]:
        # A final assistant message is a prefill, and Claude refuses one that ends in whitespace.
        last["content"][-1] = {"text": last["content"][-1]["text"].rstrip()}
    return merged


def _tool_spec(tool):
    function = tool["function"]
    spec = {"name": function["name"], "inputSchema": {"json": function.get("parameters") or {"type": "object"}}}
    if function.get("description"):
        spec["description"] = function["description"]
    if function.get("strict"):
        spec["strict"] = True
    return {"toolSpec": spec}


def _tool_config(body, messages):
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    specs = [_tool_spec(tool) for tool in body.get("tools") or []]
    if not specs:
        used = dict.fromkeys(
            block["toolUse"]["name"] for message in messages for block in message["content"] if "toolUse" in block
        )
        specs = [
            {"toolSpec": {"name": name, "description": "A tool used earlier in this conversation.",
                          "inputSchema": {"json": {"type": "object"}}}}
            for name in used
        ]  # fmt: skip
    if not specs:
        return None
    config = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["name"]}}
    return config


def _thinking_budget(body, model, ceiling, messages):
    """The thinking budget for reasoning_effort, or None when this call does not think."""
    effort = body.get("reasoning_effort")
    if effort in (None, "none") or not _THINKING_CLAUDE.search(model):
        return None
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):  # Claude does not think when a tool call is forced
        return None
    last_assistant = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    if last_assistant and any("toolUse" in block for block in last_assistant["content"]):
        return None
    budget = max(MIN_THINKING_BUDGET, int(ceiling * EFFORT_SHARE[effort]))
    if budget >= ceiling:
        _refuse(f"reasoning_effort needs max_tokens above {MIN_THINKING_BUDGET}.", "max_tokens")
    return budget


def converse_args(body, budget=None):
    """The boto3 ``converse`` / ``converse_stream`` keyword arguments for a validated chat-completions body.

    ``budget`` is the request's ``bodies.Budget``, on which its body was read: the JSON in tool
    calls' arguments counts against the same limits (a fresh budget when none is given).
    """
    budget = bodies.Budget() if budget is None else budget
    model = body["model"]
    tools_as_text = body.get("tool_choice") == "none"
    system, messages = _conversation(body["messages"], tools_as_text, budget)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        system.append({"text": JSON_INSTRUCTION})
    ceiling = body.get("max_completion_tokens") or body.get("max_tokens") or max_tokens(base_model(model))
    inference = {"maxTokens": ceiling}
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    if body.get("stop"):
        inference["stopSequences"] = body["stop"]
    args = {"modelId": model, "messages": messages, "inferenceConfig": inference}
    if system:
        args["system"] = system
    tool_config = _tool_config(body, messages)
    if tool_config:
        args["toolConfig"] = tool_config
    thinking = _thinking_budget(body, model, ceiling, messages)
    if thinking:
        args["additionalModelRequestFields"] = {"reasoning_config": {"type": "enabled", "budget_tokens": thinking}}
    if response_format.get("type") == "json_schema":
        spec = response_format["json_schema"]
        schema = {"schema": json.dumps(spec["schema"]), "name": spec["name"]}
        if spec.get("description"):
            schema["description"] = spec["description"]
        args["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
    return args


# --- chat completions: answer ----------------------------------------------------------------


def include_usage(body):
    """Whether a streamed answer ends with a usage chunk (``stream_options.include_usage``)."""
    return bool((body.get("stream_options") or {}).get("include_usage"))


def new_id(prefix="chatcmpl"):
    """A fresh answer id such as ``chatcmpl-…``."""
    return f"{prefix}-{uuid.uuid4().hex}"


def now():
    """OpenAI's ``created``: whole seconds since the epoch."""
    return int(time.time())


def usage(bedrock_usage):
    """OpenAI's usage from Bedrock's: prompt tokens include the cached ones, as OpenAI counts them."""
    bedrock_usage = bedrock_usage or {}
    cached = bedrock_usage.get("cacheReadInputTokens") or 0
    prompt = (bedrock_usage.get("inputTokens") or 0) + cached + (bedrock_usage.get("cacheWriteInputTokens") or 0)
    completion_tokens = bedrock_usage.get("outputTokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def finish_reason(stop_reason, has_tool_calls):
    """OpenAI's finish_reason for Bedrock's stopReason; ``tool_calls`` exactly when the answer has some."""
    reason = FINISH_REASONS.get(stop_reason, "stop")
    if reason == "stop" and has_tool_calls:
        return "tool_calls"
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


def _client_tool(tool_use):
    """False for a tool Bedrock ran itself (server_tool_use): the client has nothing to call."""
    return tool_use.get("type") != "server_tool_use"


def completion(response, model, completion_id, created):
    """A ``chat.completion`` object from a Converse answer: every text block kept, in order."""
    texts, reasoning, calls = [], [], []
    for block in response.get("output", {}).get("message", {}).get("content", []):
        if "text" in block:
            texts.append(block["text"])
        elif "reasoningContent" in block:
            reasoning.append((block["reasoningContent"].get("reasoningText") or {}).get("text") or "")
        elif "toolUse" in block and _client_tool(block["toolUse"]):
            tool_use = block["toolUse"]
            arguments = json.dumps(tool_use.get("input") or {}, ensure_ascii=False)
            calls.append({"id": tool_use["toolUseId"], "type": "function",
                          "function": {"name": tool_use["name"], "arguments": arguments}})  # fmt: skip
    message = {"role": "assistant", "content": "".join(texts) if texts or not calls else None, "refusal": None}
    if "".join(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(response.get("stopReason"), bool(calls)),
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(response.get("usage")),
    }


class ChunkTranslator:
    """Turns one ConverseStream's events into ``chat.completion.chunk`` dicts; one per stream.

    Tool calls are numbered from 0 in the order they start, never by Bedrock's content block
    index (which counts text and reasoning blocks too, so a peer that subtracted one broke
    whenever a tool call came first).
    """

    def __init__(self, model, completion_id, created, include_usage=False):
        self.model = model
        self.id = completion_id
        self.created = created
        self.include_usage = include_usage
        self._role_sent = False
        self._calls = {}  # Bedrock contentBlockIndex → this answer's tool call index

    def _chunk(self, delta, finish=None):
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the last chunk carries usage
        return chunk

    def chunks(self, event):
        """The chunks (possibly none) for one boto3 ConverseStream event."""
        if "messageStart" in event:
            return [] if self._role_sent else [self._chunk({"content": ""})]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool_use = (start.get("start") or {}).get("toolUse")
            if not tool_use or not _client_tool(tool_use):
                return []
            index = self._calls[start.get("contentBlockIndex")] = len(self._calls)
            call = {"index": index, "id": tool_use["toolUseId"], "type": "function",
                    "function": {"name": tool_use["name"], "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"])
        if "messageStop" in event:
            return [self._chunk({}, finish_reason(event["messageStop"].get("stopReason"), bool(self._calls)))]
        if "metadata" in event:
            counted = usage(event["metadata"].get("usage"))
            if not self.include_usage:
                return []
            last = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            return [{**last, "choices": [], "usage": counted}]
        return []

    def _delta(self, block):
        delta = block.get("delta") or {}
        if delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        reasoning = (delta.get("reasoningContent") or {}).get("text")
        if reasoning:
            return [self._chunk({"reasoning_content": reasoning})]
        fragment = (delta.get("toolUse") or {}).get("input")
        index = self._calls.get(block.get("contentBlockIndex"))
        if fragment and index is not None:  # a block never started as a client tool call is not ours
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})]
        return []


# --- embeddings ------------------------------------------------------------------------------

# model id part → (the request field that sets the vector size, the sizes it takes); first match
# wins, and a model with no field has one fixed size.
EMBEDDING_SIZES = (
    ("titan-embed-text-v2", "dimensions", (256, 512, 1024)),
    ("titan-embed-image-v1", "embeddingConfig", (256, 384, 1024)),
    ("cohere.embed-v4", "output_dimension", (256, 512, 1024, 1536)),
    ("", None, ()),
)


def _invoke(model, payload):
    return {"modelId": model, "body": json.dumps(payload), "contentType": "application/json", "accept": "*/*"}


def embedding_calls(body):
    """The boto3 ``invoke_model`` keyword arguments for a validated embeddings body, in input order.

    Titan embeds one text per call, Cohere up to 96.
    """
    model, texts, dimensions = body["model"], body["input"], body.get("dimensions")
    if "amazon.titan-embed" not in model and "cohere.embed" not in model:
        _refuse("Not an embedding model this server drives: amazon.titan-embed-* or cohere.embed-*.", "model")
    field, sizes = next((field, sizes) for part, field, sizes in EMBEDDING_SIZES if part in model)
    if dimensions is not None and dimensions not in sizes:
        allowed = f"one of {', '.join(map(str, sizes))}" if sizes else "fixed, not settable"
        _refuse(f"dimensions for this model: {allowed}.", "dimensions")
    size = {}
    if dimensions is not None:
        size = {field: {"outputEmbeddingLength": dimensions} if field == "embeddingConfig" else dimensions}
    if "cohere.embed" in model:
        return [
            _invoke(model, {"texts": texts[start : start + COHERE_BATCH], "input_type": "search_document",
                            "embedding_types": ["float"], **size})
            for start in range(0, len(texts), COHERE_BATCH)
        ]  # fmt: skip
    # OpenAI's embeddings are unit length (clients compare them by dot product); Titan v2 can say so.
    unit = {"normalize": True} if "titan-embed-text-v2" in model else {}
    return [_invoke(model, {"inputText": text, **size, **unit}) for text in texts]


def _vectors(answer):
    """The float vectors in one InvokeModel answer (Titan: one, Cohere: one per text)."""
    if "embedding" in answer:
        return [answer["embedding"]]
    found = answer.get("embeddings")
    if isinstance(found, dict):
        found = found.get("float")
    if not isinstance(found, list):
        raise OpenAIError(502, "Bedrock's embedding answer holds no float vectors.")
    return found


def _encoded(vector, encoding):
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings(body, answers, token_counts=None):
    """OpenAI's embeddings answer from the parsed InvokeModel answers of ``embedding_calls(body)``.

    ``token_counts`` (one per answer, from the ``x-amzn-bedrock-input-token-count`` header) is
    used where the answer does not count its tokens itself (Cohere).
    """
    vectors, tokens = [], 0
    for position, answer in enumerate(answers):
        vectors.extend(_vectors(answer))
        counted = answer.get("inputTextTokenCount")
        if counted is None and token_counts:
            counted = token_counts[position]
        tokens += int(counted or 0)
    if len(vectors) != len(body["input"]):
        raise OpenAIError(502, "Bedrock answered with a different number of embeddings than inputs.")
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, body["encoding_format"])}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- images ----------------------------------------------------------------------------------


def image_request(body):
    """The request ``services.images.generate`` takes, for a validated images/generations body."""
    model = body["model"]
    kind = image_family(model)
    if kind is None:
        _refuse("Not an image model this server drives: Titan Image Generator, Nova Canvas or Stability AI.", "model")
    size = body.get("size") or "auto"
    width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
    problem = size_problem(kind, width, height)
    if problem:
        _refuse(problem, "size")
    return {"prompt": body["prompt"], "modelId": model, "refImages": None, "width": width, "height": height}


def image_answer(result, created):
    """OpenAI's images answer from ``generate``'s ``{"image"}``; OpenAIError from its ``{"error"}``."""
    if "image" in result:
        return {"created": created, "data": [{"b64_json": result["image"]}]}
    message = str(result.get("error") or "The model returned no image.")
    refused = _BEDROCK_CODE.search(message)
    if refused is None:
        # Not a refusal of the call: the model declined this prompt (a content filter).
        raise OpenAIError(400, message)
    code = refused.group(1)
    raise OpenAIError(BEDROCK_STATUS.get(code, 502), message, code=ERROR_CODES.get(code))
