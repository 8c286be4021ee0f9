"""A worker where containers and hosts put it: a soft open-files limit of 1,024, fewer CPUs than the machine's."""

import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial

import pytest
from conftest import ROOT, TEST_KEY, Server, chat, emulator_env, metric_value

from swiftchat_api import hostlimits
from swiftchat_api.emulator import launch

STREAMS = 2000
# Each answer is larger than what the client's small receive window and one event hold, so every
# stream stays open in the worker (its client socket and its Bedrock connection) until it is read.
REPLY = "[[emulator words=1500 chunk=100]]"
CLIENT_WINDOW = 2048  # bytes: the receive buffer each test client asks for before it connects


def _hard_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


@contextmanager
def _open_files_limit(monkeypatch, soft, hard):
    """Start processes (the conftest Server) with this open-files limit, as a container runtime would."""

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", partial(subprocess.Popen, preexec_fn=limit))
        yield


def _limits_of(pid):
    with open(f"/proc/{pid}/limits") as file:
        text = file.read()
    soft, hard = re.search(r"Max open files\s+(\S+)\s+(\S+)", text).groups()
    return int(soft), int(hard)


def _open_stream(port, body):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_WINDOW)  # before connect: the window it offers
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    sock.sendall(
        f"POST /api/converse/v3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def _read_to_end(sock):
    answer = bytearray()
    while not answer.endswith(b"\r\n0\r\n\r\n") and (chunk := sock.recv(65536)):
        answer += chunk
    sock.close()
    return bytes(answer)


def _wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds} s")


@pytest.fixture
def own_emulator():
    """An emulator of this test's own, started with this process's full open-files limit (2,000 streams)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    process, url = launch.start()
    yield url
    process.terminate()
    process.wait(10)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_worker_started_with_1024_open_files_holds_2000_streams_at_once(own_emulator, monkeypatch):
    hard = min(65536, _hard_limit())
    if hard < hostlimits.files_needed(STREAMS) + 64:
        pytest.skip(f"this machine's hard open-files limit ({hard}) cannot hold {STREAMS} streams")
    env = {**emulator_env(own_emulator), "API_KEY": TEST_KEY, "SWIFTCHAT_STREAM_BUFFER_KB": "4"}
    with _open_files_limit(monkeypatch, 1024, hard):
        server = Server(env)
    try:
        assert _limits_of(server.process.pid) == (1024, hard)  # gunicorn's master as the runtime started it
        sockets = [_open_stream(server.port, chat(REPLY)) for _ in range(STREAMS)]

        def all_open():
            try:
                status, _, body = server.request("/metrics", method="GET")
            except OSError:  # a worker out of open files takes no new connection
                return False
            return status == 200 and metric_value(body.decode(), "swiftchat_open_streams") == STREAMS

        _wait_for(all_open, 90, f"{STREAMS} streams open in the worker at once")
        answers = [_read_to_end(sock) for sock in sockets]
        failed = [answer[:200] for answer in answers if not answer.startswith(b"HTTP/1.1 200 ")]
        assert not failed, f"{len(failed)} of {STREAMS} streams failed, e.g. {failed[0]!r}"
        for answer in answers:
            assert answer.count(b"contentBlockDelta") == 15 and b'"outputTokens": 1500' in answer
        assert "Too many open files" not in server.output()
        assert "Open-files limit raised from 1024 to" in server.output()
    finally:
        server.stop()


def test_a_hard_limit_too_low_for_worker_connections_is_named_in_the_log_with_the_fix(emulator, monkeypatch):
    env = {**emulator_env(emulator), "API_KEY": TEST_KEY, "WORKER_CONNECTIONS": "4096"}
    with _open_files_limit(monkeypatch, 256, 512):
        server = Server(env)
    try:
        warning = _wait_for(
            lambda: next((line for line in server.output().splitlines() if "open-files limit" in line), None),
            30,
            "the open-files warning",
        )
        line = json.loads(warning)
        assert line["level"] == "warning"
        message = line["message"]
        assert "hard limit 512" in message and "WORKER_CONNECTIONS=4096" in message
        assert "--ulimit nofile=65536:65536" in message and "LimitNOFILE=65536" in message
        assert "WORKER_CONNECTIONS=224" in message  # what the limit does hold: (512 - 64) / 2
        status, _, body = server.request("/api/converse/v3", chat("Hi"))
        assert status == 200 and b"messageStop" in body  # it serves all the same
    finally:
        server.stop()


_ANY_APP = "wsgiref.simple_server:demo_app"  # --print-config loads an app after printing


def _configured_workers(preexec=None, **env):
    """The worker count gunicorn reads from gunicorn.conf.py, as `gunicorn --print-config` shows it."""
    environment = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--print-config", _ANY_APP],
        cwd=ROOT,
        env={**environment, "API_KEY": TEST_KEY, **env},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
    )
    assert result.returncode == 0, result.stderr
    return int(re.search(r"^workers\s*=\s*(\d+)", result.stdout, re.MULTILINE).group(1))


def test_the_default_worker_count_follows_the_cpus_the_process_may_run_on():
    mine = len(os.sched_getaffinity(0))
    quota = hostlimits.cpu_quota()
    expected = mine if quota is None else min(mine, -(-quota // 1))
    assert _configured_workers() == expected
    assert _configured_workers(lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) == 1
    assert _configured_workers(WEB_CONCURRENCY="3") == 3


def _tree(root, files):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


_V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
_V1_MOUNT = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        # A container with its own cgroup namespace: --cpus 1.5
        (
            {
                "proc/self/mountinfo": _V2_MOUNT,
                "proc/self/cgroup": "0::/\n",
                "sys/fs/cgroup/cpu.max": "150000 100000\n",
            },
            1.5,
        ),
        (
            {"proc/self/mountinfo": _V2_MOUNT, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"},
            None,
        ),
        # A systemd unit with CPUQuota=50% under a slice allowed 3 CPUs: the smaller counts
        (
            {
                "proc/self/mountinfo": _V2_MOUNT,
                "proc/self/cgroup": "0::/system.slice/swiftchat-api.service\n",
                "sys/fs/cgroup/system.slice/cpu.max": "300000 100000\n",
                "sys/fs/cgroup/system.slice/swiftchat-api.service/cpu.max": "50000 100000\n",
            },
            0.5,
        ),
        # cgroup v1 (hybrid hosts, older Docker): a container without a cgroup namespace
        (
            {
                "proc/self/mountinfo": _V1_MOUNT.replace(" / /sys", " /docker/abc /sys"),
                "proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n0::/\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            2.0,
        ),
        (
            {
                "proc/self/mountinfo": _V1_MOUNT,
                "proc/self/cgroup": "4:cpu,cpuacct:/\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            None,
        ),
        ({}, None),  # not Linux, or no /proc
    ],
)
def test_the_cpu_quota_is_read_from_cgroup_v2_and_v1(tmp_path, files, quota):
    root = _tree(tmp_path, files)
    assert hostlimits.cpu_quota(root) == quota
    if quota is not None:
        assert hostlimits.usable_cpus(root) == min(len(os.sched_getaffinity(0)), max(1, -(-quota // 1)))
