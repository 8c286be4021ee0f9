"""boto3 clients, built once per (service, region) and shared by every request."""

import threading
from collections import OrderedDict

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ReadTimeoutError

# Any region name that looks like one is served, so a caller could make up hundreds; each
# client holds ~0.4 MB and its connections. More regions than Bedrock has keeps its clients
# for the regions in use, and the least recently used others are closed.
MAX_CLIENTS = 64

# Bedrock calls whose every attempt is a generation Bedrock may bill, once the request was sent.
GENERATIONS = ("Converse", "InvokeModel")


def _no_retry_after_a_read_timeout(caught_exception=None, **_):
    """End the call on a read time-out instead of sending it again.

    botocore's standard retries count a read time-out as transient, so a slow generation was
    made BEDROCK_MAX_ATTEMPTS times, each one billed. Raised here, on the operation's own
    ``needs-retry`` event (run before the service-wide retry handler), the time-out ends the call.
    Throttling and refusals before Bedrock took the call are retried as before.
    """
    if isinstance(caught_exception, ReadTimeoutError):
        raise caught_exception


class Clients:
    """A lazily filled, bounded set of shared boto3 clients sized for thousands of open streams."""

    def __init__(self, config, session=None):
        self._session = session or boto3.session.Session(region_name=config.aws_region)
        self._configs = {
            False: BotoConfig(
                max_pool_connections=config.bedrock_max_pool_connections,
                connect_timeout=config.bedrock_connect_timeout,
                read_timeout=config.bedrock_read_timeout,
                retries={"mode": "standard", "total_max_attempts": config.bedrock_max_attempts},
                tcp_keepalive=True,
            )
        }
        # Streams get no per-read socket time-out: arming a timer on every read is the costliest
        # part of relaying an event. The relay watches for silence instead (relay.Ticker), and
        # the relay bounds the wait for Bedrock to accept the call.
        self._configs[True] = self._configs[False].merge(BotoConfig(read_timeout=None))
        self._clients = OrderedDict()
        self._lock = threading.Lock()

    @property
    def default_region(self):
        return self._session.region_name

    def warm(self):
        """Build the default region's chat client now, so no request pays for loading botocore's models."""
        if self._session.region_name:
            self.get("bedrock-runtime", self._session.region_name, streaming=True)

    def get(self, service, region=None, streaming=False, config=None):
        """Return the shared client for a service in a region (None: the default region)."""
        key = (service, region, streaming, config)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)  # thread-safe in CPython, and no greenlet switch here
            return client
        with self._lock:  # botocore's loaders are not safe to run concurrently
            client = self._clients.get(key)
            if client is None:
                settings = self._configs[streaming] if config is None else self._configs[streaming].merge(config)
                client = self._session.client(service, region_name=region, config=settings)
                if service == "bedrock-runtime":
                    for operation in GENERATIONS:
                        event = f"needs-retry.bedrock-runtime.{operation}"
                        client.meta.events.register_first(event, _no_retry_after_a_read_timeout)
                self._clients[key] = client
                while len(self._clients) > MAX_CLIENTS:
                    _, evicted = self._clients.popitem(last=False)
                    evicted.close()  # idle connections only: a stream in flight keeps its own
        return client
