"""A small time-to-live cache whose misses are computed once, however many callers wait."""

import threading
import time


class TTLCache:
    def __init__(self, ttl):
        self.ttl = ttl
        self._entries = {}
        self._locks = {}
        self._guard = threading.Lock()

    def get(self, key, compute):
        """The cached value for key, or compute() stored for ttl seconds (an exception is not stored)."""
        entry = self._entries.get(key)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # callers that missed together share one computation
            entry = self._entries.get(key)
            if entry and entry[0] > time.monotonic():
                return entry[1]
            value = compute()
            self._entries[key] = (time.monotonic() + self.ttl, value)
            return value
