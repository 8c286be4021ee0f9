"""Bedrock's own count of a chat's input, for a stream that ended without Bedrock's usage.

Bedrock bills a stream cut before its ``metadata`` event (the client gone, the upstream cut, a
time-out) for its whole input, but says nothing of it. Its ``CountTokens`` (free of charge) gives
the count that input is billed at, for the models that support it: a few Anthropic models, named
by their bare foundation-model id (a cross-region profile's geography is dropped, as Bedrock
refuses profile ids). For any other model the stream is charged charges.estimate_input.

The call is made once the response is over, in a greenlet of its own (the connection's next
request never waits on it), bounded in time (``COUNT_SECONDS``, no retries) and in number
(``AT_ONCE`` per worker; past that, the estimate is used at once). A model Bedrock says it
cannot count for (or the server may not count for: AccessDenied) is remembered by the worker and
not asked again until it restarts. Any failure falls back to the estimate.
"""

import atexit
import logging
from collections import OrderedDict
from functools import partial

import gevent
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from gevent.pool import Pool

from ..profile import without_geography

log = logging.getLogger(__name__)

COUNT_SECONDS = 5.0  # the whole call, connection included
AT_ONCE = 64  # counts under way in one worker
REMEMBERED = 256  # models Bedrock will not count for, remembered per worker (the least recently seen go first)
_MAX_TOKENS = 10**9
_COUNTED = ("messages", "system", "toolConfig", "additionalModelRequestFields")  # what CountTokens takes
# One try: a throttled count is not worth a second call; the estimate is there.
_SETTINGS = BotoConfig(
    connect_timeout=2, read_timeout=COUNT_SECONDS, retries={"mode": "standard", "total_max_attempts": 1}
)
_REFUSED_FOR_GOOD = ("AccessDeniedException", "ResourceNotFoundException")


class TokenCounter:
    """Counts cut streams' input with Bedrock's CountTokens; one per app, given its shared boto3 clients."""

    def __init__(self, clients, seconds=COUNT_SECONDS, at_once=AT_ONCE):
        self._clients = clients
        self._seconds = seconds
        self._pool = Pool(at_once)
        self._uncounted = OrderedDict()
        self._closed = False
        atexit.register(self.close)  # before the usage recorder's own (registered earlier, run later)

    def for_stream(self, client, args):
        """``start(then)`` for a ConverseStream call made with ``client`` and ``args``, or None for a model
        Bedrock will not count for.

        ``start`` spawns the count and returns True, ``then(tokens or None)`` being called when it is
        done; it returns False, calling nothing, when no count can be started now.
        """
        model = without_geography(args["modelId"])  # CountTokens refuses profile ids
        if model in self._uncounted:
            return None
        converse = {name: args[name] for name in _COUNTED if name in args}
        return partial(self._start, client.meta.region_name, model, converse)

    def _start(self, region, model, converse, then):
        if self._closed or self._pool.full() or model in self._uncounted:
            return False
        self._pool.spawn(self._count_then, region, model, converse, then)
        return True

    def _count_then(self, region, model, converse, then):
        counted = None
        try:
            counted = self.count(region, model, converse)
        finally:  # killed at the worker's exit too: the request is still charged, at the estimate
            then(counted)

    def count(self, region, model, converse):
        """Bedrock's count of a Converse request's input tokens, or None; bounded in time, never raises."""
        deadline = gevent.Timeout(self._seconds)
        try:
            with deadline:
                client = self._clients.get("bedrock-runtime", region, config=_SETTINGS)
                answer = client.count_tokens(modelId=model, input={"converse": converse})
        except gevent.Timeout as expired:
            if expired is not deadline:
                raise
            return None
        except ClientError as error:
            self._refused(model, error)
            return None
        except Exception as error:  # botocore's own, or a parameter CountTokens does not take: the estimate
            log.warning("CountTokens for %s failed: %s", model, type(error).__name__)
            return None
        tokens = answer.get("inputTokens")
        return tokens if type(tokens) is int and 0 <= tokens < _MAX_TOKENS else None

    def _refused(self, model, error):
        details = error.response.get("Error", {})
        code, message = details.get("Code", ""), details.get("Message", "")
        if code in _REFUSED_FOR_GOOD or (code == "ValidationException" and "support counting tokens" in message):
            if model not in self._uncounted:
                log.info("Bedrock will not count tokens for %s (%s): cut streams are charged the estimate", model, code)
            self._uncounted[model] = True
            self._uncounted.move_to_end(model)
            while len(self._uncounted) > REMEMBERED:
                self._uncounted.popitem(last=False)

    def close(self):
        """At the worker's exit: counts under way get their time, then are settled at the estimate."""
        self._closed = True
        self._pool.join(timeout=self._seconds)
        self._pool.kill(timeout=1)
