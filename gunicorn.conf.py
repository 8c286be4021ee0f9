"""gunicorn settings for swiftchat-api; every one can be overridden from the environment."""

import os
import shutil
import signal
import sys
import tempfile

from swiftchat_api.config import ConfigError, flag, number
from swiftchat_api.hostlimits import raise_open_files, usable_cpus
from swiftchat_api.logs import gunicorn_logconfig

_env = os.environ
try:
    bind = _env.get("GUNICORN_BIND") or f"{_env.get('HOST', '0.0.0.0')}:{number(_env, 'PORT', 8080, int, minimum=1)}"
    # One worker per CPU this process may use: its affinity, capped by a cgroup's CPU quota (--cpus).
    workers = number(_env, "WEB_CONCURRENCY", usable_cpus(), int, minimum=1)
    # Each open chat stream holds one connection; the gevent worker serves this many at once.
    worker_connections = number(_env, "WORKER_CONNECTIONS", 4096, int, minimum=1)
    backlog = number(_env, "GUNICORN_BACKLOG", 4096, int, minimum=1)
    keepalive = number(_env, "GUNICORN_KEEPALIVE", 75, int)
    graceful_timeout = number(_env, "GRACEFUL_TIMEOUT", 120, int)
    timeout = number(_env, "GUNICORN_TIMEOUT", 60, int, minimum=1)
    # The app writes one JSON access line per request itself (after a stream's last byte);
    # ACCESS_LOG=1 adds gunicorn's own access line.
    access_log = flag(_env, "ACCESS_LOG")
    loglevel = _env.get("LOG_LEVEL", "info").lower()
    if loglevel not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"LOG_LEVEL must be debug, info, warning, error or critical, got {loglevel!r}")
except ConfigError as error:
    sys.exit(f"swiftchat-api cannot start: {error}")
# gunicorn's gevent worker, admitting the apps' request_url header and answering its own errors as JSON.
worker_class = "swiftchat_api.worker.SwiftChatWorker"
# Off, so each gevent worker patches sockets before the app (and boto3) is imported.
preload_app = False
logconfig_dict = gunicorn_logconfig(access_log=access_log, level=loglevel)
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or None

_emulator = None
_metrics_dir = None


def on_starting(server):
    """Start the emulator if asked, refuse (once, clearly) a configuration that cannot work, prepare metrics."""
    if os.environ.get("SWIFTCHAT_EMULATOR", "").lower() in ("1", "true", "yes", "on"):
        _start_emulator(server)
    from swiftchat_api.config import Config, ConfigError

    try:
        Config.from_env()
    except ConfigError as error:
        server.log.error("swiftchat-api cannot start: %s", error)
        on_exit(server)
        raise SystemExit(1) from None
    _prepare_metrics_dir()


def _start_emulator(server):
    """Point boto3 at the built-in emulator (started here unless an endpoint is set) and say so."""
    global _emulator
    if not os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        from swiftchat_api.emulator import launch

        before, soft, _ = raise_open_files()  # the emulator serves every worker's upstream connections
        if soft != before:
            server.log.info("Open-files limit raised from %s to %s (the hard limit), for the emulator", before, soft)
        # Ctrl-C on `make run` is the master's to handle (it stops the emulator on exit); the
        # emulator, in the terminal's process group too, would print a KeyboardInterrupt of its own.
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _emulator, url = launch.start()
        finally:
            signal.signal(signal.SIGINT, interrupt)
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


def _prepare_metrics_dir():
    """Give the workers an empty directory in which prometheus_client sums their metrics."""
    global _metrics_dir
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):  # counts from an earlier run would be added to this one's
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
    else:
        _metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="swiftchat-metrics-")


def post_worker_init(worker):
    """Leave Ctrl-C to the master, which stops the workers itself (SIGQUIT).

    A worker that took the terminal's SIGINT as well exited twice, and gevent printed the second
    exit's traceback amid the JSON log.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (open streams) from the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Stop the emulator and remove the metrics directory this master made."""
    if _emulator is not None:
        _emulator.terminate()
    if _metrics_dir is not None:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
