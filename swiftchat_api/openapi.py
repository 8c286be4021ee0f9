"""The OpenAPI 3 document, generated from the request schemas with apispec."""

from functools import cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from . import schemas
from .oai import responses_store
from .oai import schemas as oai_schemas
from .oai.responses_schema import ResponsesRequest
from .services import proxy

_AUTH = [{"bearer": []}, {"apiKey": []}]
_TEXT_ERROR = {"text/plain": {"schema": {"type": "string", "example": "Error: An error occurred (...)"}}}
_REGION = {"pattern": "^[a-z]{2}(-[a-z]+){1,3}-[0-9]{1,2}$", "maxLength": 32, "example": "us-west-2"}


def _rules_in_code(self, field, **kwargs):
    """The rules schemas.py checks in code, which apispec cannot read from the fields."""
    if isinstance(field, schemas.ContentBlock):
        return {"type": "object"}  # any object: Bedrock keeps adding block types
    if isinstance(field, schemas.Base64Text):
        return {"format": "byte", "minLength": 1}
    if field.name == "region":
        return _REGION
    return _openai_rules(field)


# A Bedrock cache point after what carries it (prompt_cache.py); null or absent: none.
_CACHE_CONTROL = {
    "type": "object",
    "nullable": True,
    "required": ["type"],
    "properties": {"type": {"type": "string", "enum": ["ephemeral"]}, "ttl": {"type": "string", "enum": ["5m", "1h"]}},
}
_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"type": "string", "enum": ["text"]},
        "text": {"type": "string"},
        "cache_control": _CACHE_CONTROL,
    },
}
_IMAGE_PART = {
    "type": "object",
    "required": ["type", "image_url"],
    "properties": {
        "type": {"type": "string", "enum": ["image_url"]},
        "image_url": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}},
        "cache_control": _CACHE_CONTROL,
    },
    "description": "a data: URL (image/png, jpeg, gif or webp, base64); in user and tool messages",
}


def _openai_rules(field):
    """The shapes the OpenAI-compatible schemas check in code."""
    strings = {"type": "array", "items": {"type": "string"}}
    if isinstance(field, oai_schemas._Content):
        parts = {
            "type": "array",
            "items": {"oneOf": [_TEXT_PART, _IMAGE_PART]},
            "description": "text and image_url parts",
        }
        return {"oneOf": [{"type": "string"}, parts]}
    if isinstance(field, oai_schemas._CacheControl):
        return _CACHE_CONTROL
    if isinstance(field, oai_schemas._ToolChoice):
        return {"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]}, {"type": "object"}]}
    if isinstance(field, oai_schemas._Stop):
        return {"oneOf": [{"type": "string"}, strings]}
    if isinstance(field, oai_schemas._EmbeddingInput):
        token_ids = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
        arrays = {"type": "array", "items": token_ids, "minItems": 1, "description": "token arrays"}
        return {"oneOf": [{"type": "string", "minLength": 1}, {**strings, "minItems": 1}, token_ids, arrays]}
    if isinstance(field, oai_schemas._FunctionCallChoice):
        return {"oneOf": [{"type": "string", "enum": ["none", "auto"]}, {"type": "object"}]}
    return {}


class Detail(Schema):
    detail = fields.String(required=True, metadata={"description": "Shown to the user as-is."})


class ValidationItem(Schema):
    loc = fields.List(fields.Raw(), required=True, metadata={"example": ["body", "modelId"]})
    msg = fields.String(required=True)
    type = fields.String(required=True, metadata={"example": "missing"})


class ValidationFailure(Schema):
    detail = fields.List(fields.Nested(ValidationItem), required=True)


class ImageAnswer(Schema):
    image = fields.String(metadata={"description": "Base64 image (PNG or JPEG)."})
    error = fields.String(
        metadata={"description": "Why no image was made: the chosen model cannot draw the request, or Bedrock refused."}
    )


class ModelEntry(Schema):
    modelId = fields.String(required=True)
    modelName = fields.String(required=True)


class ModelsAnswer(Schema):
    textModel = fields.List(fields.Nested(ModelEntry))
    imageModel = fields.List(fields.Nested(ModelEntry))
    error = fields.String(metadata={"description": "Bedrock's refusal; an empty catalogue is []."})


class UpgradeAnswer(Schema):
    needUpgrade = fields.Boolean(required=True)
    version = fields.String(required=True, metadata={"example": "2.4.0"})
    url = fields.String(required=True)


class TokenAnswer(Schema):
    accessKeyId = fields.String()
    secretAccessKey = fields.String()
    sessionToken = fields.String()
    expiration = fields.String(metadata={"format": "date-time"})
    error = fields.String()


class Status(Schema):
    status = fields.String(required=True)
    detail = fields.String()


class OpenAIProblem(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True, metadata={"example": "invalid_request_error"})
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True, metadata={"example": "model_not_found"})


