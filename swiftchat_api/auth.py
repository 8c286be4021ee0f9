"""API key sources and the check every /api route makes before it reads the body."""

import hmac
import threading

from .errors import ApiError


class StaticKey:
    """A literal key from the environment (on-prem)."""

    def __init__(self, key):
        self._key = key

    def get(self, refresh=False):
        return self._key


class ParameterStoreKey:
    """A key held in an SSM Parameter Store SecureString, cached until refreshed."""

    def __init__(self, ssm, name):
        self._ssm = ssm
        self._name = name
        self._key = None
        self._lock = threading.Lock()

    def get(self, refresh=False):
        """Return the key, reading it from SSM when not cached or when asked to refresh."""
        if self._key is not None and not refresh:
            return self._key
        with self._lock:
            if self._key is None or refresh:
                try:
                    answer = self._ssm().get_parameter(Name=self._name, WithDecryption=True)
                except Exception as error:  # any failure to read the store is the caller's 401
                    raise ApiError(401, f"Error: Please create your API Key in Parameter Store, {error}") from None
                self._key = answer["Parameter"]["Value"]
        return self._key


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
    presented = presented_key(headers)
    expected = source.get(refresh=refresh)
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(401, "Invalid API Key")
