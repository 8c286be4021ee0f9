"""Per-person API keys, their limits and usage, kept in a store every worker and instance shares;
and the stored responses of /v1/responses (oai/responses_store.py says what they are).

``open_store(url, ...)`` gives a ``Store``: SQLite (one host, the default) or Redis (several
instances). Both implement the same small set of backend methods; everything that does not
touch storage (key format, hashing, validation, the short lookup cache, the aggregation of
usage) lives here once.
"""

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

KEY_PREFIX = "sk-swiftchat-"
# 32 random bytes, url-safe base64 without padding: 43 characters.
_KEY_SHAPE = re.compile(r"sk-swiftchat-[A-Za-z0-9_-]{43}\Z")
# A name becomes a metric label and a log field: keep it short and plain.
_NAME_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
DEFAULT_PEPPER = "swiftchat-api key hash v1"
WINDOW_SECONDS = 60
MAX_RPM = 100_000
MAX_TOKENS_PER_DAY = 10**12
MAX_IMAGES_PER_DAY = 10**6
MAX_MODEL_CHARS = 200
LOOKUP_CACHE_SECONDS = 1.0
# How long a request's reservation against a budget holds if its usage never settles it (a worker
# killed mid-stream): longer than any stream runs.
RESERVATION_SECONDS = 3600
# The usage of the shared key from API_KEY / API_KEY_NAME is kept under this name; no key may take it.
SHARED_KEY_NAME = "default"
# Names no key may take, compared without case (``Default`` would read as the shared key in a report).
RESERVED_NAMES = frozenset({SHARED_KEY_NAME})
_LOOKUP_CACHE_ENTRIES = 10_000


class StoreError(Exception):
    """Base of every error the key store raises."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or stays busy past its time-out; callers answer 503."""


class InvalidRequest(StoreError, ValueError):
    """A name or limit that the store refuses (the message says why, without echoing secrets)."""


class NameTaken(StoreError):
    """An active key already has this name."""


class NoSuchKey(StoreError):
    """No active key has this name."""


class PepperMismatch(StoreError):
    """The store's keys were hashed with a different SWIFTCHAT_KEY_PEPPER than this process has."""


@dataclass(frozen=True)
class Identity:
    """Who a presented key belongs to and the limits that apply (None: unlimited)."""

    name: str
    rpm: int | None = None
    tokens_per_day: int | None = None
    aws_credentials: bool = False  # /api/token may hand this key AWS credentials (keys create --aws-credentials)
    images_per_day: int | None = None


@dataclass(frozen=True)
class Admission:
    """The answer of ``Store.admit``: ok, or which limit refused and how long to wait (whole seconds)."""

    ok: bool
    retry_after: int = 0
    limit: str | None = None  # "rpm", "tokens_per_day" or "images_per_day" when refused
    # Admitted under a budget: what identifies the tokens held for the request until its usage is
    # recorded (``record_usages`` settles it); None for a key without a budget.
    reservation: str | None = None


@dataclass(frozen=True)
class KeyInfo:
    """One key as ``keys list`` shows it (never the key itself)."""

    name: str
    rpm: int | None
    tokens_per_day: int | None
    created: float
    revoked: float | None
    aws_credentials: bool = False
    images_per_day: int | None = None


@dataclass(frozen=True)
class ResponseBounds:
    """How much the stored responses may hold: bytes per owner and in all (the least recently
    continued are evicted past either), and responses per conversation (how far a chain is walked)."""

    owner_bytes: int
    total_bytes: int
    turns: int


@dataclass(frozen=True)
class ResponseHead:
    """A stored response's conversation, up to and including it: how many responses, how many bytes."""

    turns: int
    conversation_bytes: int


@dataclass(frozen=True)
class StoredResponse:
    """One stored response: its id, the one it continues (None for a first turn) and its JSON texts."""

    id: str
    previous: str | None
    response: bytes | str
    items: bytes | str


# Stored responses past their expiry that one save removes at most (the rest at the next saves).
RESPONSE_PURGE_BATCH = 100


def response_owner(name, digest):
    """Whose stored responses a key's are: its name, and a hash of its digest, so that a key made for the
    same name after a revoke (or a new shared key) owns none of the old key's responses (no I/O)."""
    return f"{name}:{hashlib.sha256(b'swiftchat-api response owner ' + digest.encode()).hexdigest()[:32]}"


ADMITTED = Admission(True)
PUBLIC_PEPPER = (
    "SWIFTCHAT_KEY_PEPPER is the public default, so anyone who can write to this Redis could make a key that"
    " works (and that keys list does not show): set it to a secret of your own, the same for the CLI and every"
    " server, then create the keys again."
)
PUBLIC_PEPPER_WARNING = (
    "SWIFTCHAT_KEY_PEPPER is the public default: anyone who can write to the key store's file could make a key"
    " that works. Set it to a secret of your own (the same for the CLI and the server)."
)
PEPPER_MISMATCH = (
    "The keys in this store were made with another SWIFTCHAT_KEY_PEPPER, so none of them would be "
    "accepted: run with the pepper the server uses."
)


