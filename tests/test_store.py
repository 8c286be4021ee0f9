"""The key store: one suite, run against SQLite (a temporary file) and a real redis-server."""

import contextlib
import json
import multiprocessing
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import gevent
import pytest
import redis
from conftest import ROOT
from redis_fixture import RedisServer, require_redis_server

from swiftchat_api.store import (
    Admission,
    Identity,
    InvalidRequest,
    NameTaken,
    NoSuchKey,
    PepperMismatch,
    StoreUnavailable,
    open_store,
)
from swiftchat_api.store.recorder import UsageRecorder

# 2025-12-31 23:59:59.500 UTC: half a second before a minute and a day boundary.
T = 1767225599.5
DAY = "2025-12-31"


@pytest.fixture
def store(store_url):
    store = open_store(store_url, timeout=2)
    yield store
    store.close()


def stored_text(url):
    """Everything the store holds, as text, to search for secrets."""
    if url.startswith("sqlite:"):
        path = Path(url[len("sqlite:///") :])
        return b"".join(file.read_bytes() for file in sorted(path.parent.glob(path.name + "*")))
    client = redis.Redis.from_url(url)
    parts = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"hash":
            parts += [b"%s=%s" % item for item in client.hgetall(key).items()]
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"set":
            parts += client.smembers(key)
        else:
            parts.append(client.get(key))
        parts.append(key)
    return b"\n".join(parts)


def test_a_new_key_names_its_person_and_limits(store):
    key = store.create_key("alice", rpm=30, tokens_per_day=5000)
    assert key.startswith("sk-swiftchat-") and len(key) == 56
    assert store.lookup(key) == Identity("alice", 30, 5000)
    assert store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.lookup("sk-swiftchat-short") is None
    assert store.lookup("") is None
    assert store.create_key("bob") != key
    assert [(info.name, info.rpm, info.tokens_per_day, info.revoked) for info in store.list_keys()] == [
        ("alice", 30, 5000, None),
        ("bob", None, None, None),
    ]


def test_only_a_keyed_hash_is_stored(store, store_url):
    key = store.create_key("alice", rpm=5)
    store.admit(store.lookup(key))
    text = stored_text(store_url)
    assert store.digest(key).encode() in text  # the search looks where the key would be
    assert key.encode() not in text
    assert key[len("sk-swiftchat-") :].encode() not in text


def test_revoked_key_stops_working_for_another_worker_within_a_second(store, store_url):
    key = store.create_key("alice")
    other_worker = open_store(store_url)
    assert other_worker.lookup(key) == Identity("alice")  # now cached there
    store.revoke("alice")
    started = time.monotonic()
    while other_worker.lookup(key) is not None:
        assert time.monotonic() - started < 1.5, "a revoked key still worked after 1.5 s"
        time.sleep(0.05)
    assert store.list_keys()[0].revoked is not None
    other_worker.close()


def test_revoking_an_unknown_or_revoked_name_is_an_error(store):
    with pytest.raises(NoSuchKey, match="No active key is named carol"):
        store.revoke("carol")
    store.create_key("carol")
    store.revoke("carol")
    with pytest.raises(NoSuchKey):
        store.revoke("carol")


def test_a_name_is_taken_until_revoked_then_gets_a_new_key(store):
    old = store.create_key("alice")
    with pytest.raises(NameTaken, match="revoke it first"):
        store.create_key("alice")
    store.revoke("alice")
    new = store.create_key("alice", rpm=2)
    assert store.lookup(old) is None
    assert store.lookup(new) == Identity("alice", 2, None)


@pytest.mark.parametrize(
    ("name", "rpm", "tokens_per_day"),
    [
        ("", None, None),
        ("has space", None, None),
        ("a" * 65, None, None),
        ("-leading-dash", None, None),
        ("colon:name", None, None),
        ("alice", -1, None),
        ("alice", 0, None),
        ("alice", 100_001, None),
        ("alice", None, -5),
        ("alice", None, 0),
        ("alice", 1.5, None),
        ("alice", True, None),
    ],
)
def test_bad_names_and_limits_are_refused(store, name, rpm, tokens_per_day):
    with pytest.raises(InvalidRequest):
        store.create_key(name, rpm=rpm, tokens_per_day=tokens_per_day)
    assert store.list_keys() == []


