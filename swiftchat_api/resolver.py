"""Name lookups that a burst of new upstream connections shares.

gevent resolves names (``socket.getaddrinfo``) on a pool of ten native threads. Every open
stream to Bedrock is a connection of its own, so a thousand requests arriving together queued
a thousand identical lookups of one host name, each a hand-off to a thread and back (and,
with a real DNS server, a queue ten lookups wide). Here concurrent lookups of the same name
share one lookup and its answer. Nothing is kept once it is answered: every later connection
sees what the name resolves to then.
"""

import copy

import gevent
from gevent.event import AsyncResult


class SharedLookups:
    """A gevent resolver in front of another: identical getaddrinfo calls in flight become one."""

    def __init__(self, resolver):
        self._resolver = resolver
        self._pending = {}  # the call's arguments -> AsyncResult of the one lookup in flight

    def getaddrinfo(self, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        answer = self._pending.get(key)
        if answer is None:
            answer = self._pending[key] = AsyncResult()
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
            result = (None, error)
        finally:
            del self._pending[key]
            answer.set(result)

    def __getattr__(self, name):  # everything else (gethostbyname, close, ...) as the resolver does it
        return getattr(self._resolver, name)