def check_name(name):
    """Return name if it can name a key; raise InvalidRequest otherwise."""
    if not isinstance(name, str) or not _NAME_SHAPE.match(name):
        raise InvalidRequest(
            "A key name is 1 to 64 characters from letters, digits and . _ @ - (starting with a letter or digit)."
        )
    return name


def shaped_like_a_key(text):
    """True when text has the shape of a per-person key (no I/O; says nothing of whether it works)."""
    return isinstance(text, str) and _KEY_SHAPE.match(text) is not None


def check_limit(value, what):
    """Return a limit (a positive whole number, or None for no limit); raise InvalidRequest otherwise."""
    maximum = {"rpm": MAX_RPM, "images_per_day": MAX_IMAGES_PER_DAY}.get(what, MAX_TOKENS_PER_DAY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        label = {"rpm": "rpm", "images_per_day": "images per day"}.get(what, "tokens per day")
        raise InvalidRequest(f"The {label} limit must be a whole number from 1 to {maximum:,}, or none for no limit.")
    return value


def day_of(now):
    """The UTC day (YYYY-MM-DD) that a Unix time falls on; budgets and usage are per UTC day."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


_FIGURES = ("requests", "input_tokens", "output_tokens", "estimated_input_tokens", "estimated_output_tokens")


def _counted(**labels):
    """A usage entry that starts at zero: its labels, then requests, tokens and the estimated part of them."""
    return {**labels, **dict.fromkeys(_FIGURES, 0)}


def _rest(rest):
    """The optional tail of a served request: estimated input and output tokens, reservation."""
    estimated_input, estimated_output, reservation = (list(rest) + [0, 0, None][len(rest) :])[:3]
    return estimated_input, estimated_output, reservation


def _seconds_to_next_day(now):
    return max(1, math.ceil((math.floor(now / 86400) + 1) * 86400 - now))


def _public_url(url):
    """The store URL with any password replaced, fit for logs and the CLI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class Store:
    """The interface every backend implements; see the method docstrings for what does I/O."""

    # A store others can write to (a shared Redis): its keys must be hashed with a secret pepper.
    needs_secret_pepper = False

    def __init__(self, url, pepper=DEFAULT_PEPPER, timeout=1.0, cache_seconds=LOOKUP_CACHE_SECONDS):
        self.url = url
        self.timeout = timeout
        self._pepper = (pepper or DEFAULT_PEPPER).encode()
        self._cache_seconds = cache_seconds
        self._cache = {}
        self._cache_lock = threading.Lock()

    # -- what callers use -------------------------------------------------------------------

    def describe(self):
        """The store's URL without its password (no I/O)."""
        return _public_url(self.url)

    @property
    def public_pepper(self):
        """Whether keys are hashed with the public default SWIFTCHAT_KEY_PEPPER (no I/O)."""
        return self._pepper == DEFAULT_PEPPER.encode()

    def digest(self, key):
        """The keyed hash stored in place of a key (no I/O)."""
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def create_key(self, name, rpm=None, tokens_per_day=None, now=None, aws_credentials=False, images_per_day=None):
        """Make a new random key for name and return it; only its hash is kept (I/O).

        ``aws_credentials``: /api/token may give this key AWS credentials, with which its holder
        calls Bedrock directly, outside every limit and the usage (an explicit choice).
        """
        name = check_name(name)
        if name.lower() in RESERVED_NAMES:
            raise InvalidRequest(
                f"The name {SHARED_KEY_NAME} is the shared key's (API_KEY / API_KEY_NAME), whose usage is kept"
                " under it; choose another name."
            )
        rpm = check_limit(rpm, "rpm")
        tokens_per_day = check_limit(tokens_per_day, "tokens_per_day")
        images_per_day = check_limit(images_per_day, "images_per_day")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        created = time.time() if now is None else now
        limits = (rpm, tokens_per_day, images_per_day)
        self._create(name, self.digest(key), limits, created, self._fingerprint(), bool(aws_credentials))
        return key

    def lookup(self, presented):
        """The Identity a presented key belongs to, or None (I/O unless cached; at most ~1 s stale).

        Anything not shaped like one of our keys is None at once, without touching the store.
        """
        if not shaped_like_a_key(presented):
            return None
        digest = self.digest(presented)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        identity = self._lookup(digest)
        if identity is not None and self._cache_seconds > 0:
            with self._cache_lock:
                if len(self._cache) >= _LOOKUP_CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[digest] = (time.monotonic() + self._cache_seconds, identity)
        return identity

    def admit(self, identity, now=None, reserve=1, image=False):
        """Count one request against identity's limits if both allow it (atomic; I/O unless unlimited).

        Under a budget, the request is admitted while the day's recorded usage plus what admitted
        requests still hold stays below it, and it holds ``reserve`` tokens (its worst case),
        capped at what is left, until its usage is recorded with the Admission's reservation.
        Nothing is admitted unless that is written: a store that refuses writes refuses requests.
        ``image``: the request generates an image, one of the day's ``images_per_day``.
        """
        image = image and identity.images_per_day is not None
        if identity.rpm is None and identity.tokens_per_day is None and not image:
            return ADMITTED
        now = time.time() if now is None else now
        reserve = max(1, min(int(reserve), MAX_TOKENS_PER_DAY))
        refusal, oldest, reservation = self._admit(identity, now, day_of(now), reserve, image)
        if refusal is None:
            return Admission(True, reservation=reservation)
        if refusal in ("tokens_per_day", "images_per_day"):
            return Admission(False, _seconds_to_next_day(now), refusal)
        # Another worker's request can carry a time a hair later than this one's now: never past a window.
        wait = min(WINDOW_SECONDS, max(1, math.ceil(oldest + WINDOW_SECONDS - now)))
        return Admission(False, wait, refusal)

    def record_usage(self, name, model, input_tokens, output_tokens, day=None, estimated=(0, 0), reservation=None):
        """Add one served request and its tokens to name's usage for day (default today, UTC) (I/O).

        name need not belong to a key (the shared key's usage is kept under a name of its own), but
        must be shaped like a key's name. ``estimated``: how many of the input and output tokens
        are our estimate rather than Bedrock's count; ``reservation``: the Admission's, settled.
        """
        self.record_usages([(name, model, input_tokens, output_tokens, day, *estimated, reservation)])

    def record_usages(self, served, batch=None):
        """Add served requests, each ``(name, model, input_tokens, output_tokens, day[, estimated_input,
        estimated_output, reservation])``, in one write that also settles their reservations (I/O).

        A day of None is today (UTC). Requests of the same name, day and model are added up
        first; nothing is written unless every name is shaped like a key's name. ``batch`` names
        the write: the same batch written again (a retry after a reply that never came) adds nothing.
        """
        today = day_of(time.time())
        totals = {}
        settled = []
        for entry in served:
            name, model, input_tokens, output_tokens, day, *rest = entry
            estimated_input, estimated_output, reservation = _rest(rest)
            where = (check_name(name), day or today, (model or "")[:MAX_MODEL_CHARS])
            counted = totals.setdefault(where, [0, 0, 0, 0, 0])
            counted[0] += 1
            counted[1] += max(0, int(input_tokens or 0))
            counted[2] += max(0, int(output_tokens or 0))
            counted[3] += max(0, int(estimated_input or 0))
            counted[4] += max(0, int(estimated_output or 0))
            if reservation:
                settled.append(reservation)
        if totals:
            self._record(
                [(*where, *counted) for where, counted in totals.items()], settled, batch or secrets.token_hex(12)
            )

    def usage(self, since=None):
        """Per name, with every key listed: requests, input and output tokens, per day and model (I/O)."""
        rows = self._usage_rows(since)
        names = {info.name for info in self.list_keys()}
        people = {name: _counted(name=name) for name in names}
        days = {}
        for name, day, model, *figures in sorted(rows):
            person = people.setdefault(name, _counted(name=name))
            entry = days.get((name, day))
            if entry is None:
                entry = days[(name, day)] = {**_counted(day=day), "models": []}
                person.setdefault("days", []).append(entry)
            entry["models"].append({"model": model or None, **dict(zip(_FIGURES, figures, strict=True))})
            for total in (person, entry):
                for figure, value in zip(_FIGURES, figures, strict=True):
                    total[figure] += value
        return [{**people[name], "days": people[name].get("days", [])} for name in sorted(people)]

    def list_keys(self):
        """Every key ever made, active or revoked, by name (I/O)."""
        return sorted(self._list(), key=lambda info: info.name)

    def revoke(self, name):
        """Stop name's key from working (every worker within ~1 s) and delete its stored responses, which no key
        could read again; raise NoSuchKey if none is active (I/O)."""
        self._revoke(check_name(name), time.time())

    def set_limits(self, name, rpm, tokens_per_day, images_per_day=None):
        """Replace name's limits (None: no limit); raise NoSuchKey if no key is active (I/O)."""
        limits = (
            check_limit(rpm, "rpm"),
            check_limit(tokens_per_day, "tokens_per_day"),
            check_limit(images_per_day, "images_per_day"),
        )
        self._set_limits(check_name(name), limits)

    def check(self):
        """Raise StoreUnavailable if the store cannot be used, PepperMismatch if its keys need another pepper."""
        fingerprint = self._fingerprint()
        stored = self._stored_fingerprint()
        if stored is not None and stored != fingerprint:
            raise PepperMismatch(PEPPER_MISMATCH)

    def probe(self):
        """Raise StoreUnavailable, saying why, unless the store can be opened and written now (I/O).

        Nothing is changed: an empty write transaction (SQLite, which makes the file if there is
        none, as the first request would) or a short-lived marker (Redis).
        """
        raise NotImplementedError

    def save_response(self, owner, response_id, previous, response, items, expires, bounds, now=None):
        """Keep a response (its JSON and its input items' JSON, as bytes) for owner until ``expires`` (I/O).

        It continues ``previous`` (when that is owner's and stored) and keeps that conversation's
        earlier responses as long as itself. Past ``bounds`` the least recently continued responses
        are evicted: owner's own first, then anyone's. Returns how many were evicted. The caller
        checks that the response fits ``bounds.owner_bytes`` on its own.
        """
        now = time.time() if now is None else now
        return self._save_response(owner, response_id, previous or "", response, items, now, expires, bounds)

    def response_head(self, owner, response_id, now=None):
        """The ResponseHead of owner's stored response, or None if owner has none with this id (I/O)."""
        return self._response_head(owner, response_id, time.time() if now is None else now)

    def response_chain(self, owner, response_id, turns, now=None):
        """Owner's stored response and the ones it continues, oldest first, at most ``turns`` of them (I/O).

        The first one's ``previous`` is not None when an earlier response is no longer stored.
        """
        found = self._response_chain(owner, response_id, time.time() if now is None else now, turns)
        return found[::-1]

    def load_response(self, owner, response_id, now=None):
        """Owner's StoredResponse with this id, or None (I/O)."""
        return self._load_response(owner, response_id, time.time() if now is None else now)

    def delete_response(self, owner, response_id, now=None):
        """Delete owner's stored response; whether owner had one with this id (I/O)."""
        return self._delete_response(owner, response_id, time.time() if now is None else now)

    def close(self):
        """Let go of connections (no I/O needed)."""

    def _fingerprint(self):
        return hmac.new(self._pepper, b"swiftchat-api pepper fingerprint", hashlib.sha256).hexdigest()[:16]

    # -- what a backend implements ----------------------------------------------------------

    def _create(self, name, digest, limits, created, fingerprint, aws_credentials):
        """Store a key, atomically: NameTaken if an active key has the name, PepperMismatch if the
        store's pepper fingerprint differs (it is recorded with the first key)."""
        raise NotImplementedError

    def _lookup(self, digest):
        raise NotImplementedError

    def _admit(self, identity, now, day, reserve, image):
        """Return (None, None, reservation) when admitted, counted (an image among the day's when
        ``image``) and (under a budget) ``reserve`` tokens held, capped at what is left; else
        (limit, oldest request time in window, None)."""
        raise NotImplementedError

    def _record(self, rows, settled, batch):
        """Add rows (name, day, model, requests, input, output, estimated input, estimated output tokens)
        to the usage and release the reservations ``settled``, together; ``batch`` at most once."""
        raise NotImplementedError

    def _usage_rows(self, since):
        """Rows (name, day, model, requests, input, output, estimated input, estimated output tokens)
        for days >= since."""
        raise NotImplementedError

    def _list(self):
        raise NotImplementedError

    def _revoke(self, name, now):
        raise NotImplementedError

    def _set_limits(self, name, limits):
        raise NotImplementedError

    def _stored_fingerprint(self):
        raise NotImplementedError

    def _save_response(self, owner, response_id, previous, response, items, now, expires, bounds):
        """Atomically: drop what has expired, refresh the conversation's expiry, evict, store; the number evicted."""
        raise NotImplementedError

    def _response_head(self, owner, response_id, now):
        raise NotImplementedError

    def _response_chain(self, owner, response_id, now, turns):
        """StoredResponses from the one named back through its previous ones, newest first."""
        raise NotImplementedError

    def _load_response(self, owner, response_id, now):
        raise NotImplementedError

    def _delete_response(self, owner, response_id, now):
        raise NotImplementedError


def open_store(url, pepper=DEFAULT_PEPPER, timeout=1.0, cache_seconds=LOOKUP_CACHE_SECONDS):
    """A Store for ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``redis://host:port/db``.

    Nothing is connected or created until the first call that needs it, so a server starts
    even while its store is down.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from .sqlite_store import SQLiteStore

        return SQLiteStore(url, pepper=pepper, timeout=timeout, cache_seconds=cache_seconds)
    if scheme in ("redis", "rediss", "unix"):
        from .redis_store import RedisStore

        return RedisStore(url, pepper=pepper, timeout=timeout, cache_seconds=cache_seconds)
    raise InvalidRequest("SWIFTCHAT_STORE must start with sqlite:/// or redis://")