def test_rpm_is_a_sliding_window_with_no_double_burst_at_a_minute_boundary(store):
    alice = store.lookup(store.create_key("alice", rpm=3))
    assert [store.admit(alice, T + i * 0.1).ok for i in range(3)] == [True, True, True]
    # A fixed per-minute counter would start afresh here, one second later in the next minute.
    assert store.admit(alice, T + 1) == Admission(False, 59, "rpm")
    assert store.admit(alice, T + 59.9) == Admission(False, 1, "rpm")
    # 60 s after the first request, exactly one place is free again.
    assert store.admit(alice, T + 60).ok
    assert not store.admit(alice, T + 60.05).ok
    assert store.admit(alice, T + 60.15).ok
    assert store.admit(alice, T + 60.25).ok
    assert store.admit(alice, T + 60.3) == Admission(False, 60, "rpm")


def test_refused_requests_do_not_count(store):
    alice = store.lookup(store.create_key("alice", rpm=2))
    results = [store.admit(alice, T + i).ok for i in range(30)]
    assert results == [True, True] + [False] * 28
    assert [store.admit(alice, T + 61 + i).ok for i in range(3)] == [True, True, False]


def test_the_days_budget_is_refused_once_reached_and_renewed_next_utc_day(store):
    alice = store.lookup(store.create_key("alice", tokens_per_day=100))
    assert store.admit(alice, T).ok
    store.record_usage("alice", "model-a", 60, 30, DAY)
    assert store.admit(alice, T).ok  # 90 of 100: one more request may still go
    store.record_usage("alice", "model-b", 5, 5, DAY)
    assert store.admit(alice, T) == Admission(False, 1, "tokens_per_day")  # midnight is 0.5 s away
    assert store.admit(alice, T - 3600.5) == Admission(False, 3601, "tokens_per_day")
    assert store.admit(alice, T + 1).ok  # 2026-01-01: a new budget


def test_a_budget_holds_each_admitted_requests_worst_case_until_its_usage_settles(store):
    alice = store.lookup(store.create_key("alice", tokens_per_day=60))
    first = store.admit(alice, T, reserve=500)  # holds all 60: what is left, not its 500
    assert first.ok and first.reservation
    assert store.admit(alice, T + 0.1, reserve=1) == Admission(False, 1, "tokens_per_day")
    store.record_usage("alice", "m", 20, 10, DAY, reservation=first.reservation)  # settled: 30 of 60 used
    second = store.admit(alice, T + 0.2, reserve=500)
    assert second.ok
    assert not store.admit(alice, T + 0.3).ok
    store.record_usage("alice", "m", 20, 10, DAY, reservation=second.reservation)
    assert store.admit(alice, T + 0.4).limit == "tokens_per_day"
    assert store.usage()[0]["input_tokens"] + store.usage()[0]["output_tokens"] == 60


def test_a_reservation_settled_twice_or_a_batch_written_twice_counts_once(store):
    alice = store.lookup(store.create_key("alice", tokens_per_day=100))
    held = store.admit(alice, T, reserve=40)
    served = [("alice", "m", 10, 5, DAY, 10, 5, held.reservation)]
    store.record_usages(served, batch="batch-1")
    store.record_usages(served, batch="batch-1")  # a retry of a write whose reply was lost
    (person,) = store.usage()
    assert (person["requests"], person["input_tokens"], person["output_tokens"]) == (1, 10, 5)


def test_usage_says_which_tokens_are_estimates(store):
    store.record_usage("alice", "claude", 1000, 30, DAY, estimated=(1000, 30))  # a stream cut short
    store.record_usage("alice", "claude", 10, 20, DAY)  # one Bedrock counted
    (person,) = store.usage()
    figures = ("input_tokens", "output_tokens", "estimated_input_tokens", "estimated_output_tokens")
    assert [person[figure] for figure in figures] == [1010, 50, 1000, 30]
    assert [person["days"][0]["models"][0][figure] for figure in figures] == [1010, 50, 1000, 30]


