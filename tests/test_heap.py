"""After a burst, a worker gives the memory its requests freed back to the system.

The schedule is tested with a clock and a ``malloc_trim`` stand-in (the C library is the
boundary); the last test sees the real thing through a gunicorn worker, in its debug log.
"""

import contextlib
import json
import re
import time

from conftest import TEST_KEY, Server, emulator_env

from swiftchat_api import heap

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


class Done(Exception):
    pass


class Log:
    def __init__(self):
        self.lines = []

    def debug(self, message, *args):
        self.lines.append(message % args)


def schedule(freed_counts, quiet=1.0, gap=3.0, interval=6.0):
    """Run trim_after_bursts over ``freed_counts`` (the count seen at each wake-up): when it trimmed."""
    clock = [0.0]
    counts = iter([0, *freed_counts])
    trims = []

    def sleep(seconds):
        clock[0] += seconds

    def freed():
        try:
            return next(counts)
        except StopIteration:
            raise Done from None

    with contextlib.suppress(Done):  # the counts ran out
        heap.trim_after_bursts(
            lambda pad: trims.append(clock[0]),
            freed,
            Log(),
            quiet=quiet,
            gap=gap,
            interval=interval,
            sleep=sleep,
            clock=lambda: clock[0],
        )
    return trims


def test_nothing_freed_nothing_trimmed():
    assert schedule([0] * 20) == []


def test_a_burst_is_trimmed_once_it_pauses():
    # requests free memory during the first four seconds, then nothing more
    assert schedule([5, 40, 90, 120, 120, 120, 120, 120, 120]) == [5.0]


def test_trims_are_a_gap_apart_however_often_requests_pause():
    # a request ends every other second: one trim, then the next only a gap later
    assert schedule([1, 1, 2, 2, 3, 3, 4, 4, 5, 5]) == [4.0, 8.0]


def test_requests_that_never_pause_are_trimmed_every_interval():
    assert schedule(list(range(1, 14))) == [6.0, 12.0]


def test_a_real_worker_gives_back_what_a_burst_freed(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY, "LOG_LEVEL": "debug"})
    try:
        filler = "lorem ipsum dolor sit amet " * 40
        history = [
            {"role": "user" if turn % 2 == 0 else "assistant", "content": [{"text": f"{turn} {filler}"}]}
            for turn in range(63)
        ]  # a long conversation, as the apps send it with every message
        body = {"modelId": MODEL, "region": "us-west-2", "messages": history}
        assert len(json.dumps(body)) > 64 * 1024
        assert all(b"messageStop" in answer for answer in live.streams_at_once("/api/converse/v2", body, 60))
        # the first trim comes heap.GAP after the worker started, or a second after the burst
        deadline = time.monotonic() + heap.GAP + 15
        given = []
        while time.monotonic() < deadline and not (given and max(given) > 1):
            time.sleep(0.2)
            given = [float(mb) for mb in re.findall(r"Gave back ([0-9.]+) MB", live.output())]
        assert given and max(given) > 1, live.output()[-2000:]
    finally:
        live.stop()
