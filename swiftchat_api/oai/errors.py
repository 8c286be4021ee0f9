"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, and what each failure is called in it."""

import re

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from ..exceptions import BEDROCK_STATUS, describe

_OPERATION = re.compile(
    r"^An error occurred \(\w+\)(?: \(reached max retries: \d+\))? when calling the \w+ operation: "
)

# Bedrock error code → OpenAI's ``code``, where OpenAI has a word for it that clients act on.
ERROR_CODES = {
    "ResourceNotFoundException": "model_not_found",
    "ThrottlingException": "rate_limit_exceeded",
    "ServiceQuotaExceededException": "rate_limit_exceeded",
    "AccessDeniedException": "permission_denied",
}


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


def refuse(message, param=None, code=None):
    """Refuse the request with a 400 naming the parameter at fault."""
    raise OpenAIError(400, message, param=param, code=code)
