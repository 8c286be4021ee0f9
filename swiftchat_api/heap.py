"""Freed memory given back to the system once a burst of requests is over.

Python hands its larger blocks (request bodies, the text of every message in a conversation,
the JSON boto3 sends) to the C library's malloc, which keeps freed memory for later use and
returns only the top of its heap. So after a burst of long conversations a worker stays at the
burst's peak: 300 chats of 32 KB each, once open, left 127 KB per stream where a stream holds
about 30. glibc's ``malloc_trim`` also gives back the whole free pages inside the heap (66 KB
per stream in that case; the rest is Python's own allocator, which keeps its pools). The worker
calls it once its requests have freed memory and then ``quiet`` seconds have passed without more;
while they keep doing so, every ``interval`` seconds. A trim walks the whole heap (milliseconds
in a large one, in the worker's one thread, and as long again when there is nothing left to give
back), so trims are at least ``gap`` seconds apart.
"""

import ctypes
import os
import time

import gevent

QUIET = 1.0
GAP = 10.0
INTERVAL = 30.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def resident_bytes():
    """This process's resident memory in bytes (0 without /proc)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return 0


def trim_after_bursts(
    trim, freed, log, quiet=QUIET, gap=GAP, interval=INTERVAL, sleep=gevent.sleep, clock=time.monotonic
):
    """Forever: give memory back when ``freed()`` (a count that grows as requests free memory) pauses."""
    seen, trimmed, owed = freed(), clock(), False
    while True:
        sleep(quiet)
        count, now = freed(), clock()
        busy, seen = count != seen, count
        owed = owed or busy
        if owed and now - trimmed >= (interval if busy else gap):
            before = resident_bytes()
            trim(0)
            trimmed, owed = clock(), False
            log.debug("Gave back %.1f MB of freed memory", max(before - resident_bytes(), 0) / 2**20)