@pytest.mark.parametrize("name", ["default", "DEFAULT", "Default"])
def test_the_shared_keys_name_is_reserved_whatever_its_case(store, name):
    with pytest.raises(InvalidRequest, match="shared key"):
        store.create_key(name)


def test_images_per_day_counts_image_generations_only(store):
    alice = store.lookup(store.create_key("alice", images_per_day=2))
    assert alice.images_per_day == 2
    assert [store.admit(alice, T, image=True).ok for _ in range(2)] == [True, True]
    assert store.admit(alice, T, image=True) == Admission(False, 1, "images_per_day")
    assert store.admit(alice, T).ok  # a chat is no image
    assert store.admit(alice, T + 1, image=True).ok  # a new UTC day
    store.set_limits("alice", None, None, 5)
    assert store.list_keys()[0].images_per_day == 5


def test_both_limits_together(store):
    alice = store.lookup(store.create_key("alice", rpm=1, tokens_per_day=10))
    assert store.admit(alice, T).ok
    assert store.admit(alice, T + 0.2).limit == "rpm"
    store.record_usage("alice", "m", 10, 0, DAY)
    assert store.admit(alice, T + 0.3).limit == "tokens_per_day"


def test_a_key_without_limits_is_admitted_without_touching_the_store():
    dead = open_store("redis://127.0.0.1:9/0", timeout=0.2)
    assert dead.admit(Identity("legacy")) == Admission(True)


def test_usage_per_key_day_and_model(store):
    store.create_key("alice")
    store.create_key("bob")
    store.record_usage("alice", "claude", 10, 100, "2026-01-01")
    store.record_usage("alice", "claude", 20, 200, "2026-01-01")
    store.record_usage("alice", "nova", 1, 2, "2026-01-01")
    store.record_usage("alice", "claude", 5, 50, "2026-01-02")
    store.record_usage("alice", None, 0, 0, "2026-01-02")  # a route that calls no model
    store.record_usage("default", "claude", 7, 8, "2026-01-02")  # a name with no key of its own
    alice = {
        "name": "alice",
        "requests": 5,
        "input_tokens": 36,
        "output_tokens": 352,
        "estimated_input_tokens": 0,
        "estimated_output_tokens": 0,
        "days": [
            {
                "day": "2026-01-01",
                "requests": 3,
                "input_tokens": 31,
                "output_tokens": 302,
                "estimated_input_tokens": 0,
                "estimated_output_tokens": 0,
                "models": [
                    {
                        "model": "claude",
                        "requests": 2,
                        "input_tokens": 30,
                        "output_tokens": 300,
                        "estimated_input_tokens": 0,
                        "estimated_output_tokens": 0,
                    },
                    {
                        "model": "nova",
                        "requests": 1,
                        "input_tokens": 1,
                        "output_tokens": 2,
                        "estimated_input_tokens": 0,
                        "estimated_output_tokens": 0,
                    },
                ],
            },
            {
                "day": "2026-01-02",
                "requests": 2,
                "input_tokens": 5,
                "output_tokens": 50,
                "estimated_input_tokens": 0,
                "estimated_output_tokens": 0,
                "models": [
                    {
                        "model": None,
                        "requests": 1,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "estimated_input_tokens": 0,
                        "estimated_output_tokens": 0,
                    },
                    {
                        "model": "claude",
                        "requests": 1,
                        "input_tokens": 5,
                        "output_tokens": 50,
                        "estimated_input_tokens": 0,
                        "estimated_output_tokens": 0,
                    },
                ],
            },
        ],
    }
    bob = {
        "name": "bob",
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "estimated_input_tokens": 0,
        "estimated_output_tokens": 0,
        "days": [],
    }
    default = {
        "name": "default",
        "requests": 1,
        "input_tokens": 7,
        "output_tokens": 8,
        "estimated_input_tokens": 0,
        "estimated_output_tokens": 0,
        "days": [
            {
                "day": "2026-01-02",
                "requests": 1,
                "input_tokens": 7,
                "output_tokens": 8,
                "estimated_input_tokens": 0,
                "estimated_output_tokens": 0,
                "models": [
                    {
                        "model": "claude",
                        "requests": 1,
                        "input_tokens": 7,
                        "output_tokens": 8,
                        "estimated_input_tokens": 0,
                        "estimated_output_tokens": 0,
                    }
                ],
            }
        ],
    }
    assert store.usage() == [alice, bob, default]
    with pytest.raises(InvalidRequest):
        store.record_usage("no spaces please", "claude", 1, 1, "2026-01-02")
    assert [day["day"] for day in store.usage(since="2026-01-02")[0]["days"]] == ["2026-01-02"]


