"""A burst of new upstream connections shares its name lookups, and nothing else changes.

The worker puts SharedLookups in front of gevent's resolver; the last test sees that through a
real gunicorn worker. The others stand it in front of a fake resolver, the DNS boundary, which
answers slowly and counts what it was asked.
"""

import os
import socket

import gevent
import pytest
from conftest import TEST_KEY, Server, emulator_env

from swiftchat_api.resolver import JOIN_WITHIN, SharedLookups

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"

ANSWER = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.10", 443))]


class SlowDns:
    """Answers every lookup after ``seconds``; a name in ``failing`` fails."""

    def __init__(self, seconds=0.05, failing=()):
        self.seconds = seconds
        self.failing = failing
        self.asked = []

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        self.asked.append((host, port, family, type))
        gevent.sleep(self.seconds)
        if host in self.failing:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(*entry[:4], (entry[4][0], port)) for entry in ANSWER]

    def gethostbyname(self, host):
        return "192.0.2.10"


@pytest.fixture(autouse=True)
def _loop_clock_now():
    """gevent's loop reads the clock only when it runs. After a pause in this process's use of
    gevent (another test file's run), its time-outs and sleeps would start from a stale time and
    end at once."""
    gevent.get_hub().loop.update_now()


def _burst(resolver, calls):
    greenlets = [gevent.spawn(resolver.getaddrinfo, *call) for call in calls]
    gevent.joinall(greenlets, timeout=5)
    return greenlets


def test_a_burst_of_the_same_name_is_looked_up_once():
    dns = SlowDns()
    greenlets = _burst(SharedLookups(dns), [("bedrock.example", 443, 0, socket.SOCK_STREAM)] * 200)
    assert len(dns.asked) == 1
    assert all(g.successful() and g.value[0][4] == ("192.0.2.10", 443) for g in greenlets)


def test_different_names_ports_or_families_are_separate_lookups():
    dns = SlowDns()
    calls = [
        ("a.example", 443, 0, socket.SOCK_STREAM),
        ("b.example", 443, 0, socket.SOCK_STREAM),
        ("a.example", 8443, 0, socket.SOCK_STREAM),
        ("a.example", 443, socket.AF_INET, socket.SOCK_STREAM),
    ]
    greenlets = _burst(SharedLookups(dns), calls * 5)
    assert sorted(dns.asked) == sorted(calls)
    assert [g.value[0][4][1] for g in greenlets] == [call[1] for call in calls * 5]


def test_nothing_is_kept_once_answered():
    dns = SlowDns(seconds=0)
    resolver = SharedLookups(dns)
    for _ in range(3):
        resolver.getaddrinfo("bedrock.example", 443)
    assert len(dns.asked) == 3  # a name that moves is seen moving


def test_a_failed_lookup_fails_every_caller_with_its_error_and_is_tried_again():
    dns = SlowDns(failing={"gone.example"})
    resolver = SharedLookups(dns)
    greenlets = _burst(resolver, [("gone.example", 443)] * 20)
    assert len(dns.asked) == 1
    errors = [g.exception for g in greenlets]
    assert all(
        isinstance(e, socket.gaierror) and e.args == (socket.EAI_NONAME, "Name or service not known") for e in errors
    )
    assert len({id(e) for e in errors}) == len(errors)  # each caller its own exception
    with pytest.raises(socket.gaierror):
        resolver.getaddrinfo("gone.example", 443)
    assert len(dns.asked) == 2


def test_one_caller_giving_up_leaves_the_others_their_answer():
    dns = SlowDns(seconds=0.2)
    resolver = SharedLookups(dns)
    impatient = gevent.spawn(lambda: gevent.with_timeout(0.05, resolver.getaddrinfo, "bedrock.example", 443))
    patient = gevent.spawn(resolver.getaddrinfo, "bedrock.example", 443)
    gevent.joinall([impatient, patient], timeout=5)
    assert isinstance(impatient.exception, gevent.Timeout)
    assert patient.successful() and patient.value[0][4] == ("192.0.2.10", 443)
    assert len(dns.asked) == 1


def test_everything_else_is_the_resolver_s_own():
    assert SharedLookups(SlowDns()).gethostbyname("bedrock.example") == "192.0.2.10"


class StuckFirst(SlowDns):
    """The first lookup never returns (a resolver that hangs); later ones answer at once."""

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        first = not self.asked
        self.asked.append((host, port, family, type))
        if first:
            gevent.sleep(3600)
        return ANSWER


def test_a_stuck_lookup_holds_up_only_those_already_waiting_for_it():
    dns = StuckFirst()
    resolver = SharedLookups(dns)
    stuck = gevent.spawn(resolver.getaddrinfo, "bedrock.example", 443)
    gevent.sleep(JOIN_WITHIN + 0.1)
    assert gevent.with_timeout(2, resolver.getaddrinfo, "bedrock.example", 443) == ANSWER
    assert len(dns.asked) == 2 and not stuck.ready()
    stuck.kill()


class Interrupted(SlowDns):
    """The first lookup ends with a BaseException (as a killed greenlet would); later ones answer."""

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        self.asked.append((host, port, family, type))
        gevent.sleep(self.seconds)
        if len(self.asked) == 1:
            raise gevent.GreenletExit
        return ANSWER


def test_an_interrupted_lookup_fails_its_callers_and_the_next_call_looks_up_again():
    dns = Interrupted()
    resolver = SharedLookups(dns)
    greenlets = _burst(resolver, [("bedrock.example", 443)] * 5)
    assert all(isinstance(g.exception, OSError) for g in greenlets)
    assert resolver.getaddrinfo("bedrock.example", 443) == ANSWER
    assert len(dns.asked) == 2


def _threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_burst_of_new_streams_through_the_worker_keeps_one_resolver_thread_busy(emulator):
    live = Server({**emulator_env(emulator), "API_KEY": TEST_KEY})
    try:
        with open(f"/proc/{live.process.pid}/task/{live.process.pid}/children") as children:
            worker = int(children.read().split()[0])
        before = _threads(worker)
        body = {"modelId": MODEL, "region": "us-west-2", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
        answers = live.streams_at_once("/api/converse/v2", body, 40)  # each a new upstream connection
        assert all(b"messageStop" in answer for answer in answers)
        # gevent's resolver pool grows a thread per lookup queued at once, up to ten.
        assert _threads(worker) - before <= 2
    finally:
        live.stop()
