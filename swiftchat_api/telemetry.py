"""Prometheus metrics. Under gunicorn they are shared by all workers through files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it before any worker imports this module)."""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

REQUESTS = Counter("swiftchat_requests", "HTTP requests answered.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "swiftchat_request_duration_seconds", "Time until the response started.", ["route"], buckets=_SECONDS
)
STREAM_SECONDS = Histogram(
    "swiftchat_stream_duration_seconds", "Chat streams, from request to last byte.", ["route"], buckets=_SECONDS
)
FIRST_EVENT_SECONDS = Histogram(
    "swiftchat_time_to_first_event_seconds", "From request to Bedrock's first event.", ["route"], buckets=_SECONDS
)
OPEN_STREAMS = Gauge("swiftchat_open_streams", "Chat streams open now.", multiprocess_mode="livesum")
TOKENS = Counter("swiftchat_bedrock_tokens", "Tokens Bedrock reported.", ["model", "direction"])
UPSTREAM_ERRORS = Counter("swiftchat_upstream_errors", "Bedrock failures, by error code.", ["type"])
DISCONNECTS = Counter("swiftchat_client_disconnects", "Clients that left before their stream ended.", ["route"])
# Per key, labelled with the key's name (never the key): as many series as there are keys.
KEY_REQUESTS = Counter("swiftchat_key_requests", "Requests served, per key name.", ["key"])
KEY_TOKENS = Counter("swiftchat_key_tokens", "Bedrock tokens used, per key name.", ["key", "direction"])
KEY_REFUSALS = Counter("swiftchat_key_refusals", "Requests refused over a key's limit.", ["key", "limit"])
STORE_ERRORS = Counter("swiftchat_store_errors", "Key store calls that failed, by operation.", ["operation"])
USAGE_LOST = Counter("swiftchat_usage_lost", "Served requests whose usage may not have reached the key store.")
RESPONSES_EVICTED = Counter(
    "swiftchat_responses_evicted",
    "Stored responses evicted to keep within SWIFTCHAT_RESPONSES_KEY_MB or SWIFTCHAT_RESPONSES_TOTAL_MB.",
)


def upstream_error(error):
    """Count a Bedrock failure under its AWS error code (or exception class)."""
    response = getattr(error, "response", None) or {}
    UPSTREAM_ERRORS.labels(response.get("Error", {}).get("Code") or type(error).__name__).inc()


def stream_finished(route, model, started, relay, bedrock=True):
    """Record what one finished chat stream did; ``bedrock``: its upstream was Bedrock (not a Use Proxy provider)."""
    STREAM_SECONDS.labels(route).observe(relay.finished_at - started)
    if relay.first_event_at is not None:
        FIRST_EVENT_SECONDS.labels(route).observe(relay.first_event_at - started)
    if relay.usage:
        TOKENS.labels(model, "input").inc(relay.usage.get("inputTokens", 0))
        TOKENS.labels(model, "output").inc(relay.usage.get("outputTokens", 0))
    from .exceptions import StreamRefused  # here: exceptions counts through this module

    # A refusal written in-band (StreamRefused) was counted, under Bedrock's code, when it was made.
    if bedrock and relay.upstream_error is not None and not isinstance(relay.upstream_error, StreamRefused):
        upstream_error(relay.upstream_error)
    if relay.client_gone:
        DISCONNECTS.labels(route).inc()


def key_served(name, input_tokens, output_tokens):
    """Count one served request of the key named ``name`` and the tokens it used."""
    KEY_REQUESTS.labels(name).inc()
    if input_tokens:
        KEY_TOKENS.labels(name, "input").inc(input_tokens)
    if output_tokens:
        KEY_TOKENS.labels(name, "output").inc(output_tokens)


PER_KEY_PREFIX = b"swiftchat_key_"  # the series labelled with a person's key name


def exposition(per_key=True):
    """(body, content type) of every worker's metrics, summed; without the per-key series unless ``per_key``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if not per_key:
        lines = body.split(b"\n")
        body = b"\n".join(line for line in lines if not _per_key_line(line))
    return body, CONTENT_TYPE_LATEST


def _per_key_line(line):
    """A sample, or its HELP or TYPE comment, of a per-key series."""
    if line.startswith(b"# HELP ") or line.startswith(b"# TYPE "):
        line = line[7:]
    return line.startswith(PER_KEY_PREFIX)
