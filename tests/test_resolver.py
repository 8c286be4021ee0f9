"""A burst of new upstream connections shares its name lookups, and nothing else changes.

The worker puts SharedLookups in front of gevent's resolver (every end-to-end test goes
through it: each upstream connection is resolved). Here it stands in front of a fake resolver,
the DNS boundary, which answers slowly and counts what it was asked.
"""

import socket

import gevent
import pytest

from swiftchat_api.resolver import SharedLookups

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
