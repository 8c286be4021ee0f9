"""Name lookups that a burst of new upstream connections shares.

gevent resolves names (``socket.getaddrinfo``) on a pool of ten native threads. Every open
stream to Bedrock is a connection of its own, so a thousand requests arriving together queued
a thousand identical lookups of one host name, each a hand-off to a thread and back (and,
with a real DNS server, a queue ten lookups wide). Here concurrent lookups of the same name
share one lookup and its answer. Nothing is kept once it is answered: every later connection
sees what the name resolves to then. A lookup older than ``JOIN_WITHIN`` is not joined: one lost
DNS packet (seconds of resolver retries) or a lookup that never returns holds up only the
callers that were already waiting for it.
"""

import copy
import time

import gevent
from gevent.event import AsyncResult

JOIN_WITHIN = 1.0  # seconds


class SharedLookups:
    """A gevent resolver in front of another: identical getaddrinfo calls in flight become one."""

    def __init__(self, resolver):
        self._resolver = resolver
        self._pending = {}  # the call's arguments -> (when it started, AsyncResult of the lookup)

    def getaddrinfo(self, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        started, answer = self._pending.get(key, (None, None))
        now = time.monotonic()
        if answer is None or now - started > JOIN_WITHIN:
            answer = AsyncResult()
            self._pending[key] = (now, answer)
            # In a greenlet of its own, so that a caller's time-out ends only that caller's wait.
            gevent.spawn_raw(self._look_up, key, answer, args, kwargs)
        found, error = answer.get()
        if error is not None:
            raise copy.copy(error)  # one instance raised in many greenlets would pile up their tracebacks
        return found

    def _look_up(self, key, answer, args, kwargs):
        result = (None, OSError("the name lookup was interrupted"))
        try:
            result = (self._resolver.getaddrinfo(*args, **kwargs), None)
        except Exception as error:  # every caller gets the lookup's own error
            result = (None, error.with_traceback(None))
        finally:
            if self._pending.get(key, (None, None))[1] is answer:  # not a newer lookup that replaced it
                del self._pending[key]
            answer.set(result)

    def __getattr__(self, name):  # everything else (gethostbyname, close, ...) as the resolver does it
        return getattr(self._resolver, name)
