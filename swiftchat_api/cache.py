"""A small, bounded time-to-live cache whose misses are computed once, however many callers wait."""

import threading
import time
from collections import OrderedDict


class TTLCache:
    # Keys come from callers (a region name per request): past this many, the oldest go.
    MAX_ENTRIES = 256

    def __init__(self, ttl):
        self.ttl = ttl
        self._entries = OrderedDict()
        self._locks = {}
        self._guard = threading.Lock()

    def get(self, key, compute):
        """The cached value for key, or compute() stored for ttl seconds (an exception is not stored)."""
        entry = self._entries.get(key)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        try:
            with lock:  # callers that missed together share one computation
                entry = self._entries.get(key)
                if entry and entry[0] > time.monotonic():
                    return entry[1]
                value = compute()
                self._entries[key] = (time.monotonic() + self.ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.MAX_ENTRIES:
                    self._entries.popitem(last=False)
                return value
        finally:
            with self._guard:
                if not lock.locked():  # no one else is waiting on it: it need not be kept
                    self._locks.pop(key, None)