class OpenAIErrorAnswer(Schema):
    error = fields.Nested(OpenAIProblem, required=True)


# The answers of the /v1 routes, as far as clients rely on them (the SDKs keep any other member).
_OPENAI_ANSWERS = {
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {"type": "object", "required": ["index", "message", "finish_reason"]},
            },
            "usage": {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"]},
        },
    },
    "Response": {
        "type": "object",
        "required": ["id", "object", "created_at", "status", "model", "output"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["response"]},
            "created_at": {"type": "integer"},
            "status": {"type": "string", "enum": ["completed", "incomplete", "failed"]},
            "model": {"type": "string"},
            "output": {"type": "array", "items": {"type": "object", "required": ["type"]}},
            "usage": {"type": "object", "nullable": True},
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string", "example": "us.anthropic.claude-3-5-sonnet-20240620-v1:0"},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer"},
            "owned_by": {"type": "string", "example": "anthropic"},
            "name": {"type": "string", "example": "Claude 3.5 Sonnet"},
            "kind": {"type": "string", "enum": ["chat", "embedding", "image"], "description": "its route"},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
        },
    },
    "EmbeddingList": {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["object", "index", "embedding"],
                    "properties": {
                        "object": {"type": "string", "enum": ["embedding"]},
                        "index": {"type": "integer"},
                        "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]},
                    },
                },
            },
            "model": {"type": "string"},
            "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"]},
        },
    },
    "ImagesAnswer": {
        "type": "object",
        "required": ["created", "data"],
        "properties": {
            "created": {"type": "integer"},
            "data": {
                "type": "array",
                "items": {"type": "object", "required": ["b64_json"], "properties": {"b64_json": {"type": "string"}}},
            },
        },
    },
}


def _json(schema):
    return {"application/json": {"schema": schema}}


def _api(summary, body, ok, extra=None):
    responses = {
        "200": ok,
        "401": {"description": "Wrong key, or the key store cannot be read.", "content": _json("Detail")},
        "403": {"description": "No key, or not a Bearer key.", "content": _json("Detail")},
        "408": {"description": "The body stopped arriving before it was complete.", "content": _json("Detail")},
        "413": {"description": "The body is larger than SWIFTCHAT_MAX_BODY_MB.", "content": _json("Detail")},
        "422": {"description": "The body is not valid.", "content": _json("ValidationFailure")},
        **(extra or {}),
    }
    return {
        "post": {
            "summary": summary,
            "security": _AUTH,
            "requestBody": {"required": True, "content": _json(body)},
            "responses": responses,
        }
    }


