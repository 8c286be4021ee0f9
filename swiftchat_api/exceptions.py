"""The errors the API answers with, and how an AWS failure is told to a caller; no Flask here.

One hierarchy: whatever is answered in place of a success is an ApiError, with an HTTP status
and the text the caller is shown, which errors.py renders in the shape of the route's family:
- LimitExceeded: a per-person key over one of its limits (429 with Retry-After);
- StreamRefused: a chat call refused before its stream began;
- UpstreamError: an AWS call failed;
- Unfulfilled: a request the apps are answered ``200 {"error": ...}`` for.
An error that stands for an upstream one carries it as ``cause`` (no renderer digs in
``__context__``), and Bedrock's error codes become statuses in one place, bedrock_status.
"""

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
    """An answer other than a success: an HTTP status and what the caller is told (``detail``).

    ``headers`` go with the answer; ``cause`` is the upstream error this one stands for, if any;
    ``param`` and ``code`` are what OpenAI's clients read, where there is a word for them.
    """

    def __init__(self, status, detail, headers=None, *, cause=None, param=None, code=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.cause = cause
        self.param = param
        self.code = code


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


class StreamRefused(ApiError):
    """A chat call refused before its stream began; ``cause`` is Bedrock's refusal, when it was Bedrock's."""


class ClientGone(ApiError):
    """The client hung up before its answer began: nothing is told (499, as nginx logs it), nothing counted."""

    def __init__(self):
        super().__init__(499, "The client closed the connection before the answer began.")


class UpstreamError(ApiError):
    """An AWS call failed: ``cause`` is botocore's error, the status its code's, the detail redacted."""

    def __init__(self, cause):
        super().__init__(bedrock_status(cause), describe(cause), cause=cause)


class Unfulfilled(ApiError):
    """A request the apps are answered ``200 {"error": detail}`` for, a text every generation shows.

    An image the model cannot draw, no credentials to hand out, a model list Bedrock refuses.
    ``status`` is what an API with real statuses answers (/v1/images): a Bedrock refusal's own,
    else 400.
    """

    def __init__(self, detail, cause=None):
        status = bedrock_status(cause) if isinstance(cause, ClientError) else 400
        super().__init__(status, detail, cause=cause)


def describe(error):
    """An upstream error as botocore renders it, minus anything the caller sent or a signature."""
    if isinstance(error, ParamValidationError):
        found = [" ".join(problem) for problem in _PARAMETER_PROBLEM.findall(str(error))]
        problems = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        return f"Parameter validation failed: {problems or 'the request does not fit the Bedrock API'}."
    return _SECRETS.sub(lambda match: (match.group(1) or "") + "<redacted>", str(error))


def bedrock_code(error):
    """Bedrock's error code of a ClientError, spelt as a refusal spells it; "" for any other error."""
    if not isinstance(error, ClientError):
        return ""
    code = error.response.get("Error", {}).get("Code") or ""
    return code[:1].upper() + code[1:]  # in-stream exceptions are spelt throttlingException


def bedrock_status(error):
    """The HTTP status a failed AWS call is answered with: Bedrock's code through BEDROCK_STATUS."""
    if isinstance(error, ClientError):
        return BEDROCK_STATUS.get(bedrock_code(error), 502)
    return 400 if isinstance(error, ParamValidationError) else 502


def upstream(error):
    """A failed AWS call as an UpstreamError, counted under its code."""
    telemetry.upstream_error(error)
    return UpstreamError(error)


def unfulfilled(error):
    """A failed AWS call that the apps are told of in a 200 ``{"error"}``, counted under its code."""
    telemetry.upstream_error(error)
    return Unfulfilled(describe(error), cause=error)


def refused(error):
    """Turn a failure before a stream's first event into StreamRefused with the fitting status."""
    if isinstance(error, StreamRefused):
        return error
    telemetry.upstream_error(error)
    return StreamRefused(bedrock_status(error), describe(error), cause=error)
