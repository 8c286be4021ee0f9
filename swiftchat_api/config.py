"""Configuration, read from environment variables only (the README's table)."""

import os
from dataclasses import dataclass

DEMO_API_KEY = "swiftchat-demo-key"


class ConfigError(Exception):
    """The environment does not describe a server that can run."""


def _number(env, name, default, kind=float, minimum=0):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _flag(env, name):
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Config:
    api_key: str | None = None
    api_key_name: str | None = None
    client_role_arn: str | None = None
    metrics_token: str | None = None
    emulator: bool = False
    keepalive_seconds: float = 5.0
    first_byte_timeout: float = 40.0
    max_body_bytes: int = 64 * 1024 * 1024
    bedrock_max_pool_connections: int = 4096
    bedrock_connect_timeout: float = 5.0
    bedrock_read_timeout: float = 300.0
    bedrock_max_attempts: int = 3
    image_helper_model_id: str | None = None
    models_cache_seconds: float = 300.0
    upgrade_tags_url: str = "https://api.github.com/repos/aws-samples/swift-chat/tags"
    upgrade_download_url: str = "https://github.com/aws-samples/swift-chat/releases/download"
    upgrade_cache_seconds: float = 120.0
    upgrade_timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, env=None):
        """Read and check every setting; raise ConfigError naming the first bad one."""
        env = os.environ if env is None else env
        emulator = _flag(env, "SWIFTCHAT_EMULATOR")
        config = cls(
            api_key=env.get("API_KEY") or (DEMO_API_KEY if emulator and not env.get("API_KEY_NAME") else None),
            api_key_name=env.get("API_KEY_NAME") or None,
            client_role_arn=env.get("CLIENT_ROLE_ARN") or None,
            metrics_token=env.get("METRICS_TOKEN") or None,
            emulator=emulator,
            keepalive_seconds=_number(env, "SWIFTCHAT_KEEPALIVE_SECONDS", cls.keepalive_seconds, minimum=0.05),
            first_byte_timeout=_number(env, "SWIFTCHAT_FIRST_BYTE_TIMEOUT", cls.first_byte_timeout, minimum=1),
            max_body_bytes=int(_number(env, "SWIFTCHAT_MAX_BODY_MB", 64, minimum=1) * 1024 * 1024),
            bedrock_max_pool_connections=_number(
                env, "BEDROCK_MAX_POOL_CONNECTIONS", cls.bedrock_max_pool_connections, int, minimum=1
            ),
            bedrock_connect_timeout=_number(env, "BEDROCK_CONNECT_TIMEOUT", cls.bedrock_connect_timeout, minimum=0.1),
            bedrock_read_timeout=_number(env, "BEDROCK_READ_TIMEOUT", cls.bedrock_read_timeout, minimum=1),
            bedrock_max_attempts=_number(env, "BEDROCK_MAX_ATTEMPTS", cls.bedrock_max_attempts, int, minimum=1),
            image_helper_model_id=env.get("IMAGE_HELPER_MODEL_ID") or None,
            models_cache_seconds=_number(env, "MODELS_CACHE_SECONDS", cls.models_cache_seconds),
            upgrade_tags_url=env.get("UPGRADE_TAGS_URL") or cls.upgrade_tags_url,
            upgrade_download_url=env.get("UPGRADE_DOWNLOAD_URL") or cls.upgrade_download_url,
            upgrade_cache_seconds=_number(env, "UPGRADE_CACHE_SECONDS", cls.upgrade_cache_seconds),
            upgrade_timeout_seconds=_number(env, "UPGRADE_TIMEOUT_SECONDS", cls.upgrade_timeout_seconds, minimum=0.1),
        )
        config.check()
        return config

    def check(self):
        """Refuse a server that would run with no key, or with two competing key sources."""
        if self.api_key and self.api_key_name:
            raise ConfigError("Set API_KEY or API_KEY_NAME, not both: the server would not know which key is real.")
        if not (self.api_key or self.api_key_name):
            raise ConfigError(
                "No API key configured: set API_KEY (a literal key) or API_KEY_NAME (an SSM Parameter Store "
                "SecureString holding the key). Refusing to serve without authentication."
            )
