"""API key sources and the check every /api route makes before it reads the body.

Two kinds of key are accepted: the shared key (``API_KEY`` or the SSM parameter named by
``API_KEY_NAME``), unlimited and never stored, and per-person keys from the key store, each
with its own optional limits. A store that is down costs the shared key nothing.
"""

import hmac
import logging
import time

import gevent
from botocore.config import Config as BotoConfig
from gevent.event import AsyncResult

from . import telemetry
from .exceptions import ApiError, LimitExceeded, describe
from .store import PUBLIC_PEPPER, PUBLIC_PEPPER_WARNING, SHARED_KEY_NAME, Identity, StoreUnavailable, shaped_like_a_key

log = logging.getLogger(__name__)
# A slow or unreachable Parameter Store must fail requests fast, not hold them.
PARAMETER_STORE = BotoConfig(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})


class StaticKey:
    """A literal key from the environment (on-prem)."""

    def __init__(self, key):
        self._key = key

    def get(self, refresh=False):
        if self._key is None:  # only the operator's CLI runs without a key source
            raise ApiError(503, "This server has no API key configured.")
        return self._key


class ParameterStoreKey:
    """A key held in an SSM Parameter Store SecureString, cached until refreshed.

    One read at a time: callers that arrive while Parameter Store is being read wait for that
    read instead of queueing their own. A failed read is remembered for ``failure_ttl`` s, so
    an outage answers every caller at once rather than one slow time-out each; a refresh
    (``/api/upgrade``) re-reads at most every ``refresh_interval`` s, whoever asks.
    """

    def __init__(self, ssm, name, refresh_interval=5.0, failure_ttl=5.0):
        self._ssm = ssm
        self._name = name
        self._refresh_interval = refresh_interval
        self._failure_ttl = failure_ttl
        self._key = None
        self._read_at = float("-inf")
        self._failure = None
        self._failed_at = float("-inf")
        self._reading = None

    def get(self, refresh=False):
        """Return the key, reading it from SSM when not cached or when a refresh is due."""
        now = time.monotonic()
        if self._key is not None and not (refresh and now - self._read_at >= self._refresh_interval):
            return self._key
        if now - self._failed_at < self._failure_ttl:
            raise self._failure
        if self._reading is None:
            self._reading = AsyncResult()
            gevent.spawn(self._read, self._reading)
        return self._reading.get()

    def _read(self, result):
        try:
            answer = self._ssm().get_parameter(Name=self._name, WithDecryption=True)
            self._key = answer["Parameter"]["Value"]
            self._read_at = time.monotonic()
            result.set(self._key)
        except Exception as error:  # any failure to read the store is the caller's 401
            reason = ((getattr(error, "response", None) or {}).get("Error") or {}).get("Code") or type(error).__name__
            log.warning("cannot read the API key from Parameter Store: %s", describe(error))
            self._failure = ApiError(
                401, f"Error: Please create your API Key in Parameter Store, it could not be read ({reason})."
            )
            self._failed_at = time.monotonic()
            result.set_exception(self._failure)
        finally:
            self._reading = None
            if not result.ready():  # never leave the callers waiting on it hanging
                result.set_exception(ApiError(401, "Error: Please create your API Key in Parameter Store."))