def test_requests_written_together_add_up_per_name_day_and_model(store):
    store.record_usages(
        [
            ("alice", "claude", 10, 100, "2026-01-01"),
            ("alice", "claude", 20, 200, "2026-01-01"),
            ("alice", "nova", 1, 2, "2026-01-01"),
            ("default", "claude", 7, 8, "2026-01-02"),
        ]
    )
    store.record_usages([("alice", "claude", 1, 1, "2026-01-01")])
    alice, default = store.usage()
    assert alice["days"] == [
        {
            "day": "2026-01-01",
            "requests": 4,
            "input_tokens": 32,
            "output_tokens": 303,
            "estimated_input_tokens": 0,
            "estimated_output_tokens": 0,
            "models": [
                {
                    "model": "claude",
                    "requests": 3,
                    "input_tokens": 31,
                    "output_tokens": 301,
                    "estimated_input_tokens": 0,
                    "estimated_output_tokens": 0,
                },
                {
                    "model": "nova",
                    "requests": 1,
                    "input_tokens": 1,
                    "output_tokens": 2,
                    "estimated_input_tokens": 0,
                    "estimated_output_tokens": 0,
                },
            ],
        }
    ]
    assert (default["name"], default["requests"], default["input_tokens"]) == ("default", 1, 7)


def test_requests_written_together_with_a_bad_name_are_refused_whole(store):
    with pytest.raises(InvalidRequest):
        store.record_usages([("alice", "claude", 1, 1, DAY), ("no spaces please", "claude", 1, 1, DAY)])
    assert store.usage() == []


def _requests_of(store, name, at_least, seconds=5):
    deadline = time.monotonic() + seconds
    while True:
        found = next((person["requests"] for person in store.usage() if person["name"] == name), 0)
        if found >= at_least or time.monotonic() > deadline:
            return found
        gevent.sleep(0.02)  # the recorder's writer runs meanwhile


def test_the_recorder_writes_what_gathered_and_what_is_left_at_exit(store):
    lost = []
    recorder = UsageRecorder(store, failed=lambda error, count: lost.append((error, count)))
    for _ in range(3):
        recorder.add("alice", "claude", 10, 20)
    assert _requests_of(store, "alice", 3) == 3
    recorder.add("alice", "claude", 1, 2)
    gevent.sleep(0.05)
    assert recorder.pending() == 1  # still gathering, and still queued
    recorder.flush()  # a worker's exit
    assert recorder.pending() == 0
    assert _requests_of(store, "alice", 4, seconds=0) == 4
    (alice,) = store.usage()
    assert (alice["input_tokens"], alice["output_tokens"], lost) == (31, 62, [])


