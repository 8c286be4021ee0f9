"""boto3 clients, built once per (service, region) and shared by every request."""

import threading

import boto3
from botocore.config import Config as BotoConfig


class Clients:
    """A lazily filled, shared set of boto3 clients sized for thousands of open streams."""

    def __init__(self, config, session=None):
        self._session = session or boto3.session.Session()
        self._configs = {
            False: BotoConfig(
                max_pool_connections=config.bedrock_max_pool_connections,
                connect_timeout=config.bedrock_connect_timeout,
                read_timeout=config.bedrock_read_timeout,
                retries={"mode": "standard", "max_attempts": config.bedrock_max_attempts},
                tcp_keepalive=True,
            )
        }
        # Streams get no per-read socket time-out: arming a timer on every read is the costliest
        # part of relaying an event. The relay watches for silence instead (relay.Ticker), and
        # open_stream bounds the wait for the first byte.
        self._configs[True] = self._configs[False].merge(BotoConfig(read_timeout=None))
        self._clients = {}
        self._lock = threading.Lock()

    def warm(self):
        """Build the default region's chat client now, so no request pays for loading botocore's models."""
        if self._session.region_name:
            self.get("bedrock-runtime", self._session.region_name, streaming=True)

    def get(self, service, region=None, streaming=False):
        """Return the shared client for a service in a region (None: the default region)."""
        key = (service, region, streaming)
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # botocore's loaders are not safe to run concurrently
                client = self._clients.get(key)
                if client is None:
                    client = self._session.client(service, region_name=region, config=self._configs[streaming])
                    self._clients[key] = client
        return client
