"""The errors the API answers with, and how a Bedrock failure is told to a caller; no Flask here."""

import re

from botocore.exceptions import ClientError, ParamValidationError

from . import telemetry

# Bedrock's error codes → the HTTP status a refused call is answered with.
BEDROCK_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "ServiceUnavailableException": 503,
    "ModelNotReadyException": 503,
}

# Pieces of a SigV4 signature or an access key that an error string may carry (botocore puts
# request headers into some messages): never shown to a caller or written to a log.
_SECRETS = re.compile(
    r"(Credential=|Signature=|SignedHeaders=|X-Amz-Security-Token[=:]\s*)[^\s,;'\"]+|\b(?:AKIA|ASIA)[A-Z0-9]{12,}"
)
# What botocore's parameter validation says, up to the parameter's name: the rest quotes the value.
_PARAMETER_PROBLEM = re.compile(
    r"^(Missing required parameter in|Unknown parameter in|Invalid type for parameter|Invalid value for parameter"
    r"|Invalid length for parameter|Invalid parameter|Invalid number of parameters set for tagged union structure"
    r"|Must set one of the following keys for tagged union ?structure) ([A-Za-z0-9_.\[\]]+)",
    re.MULTILINE,
)


class ApiError(Exception):
    """An error answered as ``{"detail": ...}`` with an HTTP status."""

    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class LimitExceeded(ApiError):
    """A per-person key is over a limit: 429 with Retry-After.

    ``limit`` is ``"rpm"`` or ``"tokens_per_day"`` and ``retry_after`` the whole seconds to wait
    (also in ``headers["Retry-After"]``). Each route family renders it its own way: text on the
    chat routes, ``{"detail": ...}`` on the other /api routes, an OpenAI error on /v1.
    """

    def __init__(
        self, status=429, detail="Too many requests for this key.", headers=None, limit="rpm", retry_after=None
    ):
        headers = dict(headers or {})
        if retry_after is None:
            given = str(headers.get("Retry-After", ""))
            retry_after = int(given) if given.isdigit() else 1
        headers["Retry-After"] = str(retry_after)
        super().__init__(status, detail, headers)
        self.limit = limit
        self.retry_after = retry_after


class StreamRefused(Exception):
    """A chat call refused before its stream began; the chat routes answer text/plain ``Error: ...``."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def describe(error):
    """An upstream error as botocore renders it, minus anything the caller sent or a signature."""
    if isinstance(error, ParamValidationError):
        found = [" ".join(problem) for problem in _PARAMETER_PROBLEM.findall(str(error))]
        problems = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        return f"Parameter validation failed: {problems or 'the request does not fit the Bedrock API'}."
    return _SECRETS.sub(lambda match: (match.group(1) or "") + "<redacted>", str(error))


def refused(error):
    """Turn a failure before a stream's first event into StreamRefused with the fitting status."""
    if isinstance(error, StreamRefused):
        return error
    telemetry.upstream_error(error)
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code") or ""
        # In-stream exceptions are spelt throttlingException, refusals ThrottlingException.
        status = BEDROCK_STATUS.get(code[:1].upper() + code[1:], 502)
    else:
        status = 400 if isinstance(error, ParamValidationError) else 502
    return StreamRefused(status, describe(error))