def test_the_recorder_keeps_usage_the_store_refuses_and_writes_it_once_the_store_is_back(tmp_path):
    folder = tmp_path / "not-yet"
    store = open_store(f"sqlite:///{folder / 'keys.db'}", timeout=1)
    failures = []
    recorder = UsageRecorder(store, failed=lambda error, count: failures.append((type(error), count)))
    try:
        recorder.add("alice", "claude", 1, 1)
        recorder.add("bob", "claude", 1, 1)
        deadline = time.monotonic() + 5
        while not failures and time.monotonic() < deadline:
            gevent.sleep(0.02)
        assert failures[0] == (StoreUnavailable, 0)  # reported, and nothing lost: kept to be written
        assert recorder.pending() == 2
        folder.mkdir()
        recorder.add("alice", "claude", 2, 2)
        assert _requests_of(store, "alice", 2) == 2
        assert _requests_of(store, "bob", 1) == 1
        assert {person["name"]: person["input_tokens"] for person in store.usage()} == {"alice": 3, "bob": 1}
        assert recorder.pending() == 0
        assert all(lost == 0 for _, lost in failures)
    finally:
        store.close()


def test_the_recorder_drops_and_counts_only_what_does_not_fit_while_the_store_is_down(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'missing' / 'keys.db'}", timeout=0.1)
    failures = []
    recorder = UsageRecorder(store, failed=lambda error, count: failures.append(count), keep=3)
    for _ in range(5):
        recorder.add("alice", "claude", 1, 1)
    deadline = time.monotonic() + 5
    while sum(failures) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.02)
    assert sum(failures) == 2 and recorder.pending() == 3


def test_usage_still_unwritten_when_a_worker_exits_is_left_beside_sqlite_and_written_by_the_next(tmp_path):
    path = tmp_path / "keys.db"
    store = open_store(f"sqlite:///{path}", timeout=0.1)
    store.record_usage("warm", "claude", 1, 1)  # the file and its schema exist
    failures = []
    exiting = UsageRecorder(store, failed=lambda error, count: failures.append(count), spill=str(path))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the worker's exit
    try:
        for _ in range(3):
            exiting.add("alice", "claude", 10, 20)
        exiting.flush(seconds=0.5)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sum(failures) == 0  # nothing lost: left on disk
    assert len(list(tmp_path.glob("keys.db.usage-*.json"))) == 1

    successor = UsageRecorder(store, failed=lambda error, count: failures.append(count), spill=str(path))
    successor.add("bob", "claude", 1, 1)
    assert _requests_of(store, "alice", 3) == 3
    assert {p["name"]: p["input_tokens"] for p in store.usage()}["alice"] == 30
    assert list(tmp_path.glob("keys.db.usage-*")) == []
    successor.flush()
    store.close()


_EXIT_PROBE = """
from gevent import monkey

monkey.patch_all()
import json, sqlite3, sys, time
import gevent
from swiftchat_api.store import open_store
from swiftchat_api.store.recorder import GATHER_SECONDS, UsageRecorder

path, hold_for, flush_for, burst = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
store = open_store(f"sqlite:///{path}", timeout=5)
store.record_usage("warm", "claude", 1, 1)  # the file and its schema exist
lost = []
recorder = UsageRecorder(store, failed=lambda error, count: lost.append(count))
holder = sqlite3.connect(path, isolation_level=None)
holder.execute("BEGIN IMMEDIATE")  # another worker holds the write lock
recorder.add("alice", "claude", 1, 1)
if burst:  # more than a batch arrives while the writer gathers: the exit's flush writes it all
    gevent.sleep(0.05)
    for _ in range(burst - 1):
        recorder.add("alice", "claude", 1, 1)
else:
    gevent.sleep(GATHER_SECONDS + 0.2)  # the writer has taken the record and waits for the lock
pending = recorder.pending()
gevent.spawn_later(hold_for, holder.execute, "ROLLBACK")
recorder.flush(flush_for)  # the worker exits now
written = [p["requests"] for p in store.usage() if p["name"] == "alice"]
print(json.dumps({"pending": pending, "written": written, "lost": lost}))
"""