def _stream(summary, framing):
    refused = {
        str(status): {"description": f"Bedrock refused the call before streaming ({why}).", "content": _TEXT_ERROR}
        for status, why in (
            (400, "validation"),
            (404, "unknown model"),
            (429, "throttled"),
            (502, "other upstream failure"),
            (503, "unavailable"),
            (504, "no answer in time"),
        )
    }
    refused["403"] = {
        "description": "No key, or not a Bearer key (JSON); or Bedrock denied access (text).",
        "content": {**_json("Detail"), **_TEXT_ERROR},
    }
    refused["422"] = {
        "description": "The body is not in the apps' shape (JSON list); or it is, but an attachment's base64 is "
        "invalid (text, which the apps show).",
        "content": {**_json("ValidationFailure"), **_TEXT_ERROR},
    }
    ok = {
        "description": f"Streamed as Bedrock answers: {framing} A failure after the first byte is written "
        "as `Error: <message>` and ends the stream.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    return _api(summary, "ConverseRequest", ok, refused)


def _relayed(summary, target):
    """A "Use Proxy" route: the provider's key in Authorization, the provider's answer relayed as it arrives."""
    event_stream = {"text/event-stream": {"schema": {"type": "string"}}}
    parameters = [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in ("HTTP-Referer", "X-Title")
    ]
    if target == "request_url":
        url = {"type": "string", "example": "https://api.example.com/v1/chat/completions"}
        description = "The provider's chat-completions URL (at most 4,096 characters), allowed by OPENAI_PROXY_HOSTS."
        parameters.insert(
            0, {"name": "request_url", "in": "header", "required": True, "schema": url, "description": description}
        )
    answers = {
        "401": {
            "description": "A wrong x-api-key (JSON), or the provider's 401.",
            "content": {**_json("Detail"), **event_stream},
        },
        "403": {
            "description": "A target not relayed to, or this server's key as the provider's.",
            "content": _json("Detail"),
        },
        "502": {
            "description": "The provider answered with a redirect (never followed): an OpenAI error event "
            '(`data: {"error": {"message": ...}}`), then `Error: <message>`.',
            "content": event_stream,
        },
        "default": {"description": "The provider's own status and body.", "content": event_stream},
    }
    ok = {
        "description": "The provider's answer, byte for byte as it arrives. When the provider cannot be reached, an "
        'OpenAI error event (`data: {"error": {"message": ...}}`) then `Error: <message>`; when it breaks off or '
        "falls silent, `Error: <message>` after its bytes.",
        "content": event_stream,
    }
    operation = _api(summary, "ChatCompletionsRequest", ok, answers)
    operation["post"]["description"] = (
        "`Authorization: Bearer <key>` carries the provider's API key and is forwarded as is (never this "
        "server's key, which is refused); `x-api-key`, when sent, must be this server's key."
    )
    operation["post"]["security"] = [{}, {"apiKey": []}]
    operation["post"]["parameters"] = parameters
    return operation


_OPENAI_STATUSES = {
    "400": "The body or X-Bedrock-Region is not valid, or Bedrock refused the request as invalid.",
    "401": "No key, a wrong key, or not a Bearer key.",
    "403": "Bedrock denied access.",
    "404": "Bedrock does not know the model.",
    "408": "The body stopped arriving before it was complete.",
    "413": "The body is larger than SWIFTCHAT_MAX_BODY_MB.",
    "429": "Bedrock throttled the call, or the key is over its limit (Retry-After; x-should-retry: false for "
    "a spent daily budget).",
    "500": "Unexpected.",
    "502": "Bedrock failed otherwise.",
    "503": "Bedrock, or the key store, is unavailable.",
    "504": "Bedrock did not start answering in time.",
}
_BEDROCK_REGION = {
    "name": "X-Bedrock-Region",
    "in": "header",
    "required": False,
    "schema": _REGION,
    "description": "The region whose Bedrock serves the call; the server's AWS_REGION by default.",
}


def _openai(method, summary, ok, body=None, statuses=(), description=None):
    """A /v1 operation: OpenAI's error answer for every status but 200."""
    errors = {
        status: {"description": why, "content": _json("OpenAIErrorAnswer")}
        for status, why in _OPENAI_STATUSES.items()
        if not statuses or status in statuses
    }
    operation = {
        "summary": summary,
        "security": _AUTH,
        "parameters": [_BEDROCK_REGION],
        "responses": {"200": ok, **errors},
    }
    if description:
        operation["description"] = description
    if body:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return {method: operation}


_STORED_STATUSES = {
    "400": "A query parameter that is not valid, or not one this route takes.",
    "401": "No key, a wrong key, or not a Bearer key.",
    "404": "This key has no stored response with this id (another key's, expired, deleted, or storing is off).",
    "429": "The key is over its limit (Retry-After).",
    "500": "Unexpected.",
    "503": "The store (SWIFTCHAT_STORE) cannot be reached.",
}
_INCLUDE = {"type": "array", "items": {"type": "string", "enum": list(responses_store.INCLUDABLE)}}
_STORED_ITEMS = {
    "type": "object",
    "required": ["object", "data", "first_id", "last_id", "has_more"],
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {"type": "array", "items": {"type": "object", "required": ["id", "type"]}},
        "first_id": {"type": "string", "nullable": True},
        "last_id": {"type": "string", "nullable": True},
        "has_more": {"type": "boolean"},
    },
}


