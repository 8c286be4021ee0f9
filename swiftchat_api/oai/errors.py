"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, and what each ApiError is called in it."""

import re

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError, ReadTimeoutError

from ..exceptions import (
    ApiError,
    LimitExceeded,
    StreamRefused,
    Unfulfilled,
    UpstreamError,
    bedrock_code,
    bedrock_status,
    describe,
)

# botocore's prefix of a ClientError's text. It puts "(reached max retries: N)" after the
# operation's name; the clause is taken in either place, any code and operation.
_RETRIES = r"(?: \(reached max retries: \d+\))?"
_OPERATION = re.compile(rf"^An error occurred \([^)]*\){_RETRIES} when calling the \w+ operation{_RETRIES}: ")

# Bedrock error code → OpenAI's ``code``, where OpenAI has a word for it that clients act on.
ERROR_CODES = {
    "ResourceNotFoundException": "model_not_found",
    "ThrottlingException": "rate_limit_exceeded",
    "ServiceQuotaExceededException": "rate_limit_exceeded",
    "AccessDeniedException": "permission_denied",
}


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


def error_body(status, message, param=None, code=None):
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI's SDKs parse it."""
    return {"error": {"message": message, "type": error_type(status, code), "param": param, "code": code}}


def body_of(error):
    """The JSON body of an ApiError that is already in OpenAI's words."""
    return error_body(error.status, error.detail, error.param, error.code)


def answer(error):
    """``(body, status, headers)`` of any ApiError as OpenAI answers it."""
    headers = dict(error.headers)
    if isinstance(error, LimitExceeded):
        spent = error.limit in ("tokens_per_day", "images_per_day")  # a day's allowance, not a rate
        if spent:  # retrying cannot help before the day turns: the SDKs read this header and stop
            headers["x-should-retry"] = "false"
        error = ApiError(429, error.detail, code="insufficient_quota" if spent else "rate_limit_exceeded")
    elif isinstance(error, (UpstreamError, StreamRefused)) and isinstance(error.cause, (ClientError, BotoCoreError)):
        error = upstream_error(error.cause)  # a stream refused before its first event as a whole answer is
    elif isinstance(error, Unfulfilled):  # an image not drawn: its whole text, Bedrock's code when it refused
        detail = _OPERATION.sub("", error.detail, count=1)
        error = ApiError(error.status, detail, code=ERROR_CODES.get(bedrock_code(error.cause)))
    return body_of(error), error.status, {**headers, **error.headers}


def upstream_error(error):
    """A botocore error in OpenAI's words: a refused call, or an exception inside a stream."""
    told = describe(error)  # never the caller's values, never a signature
    if isinstance(error, ClientError):
        code = bedrock_code(error)
        message = _OPERATION.sub("", told, count=1)
        if code == "ValidationException" and "too long" in message.lower():
            return ApiError(400, message, cause=error, code="context_length_exceeded")
        return ApiError(bedrock_status(error), message, cause=error, code=ERROR_CODES.get(code))
    if isinstance(error, ParamValidationError):
        return ApiError(400, told, cause=error)
    if isinstance(error, ReadTimeoutError):
        # Bedrock had the request and may still be generating it (and billing it): a client that
        # sent it again would pay again, so the SDKs are told not to (they read x-should-retry).
        message = (
            "Bedrock did not answer within BEDROCK_READ_TIMEOUT; the call was not repeated, as Bedrock may "
            "still be generating it. Stream the answer (stream: true) for long generations."
        )
        return ApiError(504, message, {"x-should-retry": "false"}, cause=error)
    if isinstance(error, BotoCoreError):
        return ApiError(502, f"The connection to Bedrock failed: {told}", cause=error)
    return ApiError(502, told or type(error).__name__, cause=error)


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
    """A 400 naming the first bad field of a marshmallow ValidationError (never its value)."""
    path, problem = _first_problem(error.messages)
    param = _param(path)
    return ApiError(400, f"{param}: {problem}" if param else problem, param=param)


def refuse(message, param=None, code=None):
    """Refuse the request with a 400 naming the parameter at fault."""
    raise ApiError(400, message, param=param, code=code)