@pytest.mark.parametrize(
    ("hold_for", "flush_for", "burst", "pending", "written", "lost"),
    [
        (0.3, 2, 0, 0, [1], []),  # the write under way is waited for
        (3, 0.3, 0, 0, [], [1]),  # ... or reported, once the exit's time is up
        (0.4, 5, 2500, 2500, [2500], []),  # more than a batch waiting: all of it written
        (3, 1, 2500, 2500, [1000], [1500]),  # the exit writes alone: what it could not reach is reported
    ],
)
def test_what_the_writer_holds_at_exit_is_written_or_reported(
    tmp_path, hold_for, flush_for, burst, pending, written, lost
):
    """In a gevent-patched process, as in a worker, with SQLite's write lock held by another."""
    arguments = [str(tmp_path / "keys.db"), str(hold_for), str(flush_for), str(burst)]
    result = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE, *arguments], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"pending": pending, "written": written, "lost": lost}


class _CutFirstAnswer:
    """A TCP relay in front of redis-server that closes the client's connection instead of passing on
    the answer to the first batch of usage, as a network failure after Redis ran the call would."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.cut = 0
        self._armed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):  # the listener was closed
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _requests(self, client, upstream):
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if b"usage-batch" in data and not self.cut:
                    self._armed = True  # the client waits for this answer before it sends more
                upstream.sendall(data)
        _hang_up(upstream)

    def _answers(self, upstream, client):
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if self._armed:
                    self._armed = False
                    if not data.startswith(b"-NOSCRIPT"):  # (not run: redis-py loads the script and sends it again)
                        self.cut += 1
                        break  # Redis ran it; the client never hears
                client.sendall(data)
        _hang_up(client)  # at once, though the other thread still reads it

    def close(self):
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        self._listener.close()


def _hang_up(sock):
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_a_batch_resent_after_a_broken_connection_is_counted_once(redis_server):
    redis.Redis.from_url(redis_server.url).flushdb()
    relay = _CutFirstAnswer(redis_server.port)
    store = open_store(relay.url, timeout=2)
    try:
        store.record_usages([("alice", "claude", 10, 20, DAY), ("alice", "claude", 1, 2, DAY)])
        assert relay.cut == 1  # redis-py sent it again on a new connection
        (alice,) = store.usage()
        assert (alice["requests"], alice["input_tokens"], alice["output_tokens"]) == (2, 11, 22)
    finally:
        store.close()
        relay.close()


def test_new_limits_reach_another_worker_within_a_second(store, store_url):
    key = store.create_key("alice", rpm=5)
    other_worker = open_store(store_url)
    assert other_worker.lookup(key).rpm == 5
    store.set_limits("alice", None, 1000)
    time.sleep(1.05)
    assert other_worker.lookup(key) == Identity("alice", None, 1000)
    with pytest.raises(NoSuchKey):
        store.set_limits("nobody", 1, 1)
    other_worker.close()


def test_keys_made_with_another_pepper_are_not_accepted(store_url):
    first = open_store(store_url, pepper="first pepper")
    key = first.create_key("alice")
    second = open_store(store_url, pepper="second pepper")
    assert second.lookup(key) is None
    with pytest.raises(PepperMismatch):
        second.check()
    with pytest.raises(PepperMismatch):
        second.create_key("bob")
    first.check()
    first.close()
    second.close()


def _burst(url, identity, attempts, start, results):
    store = open_store(url, timeout=10)
    start.wait()
    results.put(sum(store.admit(identity, T).ok for _ in range(attempts)))


def test_exactly_rpm_requests_of_a_burst_pass_across_processes(store, store_url):
    """Six processes (workers, or instances sharing Redis) send 200 requests each at once."""
    alice = store.lookup(store.create_key("alice", rpm=500))
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(6), context.Queue()
    workers = [context.Process(target=_burst, args=(store_url, alice, 200, start, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    admitted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert sum(admitted) == 500
    assert not store.admit(alice, T + 59).ok


_HUB_PROBE = """
from gevent import monkey

monkey.patch_all()
import json, sys, time
import gevent
from swiftchat_api.store import Identity, StoreUnavailable, open_store

store = open_store(sys.argv[1], timeout=0.3)
gaps = []

def tick():
    last = time.perf_counter()
    while True:
        gevent.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now

