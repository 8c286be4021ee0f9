"""Configuration, read from environment variables only (the README's table)."""

import math
import os
import re
from dataclasses import dataclass

DEMO_API_KEY = "swiftchat-demo-key"


class ConfigError(Exception):
    """The environment does not describe a server that can run."""


def number(env, name, default, kind=float, minimum=0):
    """The named setting as a number (default when unset); ConfigError naming it when it is not one."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def flag(env, name):
    """The named on/off setting; ConfigError naming it for anything but 1/0, true/false, yes/no, on/off."""
    raw = env.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {env.get(name)!r}")


def choice(env, name, choices):
    """The named setting, one of ``choices`` (the first when unset); ConfigError naming it otherwise."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return raw


# Only the shape is checked here (no import of the proxy service before gevent patches sockets);
# services/proxy.py reads the values themselves when the app is built.
_HOST_ENTRY = re.compile(r"([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?", re.ASCII)
_HTTP_URL = re.compile(r"https?://[a-z0-9.:\[\]-]+(/[!-\"$-~]*)?", re.ASCII | re.IGNORECASE)


def _proxy_hosts(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.strip().lower() == "none":
        return ()
    entries = tuple(entry.strip().lower() for entry in raw.split(","))
    for entry in entries:
        if not _HOST_ENTRY.fullmatch(entry):
            raise ConfigError(f"{name} must be host or host:port entries separated by commas, or none; got {entry!r}")
    return entries


_ORIGIN = re.compile(r"https?://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?", re.ASCII)


def _origins(env, name):
    """The browser origins allowed to call, as a tuple: () for none, ("*",) for any."""
    raw = (env.get(name) or "").strip()
    if raw in ("", "*"):
        return (raw,) if raw else ()
    entries = tuple(entry.strip().lower() for entry in raw.split(","))
    for entry in entries:
        if not _ORIGIN.fullmatch(entry):
            raise ConfigError(f"{name} must be * or origins such as https://app.example.com:8443, comma-separated")
    return entries


def _proxy_url(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.strip().lower() == "none":
        return None
    if not _HTTP_URL.fullmatch(raw):  # not echoed: a URL can carry a key
        raise ConfigError(f"{name} must be an http(s) URL with no user name or fragment, or none")
    return raw


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(env, name, default):
    """The named setting in seconds, given as a number of seconds or with a unit (``90s``, ``15m``, ``12h``,
    ``30d``); ConfigError naming it otherwise."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    unit = _UNITS.get(raw[-1], 1)
    figure = raw[:-1].strip() if raw[-1] in _UNITS else raw
    if not figure:
        raise ConfigError(f"{name} must be a number of seconds, or one with a unit (30d, 12h, 15m, 90s)")
    return number({name: figure}, name, default) * unit


def _file(env, name):
    path = env.get(name) or None
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"{name} must name a readable file, got {path!r}")
    return path


@dataclass(frozen=True)
class Config:
    api_key: str | None = None
    api_key_name: str | None = None
    client_role_arn: str | None = None
    aws_region: str | None = None
    metrics_token: str | None = None
    emulator: bool = False
    keepalive_seconds: float = 5.0
    first_byte_timeout: float = 15.0
    first_event_window: float = 3.0
    client_timeout: float = 60.0
    header_timeout: float = 10.0
    key_refresh_seconds: float = 5.0
    stream_buffer_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    body_timeout: float = 30.0
    bedrock_max_pool_connections: int = 4096
    bedrock_connect_timeout: float = 5.0
    bedrock_read_timeout: float = 300.0
    bedrock_max_attempts: int = 3
    image_helper_model_id: str | None = None
    prompt_cache: str = "off"  # "auto": the server places Bedrock cache points itself (prompt_cache.py)
    models_cache_seconds: float = 300.0
    upgrade_tags_url: str = "https://api.github.com/repos/aws-samples/swift-chat/tags"
    upgrade_download_url: str = "https://github.com/aws-samples/swift-chat/releases/download"
    upgrade_cache_seconds: float = 120.0
    upgrade_timeout_seconds: float = 5.0
    store_url: str = "sqlite:///swiftchat.db"
    store_timeout: float = 1.0
    key_pepper: str | None = None
    responses_ttl: float = 30 * 86400.0  # 0: no response is stored
    responses_key_bytes: int = 100 * 1024 * 1024
    responses_total_bytes: int = 1024 * 1024 * 1024
    responses_max_turns: int = 500
    openai_gpt_url: str | None = "https://api.openai.com/v1/chat/completions"
    # The public providers the SwiftChat apps offer behind "Use Proxy".
    openai_proxy_hosts: tuple = ("api.openai.com", "api.deepseek.com", "openrouter.ai")
    openai_proxy_connect_timeout: float = 10.0
    openai_proxy_first_byte_timeout: float = 45.0
    openai_proxy_idle_timeout: float = 300.0
    openai_proxy_max_seconds: float = 1800.0
    openai_proxy_max_bytes: int = 16 * 1024 * 1024
    openai_proxy_ca_bundle: str | None = None
    cors_origins: tuple = ()  # the browser origins /v1 answers: () none, ("*",) any
    # True: the Use Proxy routes need this server's key in x-api-key; None: only when a non-public
    # provider is listed (an anonymous relay into the host's network otherwise); False: never.
    openai_proxy_require_key: bool | None = None

    @classmethod
    def from_env(cls, env=None, key_source_required=True):
        """Read and check every setting; raise ConfigError naming the first bad one.

        ``key_source_required=False`` is for the operator's CLI (``flask keys ...``), which manages
        per-person keys in the store and never authenticates a request itself.
        """
        env = os.environ if env is None else env
        emulator = flag(env, "SWIFTCHAT_EMULATOR")
        config = cls(
            api_key=env.get("API_KEY") or (DEMO_API_KEY if emulator and not env.get("API_KEY_NAME") else None),
            api_key_name=env.get("API_KEY_NAME") or None,
            client_role_arn=env.get("CLIENT_ROLE_ARN") or None,
            # boto3 reads only AWS_DEFAULT_REGION; operators (and the README's unit) set AWS_REGION.
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            metrics_token=env.get("METRICS_TOKEN") or None,
            emulator=emulator,
            keepalive_seconds=number(env, "SWIFTCHAT_KEEPALIVE_SECONDS", cls.keepalive_seconds, minimum=0.05),
            first_byte_timeout=number(env, "SWIFTCHAT_FIRST_BYTE_TIMEOUT", cls.first_byte_timeout, minimum=1),
            first_event_window=number(env, "SWIFTCHAT_FIRST_EVENT_WINDOW", cls.first_event_window),
            client_timeout=number(env, "SWIFTCHAT_CLIENT_TIMEOUT", cls.client_timeout, minimum=1),
            header_timeout=number(env, "SWIFTCHAT_HEADER_TIMEOUT", cls.header_timeout, minimum=0.1),
            key_refresh_seconds=number(env, "SWIFTCHAT_KEY_REFRESH_SECONDS", cls.key_refresh_seconds),
            stream_buffer_bytes=int(number(env, "SWIFTCHAT_STREAM_BUFFER_KB", 64, minimum=4) * 1024),
            max_body_bytes=int(number(env, "SWIFTCHAT_MAX_BODY_MB", 64, minimum=1) * 1024 * 1024),
            body_timeout=number(env, "SWIFTCHAT_BODY_TIMEOUT", cls.body_timeout, minimum=1),
            bedrock_max_pool_connections=number(
                env, "BEDROCK_MAX_POOL_CONNECTIONS", cls.bedrock_max_pool_connections, int, minimum=1
            ),
            bedrock_connect_timeout=number(env, "BEDROCK_CONNECT_TIMEOUT", cls.bedrock_connect_timeout, minimum=0.1),
            bedrock_read_timeout=number(env, "BEDROCK_READ_TIMEOUT", cls.bedrock_read_timeout, minimum=1),
            bedrock_max_attempts=number(env, "BEDROCK_MAX_ATTEMPTS", cls.bedrock_max_attempts, int, minimum=1),
            image_helper_model_id=env.get("IMAGE_HELPER_MODEL_ID") or None,
            prompt_cache=choice(env, "SWIFTCHAT_PROMPT_CACHE", ("off", "auto")),
            models_cache_seconds=number(env, "MODELS_CACHE_SECONDS", cls.models_cache_seconds),
            upgrade_tags_url=env.get("UPGRADE_TAGS_URL") or cls.upgrade_tags_url,
            upgrade_download_url=env.get("UPGRADE_DOWNLOAD_URL") or cls.upgrade_download_url,
            upgrade_cache_seconds=number(env, "UPGRADE_CACHE_SECONDS", cls.upgrade_cache_seconds),
            upgrade_timeout_seconds=number(env, "UPGRADE_TIMEOUT_SECONDS", cls.upgrade_timeout_seconds, minimum=0.1),
            store_url=env.get("SWIFTCHAT_STORE") or cls.store_url,
            store_timeout=number(env, "SWIFTCHAT_STORE_TIMEOUT", cls.store_timeout, minimum=0.05),
            key_pepper=env.get("SWIFTCHAT_KEY_PEPPER") or None,
            responses_ttl=duration(env, "SWIFTCHAT_RESPONSES_TTL", cls.responses_ttl),
            responses_key_bytes=int(number(env, "SWIFTCHAT_RESPONSES_KEY_MB", 100, minimum=0.01) * 1024 * 1024),
            responses_total_bytes=int(number(env, "SWIFTCHAT_RESPONSES_TOTAL_MB", 1024, minimum=0.01) * 1024 * 1024),
            responses_max_turns=number(env, "SWIFTCHAT_RESPONSES_MAX_TURNS", cls.responses_max_turns, int, minimum=1),
            openai_gpt_url=_proxy_url(env, "OPENAI_GPT_URL", cls.openai_gpt_url),
            openai_proxy_hosts=_proxy_hosts(env, "OPENAI_PROXY_HOSTS", cls.openai_proxy_hosts),
            openai_proxy_connect_timeout=number(
                env, "OPENAI_PROXY_CONNECT_TIMEOUT", cls.openai_proxy_connect_timeout, minimum=0.1
            ),
            openai_proxy_first_byte_timeout=number(
                env, "OPENAI_PROXY_FIRST_BYTE_TIMEOUT", cls.openai_proxy_first_byte_timeout, minimum=1
            ),
            openai_proxy_idle_timeout=number(
                env, "OPENAI_PROXY_IDLE_TIMEOUT", cls.openai_proxy_idle_timeout, minimum=1
            ),
            openai_proxy_max_seconds=number(env, "OPENAI_PROXY_MAX_SECONDS", cls.openai_proxy_max_seconds, minimum=1),
            openai_proxy_max_bytes=int(number(env, "OPENAI_PROXY_MAX_MB", 16, minimum=0.001) * 1024 * 1024),
            openai_proxy_ca_bundle=_file(env, "OPENAI_PROXY_CA_BUNDLE"),
            cors_origins=_origins(env, "CORS_ORIGINS"),
            openai_proxy_require_key=None
            if (env.get("OPENAI_PROXY_REQUIRE_KEY") or "auto").strip().lower() == "auto"
            else flag(env, "OPENAI_PROXY_REQUIRE_KEY"),
        )
        config.check(key_source_required)
        return config

    def check(self, key_source_required=True):
        """Refuse a server that would run with no key, or with two competing key sources."""
        if self.api_key and self.api_key_name:
            raise ConfigError("Set API_KEY or API_KEY_NAME, not both: the server would not know which key is real.")
        if key_source_required and not (self.api_key or self.api_key_name):
            raise ConfigError(
                "No API key configured: set API_KEY (a literal key) or API_KEY_NAME (an SSM Parameter Store "
                "SecureString holding the key). Refusing to serve without authentication."
            )
        if self.responses_key_bytes > self.responses_total_bytes:
            raise ConfigError("SWIFTCHAT_RESPONSES_KEY_MB must not be more than SWIFTCHAT_RESPONSES_TOTAL_MB.")
        if not self.store_url.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
            # Not echoed: a Redis URL can carry a password.
            raise ConfigError("SWIFTCHAT_STORE must be sqlite:///<file> or redis://<host>:<port>/<db>.")