def presented_key(headers):
    """The key the caller sent, as ``Authorization: Bearer`` or ``x-api-key``; 403 if none."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if not credentials.strip():
            raise ApiError(403, "Not authenticated")
        if scheme.lower() != "bearer":
            raise ApiError(403, "Invalid authentication credentials")
        return credentials.strip()
    key = headers.get("x-api-key")
    if not key:
        raise ApiError(403, "Not authenticated")
    return key


def authenticate(source, headers, refresh=False):
    """Raise ApiError unless the request carries the configured key (constant-time compare)."""
    _check_shared(source, presented_key(headers), refresh)


SHARED = Identity(SHARED_KEY_NAME)
STORE_DOWN = "The key store cannot be reached just now; please try again in a moment."
_STORE_LOG_INTERVAL = 10.0  # an outage is logged once per interval and operation, and counted always
_store_logged = {}


def is_shared_key(source, presented, refresh=False):
    """Whether ``presented`` is the configured shared key (constant-time); ApiError if it cannot be read."""
    return hmac.compare_digest(presented.encode(), source.get(refresh=refresh).encode())


def _check_shared(source, presented, refresh):
    if not is_shared_key(source, presented, refresh):
        raise ApiError(401, "Invalid API Key")


def store_failed(operation, error):
    """Count a key-store failure, and log it unless the same operation was logged moments ago."""
    telemetry.STORE_ERRORS.labels(operation).inc()
    now = time.monotonic()
    if now - _store_logged.get(operation, float("-inf")) >= _STORE_LOG_INTERVAL:
        _store_logged[operation] = now
        log.warning("key store %s failed: %s", operation, error)


def usage_lost(error, lost):
    """Count ``lost`` requests whose usage was not written, and the failure as store_failed does."""
    telemetry.USAGE_LOST.inc(lost)
    store_failed("record", error)


def identify(source, store, headers, refresh=False):
    """The Identity of the request's key: a per-person key from the store, or the shared key.

    403 without a key, 401 for a key that is neither; 503 when the key could be a per-person
    one but the store cannot say. Only a key shaped like a per-person key costs a store call,
    so the shared key works whatever the store's state. ``refresh`` re-reads the shared key
    from its source (``/api/upgrade``).
    """
    presented = presented_key(headers)
    if store.public_pepper and shaped_like_a_key(presented):
        _public_pepper(store)
    try:
        identity = store.lookup(presented)
    except StoreUnavailable as error:
        store_failed("lookup", error)
        try:
            _check_shared(source, presented, refresh)
        except ApiError:
            raise ApiError(503, STORE_DOWN) from None
        return SHARED
    if identity is not None:
        return identity
    _check_shared(source, presented, refresh)
    return SHARED


NO_PERSONAL_KEYS = "This server cannot accept per-person keys until its operator sets SWIFTCHAT_KEY_PEPPER."


def _public_pepper(store):
    """Refuse per-person keys hashed with the public pepper in a store others write to (Redis); warn on SQLite."""
    if store.needs_secret_pepper:
        store_failed("pepper", PUBLIC_PEPPER)
        raise ApiError(503, NO_PERSONAL_KEYS)
    if not _store_logged.get("pepper-warning"):
        _store_logged["pepper-warning"] = time.monotonic()
        log.warning("%s", PUBLIC_PEPPER_WARNING)


def admit(store, identity, reserve=1, image=False):
    """Count the request against identity's limits, holding ``reserve`` tokens of its budget (and, for an
    image generation, one of the day's images); the Admission.

    LimitExceeded (429) over a limit; 503 if the store cannot write the admission (fail closed).
    """
    try:
        admission = store.admit(identity, reserve=reserve, image=image)
    except StoreUnavailable as error:
        store_failed("admit", error)
        raise ApiError(503, STORE_DOWN) from None
    if admission.ok:
        return admission
    telemetry.KEY_REFUSALS.labels(identity.name, admission.limit).inc()
    if admission.limit == "rpm":
        detail = f"This key allows {identity.rpm:,} requests a minute; try again in {admission.retry_after} s."
    elif admission.limit == "images_per_day":
        detail = (
            f"This key has made its {identity.images_per_day:,} images for today; it renews at midnight UTC,"
            f" in {admission.retry_after} s."
        )
    else:
        detail = (
            f"This key has used its {identity.tokens_per_day:,} tokens for today; it renews at midnight UTC,"
            f" in {admission.retry_after} s."
        )
    raise LimitExceeded(429, detail, limit=admission.limit, retry_after=admission.retry_after)