def _stored(method, summary, content, query=()):
    """A route of stored responses: the id in the path, the query parameters it takes, nothing else."""
    parameters = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    for name, schema in query:
        parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    errors = {
        status: {"description": why, "content": _json("OpenAIErrorAnswer")} for status, why in _STORED_STATUSES.items()
    }
    ok = {"description": summary, "content": _json(content)}
    return {
        method: {"summary": summary, "security": _AUTH, "parameters": parameters, "responses": {"200": ok, **errors}}
    }


def _get(summary, description, content, secured=False):
    operation = {"summary": summary, "responses": {"200": {"description": description, "content": content}}}
    if secured:
        operation["security"] = _AUTH
    return {"get": operation}


@cache
def document():
    """The OpenAPI document as a dict (built once)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="swiftchat-api",
        version="1.0.0",
        openapi_version="3.0.3",
        info={"description": "A drop-in server for the SwiftChat apps, in front of Amazon Bedrock."},
        plugins=[plugin],
    )
    plugin.converter.add_attribute_function(_rules_in_code)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "x-api-key"})
    for name, schema in (
        ("ConverseRequest", schemas.ConverseRequest),
        ("ImageRequest", schemas.ImageRequest),
        ("RegionRequest", schemas.RegionRequest),
        ("UpgradeRequest", schemas.UpgradeRequest),
        ("ChatCompletionsRequest", proxy.ChatCompletionsRequest),
        ("Detail", Detail),
        ("ValidationFailure", ValidationFailure),
        ("ImageAnswer", ImageAnswer),
        ("ModelsAnswer", ModelsAnswer),
        ("UpgradeAnswer", UpgradeAnswer),
        ("TokenAnswer", TokenAnswer),
        ("Status", Status),
        ("OpenAIChatRequest", oai_schemas.ChatCompletionRequest),
        ("OpenAIEmbeddingsRequest", oai_schemas.EmbeddingsRequest),
        ("OpenAIImagesRequest", oai_schemas.ImagesRequest),
        ("OpenAIResponsesRequest", ResponsesRequest),
        ("OpenAIErrorAnswer", OpenAIErrorAnswer),
    ):
        spec.components.schema(name, schema=schema)
    for name, component in _OPENAI_ANSWERS.items():
        spec.components.schema(name, component)
    listing = ("400", "401", "403", "429", "500", "502", "503")
    paths = {
        "/api/converse": _stream("Chat, first app generation", "each delta's text, then a newline and the usage JSON."),
        "/api/converse/v2": _stream("Chat, second generation", "every Bedrock event as JSON, back to back."),
        "/api/converse/v3": _stream("Chat, current generation", "every event as JSON plus a blank line."),
        "/api/image": _api(
            "Generate or edit an image",
            "ImageRequest",
            {
                "description": "The image, or as `error` why none was made (what the model cannot draw, Bedrock's "
                "refusal).",
                "content": _json("ImageAnswer"),
            },
        ),
        "/api/models": _api(
            "Models offered in a region",
            "RegionRequest",
            {
                "description": "The catalogue, `[]`, or `error`.",
                "content": _json(
                    {"oneOf": [{"$ref": "#/components/schemas/ModelsAnswer"}, {"type": "array", "maxItems": 0}]}
                ),
            },
        ),
        "/api/upgrade": _api(
            "App update check (re-reads the API key)",
            "UpgradeRequest",
            {"description": "Whether a newer release exists.", "content": _json("UpgradeAnswer")},
        ),
        "/api/token": _api(
            "Temporary AWS credentials",
            "RegionRequest",
            {"description": "Credentials for an hour, or `error`.", "content": _json("TokenAnswer")},
        ),
        "/api/gpt": _relayed("Use Proxy (apps 1.10–2.2): relayed to OPENAI_GPT_URL", "OPENAI_GPT_URL"),
        "/api/openai": _relayed("Use Proxy (apps 2.3+): relayed to the allowed provider named", "request_url"),
        "/healthz": _get("Liveness", "The process is up.", _json("Status")),
        "/readyz": _get(
            "Readiness",
            "The API key source is readable and the key store writable (503, with the reason, otherwise).",
            _json("Status"),
        ),
        "/metrics": _get(
            "Prometheus metrics", "Text exposition format.", {"text/plain": {"schema": {"type": "string"}}}, True
        ),
        "/openapi.json": _get("This document", "OpenAPI 3.", {"application/json": {"schema": {"type": "object"}}}),
        "/v1/chat/completions": _openai(
            "post",
            "OpenAI-compatible chat, on Bedrock's Converse",
            {
                "description": "`chat.completion`, or with `stream: true` server-sent events: a "
                "`chat.completion.chunk` per `data:` line, `: keep-alive` comments in silences, `data: [DONE]` "
                'last; a failure after the first byte is one `data: {"error": ...}` event that ends the stream.',
                "content": {**_json("ChatCompletion"), "text/event-stream": {"schema": {"type": "string"}}},
            },
            body="OpenAIChatRequest",
        ),
        "/v1/responses": _openai(
            "post",
            "OpenAI's Responses API, on Bedrock's Converse (function tools only)",
            {
                "description": "A `response` object, or with `stream: true` server-sent events: `event:` names each, "
                "`data:` holds it with its `sequence_number`, from `response.created` to `response.completed` (or "
                "`response.incomplete`); `: keep-alive` comments in silences; a failure after the first byte is a "
                "`response.failed` event that ends the stream.",
                "content": {**_json("Response"), "text/event-stream": {"schema": {"type": "string"}}},
            },
            body="OpenAIResponsesRequest",
        ),
        "/v1/models": _openai(
            "get",
            "OpenAI-compatible list of every model id of the region: chat, embedding and image models",
            {
                "description": "Bare ids where the model runs on demand, each inference profile's id, application "
                "profiles by ARN; `kind` says which route serves each.",
                "content": _json("ModelList"),
            },
            statuses=listing,
        ),
        "/v1/models/{model_id}": _openai(
            "get",
            "One model id of the region (an application profile's ARN too)",
            {"description": "The model.", "content": _json("Model")},
            statuses=(*listing, "404"),
        ),
        "/v1/embeddings": _openai(
            "post",
            "OpenAI-compatible embeddings (Titan, Cohere and Nova models; texts or token arrays)",
            {"description": "One embedding per input, in order.", "content": _json("EmbeddingList")},
            body="OpenAIEmbeddingsRequest",
        ),
        "/v1/images/generations": _openai(
            "post",
            "OpenAI-compatible image generation (Titan, Nova Canvas, Stability)",
            {"description": "One image as `b64_json`.", "content": _json("ImagesAnswer")},
            body="OpenAIImagesRequest",
        ),
    }
    paths["/v1/models/{model_id}"]["get"]["parameters"].append(
        {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
    )
    stored = {"$ref": "#/components/schemas/Response"}  # as POST /v1/responses answered it
    deleted = {
        "type": "object",
        "required": ["id", "object", "deleted"],
        "properties": {"object": {"enum": ["response"]}, "deleted": {"enum": [True]}},
    }
    include = [("include", _INCLUDE), ("include[]", _INCLUDE)]
    paths["/v1/responses/{response_id}"] = {
        **_stored("get", "A stored response, as it was answered", stored, [*include, ("stream", {"enum": [False]})]),
        **_stored("delete", "Delete a stored response", deleted),
    }
    paging = [
        ("limit", {"type": "integer", "minimum": 1, "maximum": responses_store.MAX_LIMIT, "default": 20}),
        ("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
        ("after", {"type": "string", "minLength": 1, "maxLength": 256}),
        *include,
    ]
    paths["/v1/responses/{response_id}/input_items"] = _stored(
        "get", "The input items of a stored response, a page at a time", _STORED_ITEMS, paging
    )
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