identity = Identity("alice", rpm=10)
store.admit(identity)  # connected and warm before the test takes the lock
print("ready", flush=True)
sys.stdin.readline()
ticker = gevent.spawn(tick)
started = time.perf_counter()
try:
    store.admit(identity)
    first = "admitted"
except StoreUnavailable as error:
    first = str(error)
first_seconds = time.perf_counter() - started
while True:
    try:
        store.admit(identity)
        break
    except StoreUnavailable:
        if time.perf_counter() - started > 10:
            raise
ticker.kill()
print(json.dumps({"first": first, "first_seconds": first_seconds,
                  "recovered_after": time.perf_counter() - started, "longest_gap": max(gaps)}))
"""


def test_sqlite_lock_held_elsewhere_never_freezes_a_gevent_worker(tmp_path):
    """Another process holds the write lock for 1 s: the worker's other greenlets keep running, its
    request gets StoreUnavailable after the store's time-out, and the next one works once freed."""
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    command = [sys.executable, "-c", _HUB_PROBE, url]
    with subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as probe:
        assert probe.stdout.readline().strip() == "ready"
        holder = sqlite3.connect(tmp_path / "keys.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        probe.stdin.write("go\n")
        probe.stdin.flush()
        time.sleep(1.0)
        holder.execute("ROLLBACK")
        holder.close()
        report = json.loads(probe.stdout.readline())
    print(report)
    assert report["first"] == "The key store stayed busy for 0.3 s."
    assert 0.25 < report["first_seconds"] < 0.9
    assert 0.9 < report["recovered_after"] < 5
    # A busy time-out inside SQLite would have frozen every greenlet for the whole second.
    assert report["longest_gap"] < 0.2


def test_sqlite_file_that_cannot_be_opened_is_unavailable_then_recovers(tmp_path):
    path = tmp_path / "keys.db"
    path.mkdir()  # something that is not a database where the file belongs
    store = open_store(f"sqlite:///{path}", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot be used"):
        store.create_key("alice")
    with pytest.raises(StoreUnavailable):
        store.lookup("sk-swiftchat-" + "A" * 43)
    with pytest.raises(StoreUnavailable):
        store.check()
    assert time.monotonic() - started < 2  # immediate, not a time-out
    path.rmdir()
    key = store.create_key("alice")  # the same store object: no restart needed
    assert store.lookup(key) == Identity("alice")


def test_sqlite_store_with_no_file_yet_has_no_keys_and_creates_nothing(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    assert store.lookup("sk-swiftchat-" + "A" * 43) is None
    assert store.list_keys() == []
    assert store.usage() == []
    store.check()
    assert list(tmp_path.iterdir()) == []


def test_redis_down_is_unavailable_quickly_and_recovers_without_restart(tmp_path):
    require_redis_server()
    server = RedisServer(tmp_path).start()
    try:
        store = open_store(server.url, timeout=0.5)
        key = store.create_key("alice", rpm=5)
        alice = store.lookup(key)
        server.stop()
        for call in (lambda: store.admit(alice), lambda: store.create_key("bob"), store.check):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="ConnectionError"):
                call()
            assert time.monotonic() - started < 2  # refused at once, not after a wait
        server.start()  # same port, empty (no persistence in this test), scripts not loaded
        assert store.admit(alice).ok
        assert store.lookup(store.create_key("bob")) == Identity("bob")
        store.close()
    finally:
        server.stop()


def test_redis_that_accepts_but_never_answers_is_unavailable_within_the_time_out():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody replies
        store = open_store(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            store.lookup("sk-swiftchat-" + "A" * 43)
        assert time.monotonic() - started < 3  # the 0.3 s time-out, not a hang
        store.close()


def test_store_urls_are_checked():
    with pytest.raises(InvalidRequest):
        open_store("postgres://x/y")
    with pytest.raises(InvalidRequest):
        open_store("sqlite:///")
    store = open_store("redis://:secret@127.0.0.1:9/0")
    assert "secret" not in store.describe()
