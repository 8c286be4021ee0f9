"""gunicorn settings for swiftchat-api; every one can be overridden from the environment."""

import os

bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
# Each open chat stream holds one connection; the gevent worker serves this many at once.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "4096"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "4096"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "120"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# Off, so each gevent worker patches sockets before the app (and boto3) is imported.
preload_app = False
accesslog = os.environ.get("ACCESS_LOG", "-") or None
loglevel = os.environ.get("LOG_LEVEL", "info")
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or None

_emulator = None


def on_starting(server):
    """Start the emulator if asked, then refuse (once, clearly) a configuration that cannot work."""
    if os.environ.get("SWIFTCHAT_EMULATOR", "").lower() in ("1", "true", "yes", "on"):
        _start_emulator(server)
    from swiftchat_api.config import Config, ConfigError

    try:
        Config.from_env()
    except ConfigError as error:
        server.log.error("swiftchat-api cannot start: %s", error)
        raise SystemExit(1) from None


def _start_emulator(server):
    """Point boto3 at the built-in emulator (started here unless an endpoint is set) and say so."""
    global _emulator
    if not os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        from swiftchat_api.emulator import launch

        _emulator, url = launch.start()
        for name, value in launch.environment(url).items():
            os.environ.setdefault(name, value)
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = os.environ["AWS_ENDPOINT_URL_BEDROCK"] = url
    banner = "*" * 78
    server.log.warning(banner)
    server.log.warning(
        "SWIFTCHAT_EMULATOR is on: Bedrock calls go to %s", os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    )
    server.log.warning("Answers are canned by the built-in emulator, NOT produced by Amazon Bedrock.")
    if not os.environ.get("API_KEY") and not os.environ.get("API_KEY_NAME"):
        server.log.warning("No API_KEY set: the demo key from the README is accepted.")
    server.log.warning(banner)


def on_exit(server):
    """Stop the emulator this master started, if any."""
    if _emulator is not None:
        _emulator.terminate()
