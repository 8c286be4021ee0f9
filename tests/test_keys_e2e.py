"""Per-person keys end to end: real gunicorn with two workers on SQLite, and two gunicorn instances
sharing a real redis-server; keys made with the CLI as an operator makes them."""

import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from conftest import (
    TEST_KEY,
    Server,
    access_lines,
    chat,
    emulator_calls,
    emulator_env,
    flask_keys,
    free_port,
    metric_value,
)
from redis_fixture import RedisServer, require_redis_server

from swiftchat_api import create_app
from swiftchat_api.config import Config
from swiftchat_api.store import open_store

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
STREAM = chat("[[emulator words=5 delay_ms=40]]")  # long enough for a burst's streams to overlap
SHORT = chat('[[emulator reply="ok"]]')
CATALOGUE = {"region": "us-west-2"}
KEY_SHAPE = re.compile(r"sk-swiftchat-[A-Za-z0-9_-]{43}")
STORE_DOWN = {"detail": "The key store cannot be reached just now; please try again in a moment."}
METRICS_TOKEN = "scrape-0123456789"


class Deployment:
    """gunicorn servers sharing one key store, and the operator's CLI with the same environment."""

    def __init__(self, env, servers):
        self.env = env
        self.servers = servers

    def keys(self, *args):
        """Run ``flask --app wsgi keys ARGS`` as the operator would, with the servers' settings."""
        return flask_keys({**os.environ, **self.env}, *args)

    def create(self, name, *options):
        made = self.keys("create", name, *options)
        assert made.returncode == 0, made.stderr
        assert KEY_SHAPE.fullmatch(made.stdout.strip())
        return made.stdout.strip()

    def usage(self):
        """``keys usage --json``, by name."""
        shown = self.keys("usage", "--json")
        assert shown.returncode == 0, shown.stderr
        return {person["name"]: person for person in json.loads(shown.stdout)}

    def wait_for_requests(self, name, requests, seconds=5):
        """Wait until the store holds ``requests`` served requests for name (usage is written just after)."""
        store = open_store(self.env["SWIFTCHAT_STORE"])
        try:
            deadline = time.monotonic() + seconds
            while True:
                found = next((person["requests"] for person in store.usage() if person["name"] == name), 0)
                if found >= requests or time.monotonic() > deadline:
                    assert found == requests, f"{name}: {found} requests recorded, expected {requests}"
                    return
                time.sleep(0.05)
        finally:
            store.close()

    def stop(self):
        for server in self.servers:
            server.stop()


def burst(servers, path, body, key, count):
    """``count`` requests sent at the same instant, spread over ``servers`` in turn."""
    start = threading.Barrier(count)

    def one(n):
        start.wait()
        return servers[n % len(servers)].request(path, body, key=key)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def tokens_of(body):
    """(input, output) tokens from a /api/converse/v3 answer's metadata event."""
    for part in body.split(b"\n\n"):
        if part.startswith(b'{"metadata"'):
            usage = json.loads(part)["metadata"]["usage"]
            return usage["inputTokens"], usage["outputTokens"]
    raise AssertionError(f"no usage in {body[-200:]!r}")


def metric(server, name, **labels):
    """The value of a /metrics series (summed over workers), read with METRICS_TOKEN."""
    status, _, body = server.request("/metrics", method="GET", key=METRICS_TOKEN)
    assert status == 200
    return metric_value(body.decode(), name, **labels)


def wait_for_metric(server, value, name, **labels):
    deadline = time.monotonic() + 5
    while (found := metric(server, name, **labels)) != value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found == value, f"{name}{labels} is {found}, expected {value}"


def assert_rpm_refusal_as_text(answer, rpm):
    status, headers, body = answer
    assert status == 429
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert body.decode() == f"Error: This key allows {rpm} requests a minute; try again in {headers['retry-after']} s."


def assert_rpm_refusal_as_json(answer, rpm):
    status, headers, body = answer
    assert status == 429
    assert headers["content-type"] == "application/json"
    assert 1 <= int(headers["retry-after"]) <= 60
    detail = f"This key allows {rpm} requests a minute; try again in {headers['retry-after']} s."
    assert json.loads(body) == {"detail": detail}


def seconds_to_utc_midnight():
    return 86400 - time.time() % 86400


# --- one host: two workers on SQLite -----------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite(emulator, tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "swiftchat.db"
    env = {
        **emulator_env(emulator),
        "API_KEY": TEST_KEY,
        "SWIFTCHAT_STORE": f"sqlite:///{path}",
        "SWIFTCHAT_STORE_TIMEOUT": "0.5",
        "BEDROCK_MAX_ATTEMPTS": "1",
        "METRICS_TOKEN": METRICS_TOKEN,
        # Use Proxy pointed at a closed port: the key checks run, then the provider cannot be reached.
        "OPENAI_GPT_URL": f"http://127.0.0.1:{free_port()}/v1/chat/completions",
    }
    deployment = Deployment(env, [Server(env, workers=2)])
    deployment.path = path
    _wait_for_both_workers(deployment.servers[0])
    yield deployment
    deployment.stop()


def _wait_for_both_workers(server):
    """gunicorn accepts once one worker is up; a burst sent before the other has booted meets one worker."""
    deadline = time.monotonic() + 20
    while len({line["pid"] for line in access_lines(server)}) < 2:
        assert time.monotonic() < deadline, "the second worker never answered"
        burst([server], "/api/converse/v3", STREAM, TEST_KEY, 8)


def test_exactly_rpm_requests_of_a_burst_pass_across_two_workers(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("burst", "--rpm", "20")
    answers = burst([server], "/api/converse/v3", STREAM, key, 40)
    served = [answer for answer in answers if answer[0] == 200]
    refused = [answer for answer in answers if answer[0] != 200]
    assert (len(served), len(refused)) == (20, 20)
    for answer in refused:
        assert_rpm_refusal_as_text(answer, 20)
    # The other /api routes answer the same refusal as JSON.
    assert_rpm_refusal_as_json(server.request("/api/models", CATALOGUE, key=key), 20)
    lines = [line for line in access_lines(server) if line["key"] == "burst"]
    assert len({line["pid"] for line in lines}) == 2, "both workers should have answered the burst"

    sqlite.wait_for_requests("burst", 20)
    input_tokens = sum(tokens_of(body)[0] for _, _, body in served)
    output_tokens = sum(tokens_of(body)[1] for _, _, body in served)
    person = sqlite.usage()["burst"]
    assert (person["requests"], person["input_tokens"], person["output_tokens"]) == (20, input_tokens, output_tokens)
    assert person["days"][0]["models"] == [
        {
            "model": MODEL,
            "requests": 20,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "estimated_input_tokens": 0,  # every stream ended with Bedrock's own usage
            "estimated_output_tokens": 0,
        }
    ]


def test_a_days_token_budget_is_refused_once_spent(sqlite):
    server = sqlite.servers[0]
    spent_per_stream = sum(tokens_of(server.request("/api/converse/v3", STREAM)[2]))
    # One token more than a stream uses: the second stream is admitted (the budget is not yet
    # reached) and overshoots it; the third is refused.
    budget = spent_per_stream + 1
    key = sqlite.create("budget", "--tokens-per-day", str(budget))
    for served in (1, 2):
        status, _, body = server.request("/api/converse/v3", STREAM, key=key)
        assert status == 200
        assert body.endswith(b"\n\n") and b'"metadata"' in body
        sqlite.wait_for_requests("budget", served)

    status, headers, body = server.request("/api/converse/v3", STREAM, key=key)
    assert status == 429
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert abs(int(headers["retry-after"]) - seconds_to_utc_midnight()) < 5
    assert body.decode() == (
        f"Error: This key has used its {budget:,} tokens for today; it renews at midnight UTC,"
        f" in {headers['retry-after']} s."
    )
    status, headers, body = server.request("/api/models", CATALOGUE, key=key)
    assert (status, headers["content-type"]) == (429, "application/json")
    assert json.loads(body)["detail"].startswith(f"This key has used its {budget:,} tokens for today")
    assert "retry-after" in headers

    person = sqlite.usage()["budget"]
    assert person["requests"] == 2  # the refused ones are not counted
    assert person["input_tokens"] + person["output_tokens"] == 2 * spent_per_stream


def test_a_revoked_key_is_refused_by_every_worker_within_two_seconds(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("leaver")
    warm = burst([server], "/api/models", CATALOGUE, key, 12)  # both workers now hold it in their cache
    assert [status for status, _, _ in warm] == [200] * 12
    assert sqlite.keys("revoke", "leaver").returncode == 0
    revoked_by = time.monotonic()  # the revocation was committed before the CLI returned
    time.sleep(1.2)
    answers = burst([server], "/api/models", CATALOGUE, key, 12)
    assert time.monotonic() - revoked_by < 2.5
    assert {(status, body) for status, _, body in answers} == {(401, b'{"detail":"Invalid API Key"}\n')}


def test_the_shared_key_keeps_working_unlimited_and_is_recorded_as_default(sqlite):
    server = sqlite.servers[0]
    before = sqlite.usage().get("default", {"requests": 0, "input_tokens": 0, "output_tokens": 0})
    answers = burst([server], "/api/converse/v3", SHORT, TEST_KEY, 30)
    assert [status for status, _, _ in answers] == [200] * 30
    assert server.request("/api/models", CATALOGUE, headers={"x-api-key": TEST_KEY}, key=None)[0] == 200
    sqlite.wait_for_requests("default", before["requests"] + 31)
    after = sqlite.usage()["default"]
    assert after["input_tokens"] - before["input_tokens"] == sum(tokens_of(body)[0] for _, _, body in answers)
    assert after["output_tokens"] - before["output_tokens"] == sum(tokens_of(body)[1] for _, _, body in answers)

    taken = sqlite.keys("create", "default")
    assert taken.returncode == 1
    assert "The name default is the shared key's" in taken.stderr
    assert taken.stdout == ""


def test_made_up_model_ids_add_no_usage_rows(sqlite):
    server = sqlite.servers[0]
    before = sqlite.usage().get("default", {"requests": 0})
    for i in range(3):  # Bedrock refuses each: its id stays the caller's text
        refused = chat("[[emulator error=notfound]]", model=f"made-up-{i}-" + "x" * 1500)
        assert server.request("/api/converse/v3", refused, key=TEST_KEY)[0] == 404
    sqlite.wait_for_requests("default", before["requests"] + 3)
    models = {model["model"] for day in sqlite.usage()["default"]["days"] for model in day["models"]}
    assert not any(model and model.startswith("made-up-") for model in models)


@pytest.mark.parametrize("limits", [("--rpm", "1000"), ("--tokens-per-day", "200000")])
def test_a_locked_store_is_a_fast_503_for_limited_keys_while_the_shared_key_works(sqlite, limits):
    server = sqlite.servers[0]
    name = "patient" + limits[0].replace("-", "_")
    key = sqlite.create(name, *limits)
    assert server.request("/api/models", CATALOGUE, key=key)[0] == 200
    sqlite.wait_for_requests(name, 1)
    before = sqlite.usage().get("default", {"requests": 0})["requests"]
    errors_before = metric(server, "swiftchat_store_errors_total", operation="admit")
    holder = sqlite3.connect(sqlite.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock for as long as it likes
    try:
        for path, body in (("/api/models", CATALOGUE), ("/api/converse/v3", SHORT)):
            started = time.monotonic()
            status, headers, answer = server.request(path, body, key=key)
            assert time.monotonic() - started < 5  # SWIFTCHAT_STORE_TIMEOUT is 0.5 s: an answer, not a hang
            assert (status, headers["content-type"], json.loads(answer)) == (503, "application/json", STORE_DOWN)
        for _ in range(3):
            status, _, answer = server.request("/api/converse/v3", SHORT, key=TEST_KEY)
            assert status == 200 and b'"metadata"' in answer
        time.sleep(1)  # the shared key's usage is refused by the locked store meanwhile, and kept
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert server.request("/api/models", CATALOGUE, key=key)[0] == 200  # no restart needed
    assert metric(server, "swiftchat_store_errors_total", operation="admit") == errors_before + 2
    # Nothing served while the store was locked went unrecorded.
    sqlite.wait_for_requests("default", before + 3, seconds=15)
    sqlite.wait_for_requests(name, 2)
    assert metric(server, "swiftchat_usage_lost_total") == 0


def test_usage_that_cannot_be_written_is_kept_and_written_once_the_store_can_be(emulator, tmp_path):
    folder = tmp_path / "gone"
    env = {
        **emulator_env(emulator),
        "API_KEY": TEST_KEY,
        "SWIFTCHAT_STORE": f"sqlite:///{folder / 'k.db'}",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    server = Server(env)  # a store in a directory that does not exist: every usage write fails
    try:
        bodies = []
        for _ in range(3):
            status, _, body = server.request("/api/converse/v3", SHORT)
            assert status == 200 and b'"metadata"' in body
            bodies.append(body)
        deadline = time.monotonic() + 5
        while not metric(server, "swiftchat_store_errors_total", operation="record"):
            assert time.monotonic() < deadline, "no usage write failed"
            time.sleep(0.05)
        folder.mkdir()  # the store can be written again: what was kept is written, no restart needed
        deployment = Deployment(env, [server])
        deployment.wait_for_requests("default", 3, seconds=15)
        assert deployment.usage()["default"]["input_tokens"] == sum(tokens_of(body)[0] for body in bodies)
        assert metric(server, "swiftchat_usage_lost_total") == 0
        assert TEST_KEY not in server.output()
    finally:
        server.stop()


def test_access_log_names_the_key_and_metrics_count_per_key(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("counted", "--rpm", "2")
    first = server.request("/api/converse/v3", SHORT, key=key)
    second = server.request("/api/image", {"prompt": "a cat"}, headers={"x-api-key": key}, key=None)
    third = server.request("/api/models", CATALOGUE, key=key)
    assert (first[0], second[0], third[0]) == (200, 422, 429)  # a bad body is served (and counted)
    wait_for_metric(server, 2, "swiftchat_key_requests_total", key="counted")
    wait_for_metric(server, 1, "swiftchat_key_refusals_total", key="counted", limit="rpm")
    input_tokens, output_tokens = tokens_of(first[2])
    assert metric(server, "swiftchat_key_tokens_total", key="counted", direction="input") == input_tokens
    assert metric(server, "swiftchat_key_tokens_total", key="counted", direction="output") == output_tokens
    # /metrics shows everyone's names and usage: a person's own key does not open it, and the shared
    # key (in every app) sees the server-wide series alone.
    assert server.request("/metrics", method="GET", key=key)[0] == 401
    status, _, shown = server.request("/metrics", method="GET")
    assert status == 200 and b"swiftchat_requests_total" in shown
    assert b"swiftchat_key_" not in shown and b"counted" not in shown

    lines = [line for line in access_lines(server) if line["key"] == "counted"]
    assert sorted(line["status"] for line in lines) == [200, 422, 429]
    streamed = next(line for line in lines if line["status"] == 200)
    assert (streamed["input_tokens"], streamed["output_tokens"]) == (input_tokens, output_tokens)
    log = server.output()
    assert key not in log and key[len("sk-swiftchat-") :] not in log
    assert "sk-swiftchat-" not in log


def test_use_proxy_accepts_any_of_this_servers_keys_and_sends_none_on(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("proxied")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    openai = {"Authorization": "Bearer sk-provider-0123456789"}
    status, _, answer = server.request("/api/gpt", body, headers={**openai, "x-api-key": key}, key=None)
    assert (status, answer.startswith(b'data: {"error": ')) == (
        200,
        True,
    )  # past our checks, to a provider that is down
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    status, _, answer = server.request("/api/gpt", body, headers={**openai, "x-api-key": wrong}, key=None)
    assert (status, answer) == (401, b'{"detail":"Invalid API Key"}\n')
    status, _, answer = server.request("/api/gpt", body, key=key)  # our key where the provider's belongs
    assert status == 403 and "never sent on" in json.loads(answer)["detail"]


PROMPT_WORDS = 5_000
PROMPT = " ".join(["lorem"] * PROMPT_WORDS)  # the emulator bills a word a token; we would estimate twice that
# A long prompt and a long reply, slow enough that 3 KB of it arrive well before its end.
LONG_PROMPT = "[[emulator words=400 delay_ms=20]] " + PROMPT
CUT_STREAMS = {
    "/api/converse/v3": chat(LONG_PROMPT),
    "/v1/chat/completions": {
        "model": MODEL,
        "messages": [{"role": "user", "content": LONG_PROMPT}],
        "stream": True,
    },
}
UNCOUNTED_MODEL = "amazon.nova-lite-v1:0"  # Bedrock's CountTokens does not count for Nova


def read_a_little_then_hang_up(server, path, body, key, wanted=3_000):
    """Send a chat on a raw socket, read ``wanted`` bytes of its answer and close: the status line's code."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + data)
        answer = b""
        while len(answer) < wanted and (chunk := sock.recv(65536)):
            answer += chunk
            if answer.startswith(b"HTTP/1.1 4") and b"\r\n\r\n" in answer:
                break
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("path", sorted(CUT_STREAMS))
def test_streams_cut_short_are_charged_bedrocks_count_of_their_input_and_spend_the_budget(sqlite, path):
    server = sqlite.servers[0]
    whole_input, _ = tokens_of(server.request("/api/converse/v3", chat('[[emulator reply="ok"]] ' + PROMPT))[2])
    assert whole_input == PROMPT_WORDS
    name = "cutter-" + path.strip("/").split("/")[0]
    budget = 12_000  # Bedrock counts each prompt as 5,000 tokens: at most three can start
    key = sqlite.create(name, "--tokens-per-day", str(budget))
    statuses = []
    while len(statuses) < 8 and 429 not in statuses:
        statuses.append(read_a_little_then_hang_up(server, path, CUT_STREAMS[path], key))
    served = statuses.count(200)
    assert statuses == [200] * served + [429]
    assert 1 <= served <= -(-budget // PROMPT_WORDS)

    sqlite.wait_for_requests(name, served)
    person = sqlite.usage()[name]
    # Bedrock's bill for each: the input as CountTokens counts it (what a whole answer is billed), and some
    # output, estimated (not our estimate of the input: twice as many tokens)
    assert person["input_tokens"] == served * whole_input
    assert person["estimated_input_tokens"] == 0
    assert person["output_tokens"] > 0
    assert person["estimated_output_tokens"] == person["output_tokens"]
    assert person["days"][0]["models"][0]["model"] == MODEL
    lines = [line for line in access_lines(server) if line["key"] == name and line["status"] == 200]
    assert len(lines) == served
    for line in lines:
        assert line["client_disconnected"] and line["tokens_estimated"] == ["output"]
        assert line["input_tokens"] == whole_input and line["output_tokens"] > 0
        # Estimated from the words relayed, not from the events' JSON around them: a few dozen words
        # reached the client, never more output than the whole 400-word answer is billed.
        assert line["output_tokens"] < 400


def test_streams_cut_short_on_a_model_bedrock_does_not_count_for_are_charged_the_estimate(sqlite, emulator):
    server = sqlite.servers[0]
    key = sqlite.create("cutter-nova", "--tokens-per-day", "1000000")
    cuts = 4
    for _ in range(cuts):
        cut = chat(LONG_PROMPT.replace("]] ", "]] nova-cut "), UNCOUNTED_MODEL)  # its calls told from other tests'
        assert read_a_little_then_hang_up(server, "/api/converse/v3", cut, key) == 200
    sqlite.wait_for_requests("cutter-nova", cuts)
    person = sqlite.usage()["cutter-nova"]
    # Our estimate, on the high side of Bedrock's bill (a word a token here), and marked as one.
    assert person["input_tokens"] >= cuts * PROMPT_WORDS
    assert person["estimated_input_tokens"] == person["input_tokens"]
    assert person["estimated_output_tokens"] == person["output_tokens"] > 0
    lines = [line for line in access_lines(server) if line["key"] == "cutter-nova"]
    assert [line["tokens_estimated"] for line in lines] == [["input", "output"]] * cuts
    # Each worker asked Bedrock once, was told the model is not counted for, and did not ask again.
    counts = [call for call in emulator_calls(emulator) if call.get("operation") == "count-tokens"]
    assert 1 <= sum("nova-cut" in json.dumps(call["body"]) for call in counts) <= 2  # once a worker, not once a stream


def test_a_count_that_does_not_come_in_time_leaves_the_estimate_and_never_holds_the_connection(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("slow-count", "--tokens-per-day", "1000000")  # Bedrock's count is asked for a budget's sake
    # Bedrock breaks the stream off (no usage); its count of the input would come only after a minute.
    broken = chat("[[emulator words=20 fail_after=3 count_delay_ms=60000]] " + PROMPT)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        for body in (broken, SHORT):  # one connection, as an app keeps it: the same worker answers both
            connection.request("POST", "/api/converse/v3", body=json.dumps(body), headers=headers)
            answer = connection.getresponse()
            assert answer.status == 200
            answer.read()
    finally:
        connection.close()
    sqlite.wait_for_requests("slow-count", 2, seconds=15)
    lines = [line for line in access_lines(server) if line["key"] == "slow-count"]
    # The next request was answered and logged while the count was still awaited; then the estimate.
    assert ["tokens_estimated" in line for line in lines] == [False, True]
    assert lines[1]["tokens_estimated"] == ["input", "output"] and lines[1]["input_tokens"] > PROMPT_WORDS
    person = sqlite.usage()["slow-count"]
    assert person["estimated_input_tokens"] == lines[1]["input_tokens"]


def test_a_budget_is_spent_down_to_the_last_token_one_chat_after_another(sqlite):
    server = sqlite.servers[0]
    per_chat = sum(tokens_of(server.request("/api/converse/v3", SHORT)[2]))
    key = sqlite.create("two-chats", "--tokens-per-day", str(2 * per_chat))
    for served in (1, 2):  # each holds its worst case (far more than the budget) while it runs
        status, _, body = server.request("/api/converse/v3", SHORT, key=key)
        assert status == 200 and sum(tokens_of(body)) == per_chat
        sqlite.wait_for_requests("two-chats", served)
    assert server.request("/api/converse/v3", SHORT, key=key)[0] == 429


def test_streams_started_together_on_a_nearly_spent_budget_overshoot_it_by_one_request_at_most(sqlite):
    server = sqlite.servers[0]
    per_chat = sum(tokens_of(server.request("/api/converse/v3", STREAM)[2]))
    key = sqlite.create("crowd", "--tokens-per-day", str(per_chat + 1))
    assert server.request("/api/converse/v3", STREAM, key=key)[0] == 200
    sqlite.wait_for_requests("crowd", 1)  # one token of the budget is left
    answers = burst([server], "/api/converse/v3", STREAM, key, 50)
    assert sorted(status for status, _, _ in answers) == [200] + [429] * 49
    sqlite.wait_for_requests("crowd", 2)
    person = sqlite.usage()["crowd"]
    assert person["input_tokens"] + person["output_tokens"] == 2 * per_chat


# --- several instances: two gunicorn instances sharing one redis-server -----------------------


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory):
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def instances(emulator, redis_store):
    env = {
        **emulator_env(emulator),
        "API_KEY": TEST_KEY,
        "SWIFTCHAT_STORE": redis_store.url,
        "SWIFTCHAT_KEY_PEPPER": "instances' own secret pepper",
        "SWIFTCHAT_STORE_TIMEOUT": "0.5",
        "BEDROCK_MAX_ATTEMPTS": "1",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    deployment = Deployment(env, [Server(env), Server(env)])
    yield deployment
    deployment.stop()


def test_exactly_rpm_requests_of_a_burst_pass_across_two_instances(instances):
    key = instances.create("burst", "--rpm", "20")
    answers = burst(instances.servers, "/api/converse/v3", STREAM, key, 40)
    served = [answer for answer in answers if answer[0] == 200]
    assert len(served) == 20
    for answer in answers:
        if answer[0] != 200:
            assert_rpm_refusal_as_text(answer, 20)
    for server in instances.servers:
        assert_rpm_refusal_as_json(server.request("/api/models", CATALOGUE, key=key), 20)
    instances.wait_for_requests("burst", 20)
    person = instances.usage()["burst"]
    assert person["input_tokens"] == sum(tokens_of(body)[0] for _, _, body in served)
    assert person["output_tokens"] == sum(tokens_of(body)[1] for _, _, body in served)


def test_a_budget_spent_on_one_instance_is_refused_on_the_other(instances):
    first, second = instances.servers
    spent_per_stream = sum(tokens_of(first.request("/api/converse/v3", STREAM)[2]))
    key = instances.create("budget", "--tokens-per-day", str(spent_per_stream + 1))
    assert first.request("/api/converse/v3", STREAM, key=key)[0] == 200
    instances.wait_for_requests("budget", 1)
    assert second.request("/api/converse/v3", STREAM, key=key)[0] == 200
    instances.wait_for_requests("budget", 2)
    for server in (first, second):
        status, headers, _ = server.request("/api/converse/v3", STREAM, key=key)
        assert (status, headers["content-type"]) == (429, "text/plain; charset=utf-8")
    person = instances.usage()["budget"]
    assert person["input_tokens"] + person["output_tokens"] == 2 * spent_per_stream


def test_a_revoked_key_is_refused_by_every_instance_within_two_seconds(instances):
    key = instances.create("leaver")
    assert [status for status, _, _ in burst(instances.servers, "/api/models", CATALOGUE, key, 6)] == [200] * 6
    assert instances.keys("revoke", "leaver").returncode == 0
    revoked_by = time.monotonic()
    time.sleep(1.2)
    answers = burst(instances.servers, "/api/models", CATALOGUE, key, 6)
    assert time.monotonic() - revoked_by < 2.5
    assert {status for status, _, _ in answers} == {401}


def _per_person_key_is_refused_fast(server, key):
    for path, body in (("/api/models", CATALOGUE), ("/api/converse/v3", SHORT)):
        started = time.monotonic()
        status, _, answer = server.request(path, body, key=key)
        assert time.monotonic() - started < 5  # SWIFTCHAT_STORE_TIMEOUT is 0.5 s: never a hang
        assert (status, json.loads(answer)) == (503, STORE_DOWN)


def test_redis_outage_is_a_fast_503_for_personal_keys_and_recovers_without_restart(instances, redis_store):
    key = instances.create("steady", "--rpm", "1000")
    for server in instances.servers:
        assert server.request("/api/models", CATALOGUE, key=key)[0] == 200
    redis.Redis.from_url(redis_store.url).save()  # keys survive the restart below

    os.kill(redis_store.process.pid, signal.SIGSTOP)  # Redis hangs: connections open, nothing answers
    try:
        time.sleep(1.1)  # past the lookup cache
        for server in instances.servers:
            _per_person_key_is_refused_fast(server, key)
            assert server.request("/api/converse/v3", SHORT, key=TEST_KEY)[0] == 200
    finally:
        os.kill(redis_store.process.pid, signal.SIGCONT)
    for server in instances.servers:
        assert server.request("/api/models", CATALOGUE, key=key)[0] == 200

    redis_store.stop()  # Redis gone: connections refused
    try:
        time.sleep(1.1)
        for server in instances.servers:
            _per_person_key_is_refused_fast(server, key)
            assert server.request("/api/models", CATALOGUE, key=TEST_KEY)[0] == 200
    finally:
        redis_store.start()
    for server in instances.servers:  # the same gunicorn processes, reconnected
        assert server.request("/api/converse/v3", SHORT, key=key)[0] == 200
        assert metric(server, "swiftchat_store_errors_total") > 0


@pytest.mark.parametrize("limits", [("--rpm", "1000"), ("--tokens-per-day", "200000")])
def test_a_full_redis_is_a_503_for_limited_keys_and_loses_no_usage(instances, redis_store, limits):
    first, second = instances.servers
    name = "frugal" + limits[0].replace("-", "_")
    key = instances.create(name, *limits)
    assert first.request("/api/converse/v3", SHORT, key=key)[0] == 200
    instances.wait_for_requests(name, 1)
    before = instances.usage().get("default", {"requests": 0})["requests"]
    control = redis.Redis.from_url(redis_store.url)
    control.config_set("maxmemory", 1)  # every write refused: out of memory
    try:
        for server in (first, second):
            _per_person_key_is_refused_fast(server, key)
            status, _, answer = server.request("/api/converse/v3", SHORT, key=TEST_KEY)
            assert status == 200 and b'"metadata"' in answer
        time.sleep(1)  # the shared key's usage is refused meanwhile, and kept
    finally:
        control.config_set("maxmemory", 0)
        control.close()
    assert second.request("/api/converse/v3", SHORT, key=key)[0] == 200
    instances.wait_for_requests("default", before + 2, seconds=15)
    instances.wait_for_requests(name, 2)
    for server in (first, second):
        assert metric(server, "swiftchat_usage_lost_total") == 0


# --- Use Proxy with a key ------------------------------------------------------------------------


PROVIDER_USAGE = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
PROVIDER_MODEL = "gpt-4o-mini-2024-07-18"  # the model its answers name


class _Provider(ThreadingHTTPServer):
    """An OpenAI-compatible provider on loopback that records what reaches it and answers in short: a stream, its
    usage in a last event when ``stream_options.include_usage`` asks for it (earlier events say ``"usage": null``,
    as OpenAI's do), or a whole JSON answer with its usage."""

    def __init__(self):
        self.seen = []
        super().__init__(("127.0.0.1", 0), self._Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (http.server's spelling)
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.server.seen.append((self.path, dict(self.headers)))
            content_type, body = self._answer(request)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        @staticmethod
        def _answer(request):
            said = {"role": "assistant", "content": "hi"}
            if not request.get("stream"):
                whole = {"id": "chatcmpl-1", "model": PROVIDER_MODEL, "choices": [{"message": said}]}
                return "application/json", json.dumps({**whole, "usage": PROVIDER_USAGE}, indent=2).encode()
            if not (request.get("stream_options") or {}).get("include_usage"):
                return "text/event-stream", b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n'
            chunks = [
                {"model": PROVIDER_MODEL, "choices": [{"delta": {"content": "hi"}}], "usage": None},
                {"model": PROVIDER_MODEL, "choices": [], "usage": PROVIDER_USAGE},
            ]
            events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
            return "text/event-stream", b"".join(events) + b"data: [DONE]\n\n"

        def log_message(self, *args):
            pass


@pytest.fixture(scope="module")
def proxied(emulator, tmp_path_factory):
    """A server whose Use Proxy lists a provider on loopback: x-api-key is required by default."""
    provider = _Provider()
    path = tmp_path_factory.mktemp("proxied") / "swiftchat.db"
    env = {
        **emulator_env(emulator),
        "API_KEY": TEST_KEY,
        "SWIFTCHAT_STORE": f"sqlite:///{path}",
        "OPENAI_PROXY_HOSTS": f"127.0.0.1:{provider.server_port}",
        "OPENAI_GPT_URL": f"http://127.0.0.1:{provider.server_port}/v1/chat/completions",
    }
    deployment = Deployment(env, [Server(env)])
    deployment.provider = provider
    yield deployment
    deployment.stop()
    provider.shutdown()
    provider.server_close()


PROVIDER = {"Authorization": "Bearer sk-provider-0123456789"}
PROXIED_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}


def _via_proxy(deployment, headers, path="/v1/chat/completions", route="/api/openai", chat_body=PROXIED_CHAT):
    """One Use Proxy request with exactly ``headers`` (plus request_url); (status, detail or body, reached provider)."""
    before = len(deployment.provider.seen)
    url = f"http://127.0.0.1:{deployment.provider.server_port}{path}"
    status, _, body = deployment.servers[0].request(route, chat_body, headers={"request_url": url, **headers}, key=None)
    reached = len(deployment.provider.seen) > before
    shown = json.loads(body)["detail"] if status >= 400 else body
    return status, shown, reached


def test_use_proxy_needs_a_key_of_this_server_when_a_private_provider_is_listed(proxied):
    status, detail, reached = _via_proxy(proxied, PROVIDER)
    assert (status, reached) == (403, False)
    assert "needs this server's API key in x-api-key" in detail
    status, _, reached = _via_proxy(proxied, PROVIDER, route="/api/gpt")
    assert (status, reached) == (403, False)

    status, body, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": TEST_KEY})
    assert (status, reached) == (200, True) and b"[DONE]" in body
    path, headers = proxied.provider.seen[-1]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == PROVIDER["Authorization"]
    assert TEST_KEY not in json.dumps(headers)


def test_use_proxy_admits_limits_and_counts_a_per_person_key(proxied):
    key = proxied.create("relayer", "--rpm", "2")
    for _ in range(2):
        status, _, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": key})
        assert (status, reached) == (200, True)
    status, detail, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": key})
    assert (status, reached) == (429, False) and "2 requests a minute" in detail
    proxied.wait_for_requests("relayer", 2)
    assert key not in json.dumps(proxied.provider.seen)

    leaver = proxied.create("proxy-leaver")
    assert _via_proxy(proxied, {**PROVIDER, "x-api-key": leaver})[0] == 200
    assert proxied.keys("revoke", "proxy-leaver").returncode == 0
    time.sleep(1.2)  # past the lookup cache
    status, detail, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": leaver})
    assert (status, detail, reached) == (401, "Invalid API Key", False)


@pytest.mark.parametrize("whole", [False, True])
def test_use_proxy_charges_the_tokens_a_provider_reports_and_refuses_past_the_budget(proxied, whole):
    name = "metered-whole" if whole else "metered-stream"
    key = proxied.create(name, "--tokens-per-day", "100")
    asked = {**PROXIED_CHAT, "stream": False} if whole else {**PROXIED_CHAT, "stream_options": {"include_usage": True}}
    for served in (1, 2, 3):  # 0, 42 and 84 tokens used: each is under 100, so admitted
        status, body, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": key}, chat_body=asked)
        assert (status, reached) == (200, True) and b'"usage"' in body
        proxied.wait_for_requests(name, served)
    status, detail, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": key}, chat_body=asked)
    assert (status, reached) == (429, False) and detail.startswith("This key has used its 100 tokens for today")
    person = proxied.usage()[name]
    assert (person["input_tokens"], person["output_tokens"]) == (3 * 30, 3 * 12)  # 126: past the budget by one answer
    assert (person["estimated_input_tokens"], person["estimated_output_tokens"]) == (0, 0)
    assert person["days"][0]["models"][0]["model"] == PROVIDER_MODEL  # the model the provider says answered
    lines = [line for line in access_lines(proxied.servers[0]) if line["key"] == name and line["status"] == 200]
    assert [(line["input_tokens"], line["output_tokens"]) for line in lines] == [(30, 12)] * 3


def test_use_proxy_without_the_providers_usage_charges_requests_alone(proxied):
    key = proxied.create("unmetered", "--tokens-per-day", "1")
    for served in (1, 2, 3):  # the provider reports no usage: no token is charged, so the budget is never spent
        assert _via_proxy(proxied, {**PROVIDER, "x-api-key": key})[0] == 200
        proxied.wait_for_requests("unmetered", served)
    person = proxied.usage()["unmetered"]
    assert (person["requests"], person["input_tokens"], person["output_tokens"]) == (3, 0, 0)


@pytest.mark.parametrize(
    "path", ["/api/pull", "/api/create", "/any/path?x=1", "/v1/chat/completions?x=1", "/v1/models"]
)
def test_use_proxy_relays_only_a_providers_chat_completions_path(proxied, path):
    status, detail, reached = _via_proxy(proxied, {**PROVIDER, "x-api-key": TEST_KEY}, path=path)
    assert (status, reached) == (403, False)
    assert "only a provider's chat-completions path" in detail


@pytest.mark.parametrize("spelling", ["{key}", "Bearer\t{key}", "bearer  {key}", "Token {key}", "Bearer {key} "])
def test_use_proxy_never_forwards_this_servers_key_however_it_is_spelt(proxied, spelling):
    for key in (TEST_KEY, proxied.create(f"spelt-{abs(hash(spelling)) % 10_000}")):
        authorization = spelling.format(key=key)
        status, detail, reached = _via_proxy(proxied, {"Authorization": authorization, "x-api-key": TEST_KEY})
        assert (status, reached) == (403, False)
        assert "never sent on" in detail and key not in detail


def test_a_key_minted_in_redis_with_the_public_pepper_does_not_work(instances, redis_store):
    key = "sk-swiftchat-" + "m" * 43
    digest = open_store(redis_store.url).digest(key)  # what someone who can write to Redis could compute
    redis.Redis.from_url(redis_store.url).hset(f"swiftchat:key:{digest}", mapping={"name": "mallory"})
    for server in instances.servers:
        assert server.request("/api/models", CATALOGUE, key=key)[0] == 401


def test_a_server_on_redis_with_the_public_pepper_refuses_per_person_keys(redis_store):
    app = create_app(Config(api_key=TEST_KEY, store_url=redis_store.url))
    client = app.test_client()
    answer = client.post("/api/models", json=CATALOGUE, headers={"Authorization": "Bearer sk-swiftchat-" + "m" * 43})
    assert answer.status_code == 503
    assert answer.get_json() == {
        "detail": "This server cannot accept per-person keys until its operator sets SWIFTCHAT_KEY_PEPPER."
    }


def test_streams_started_together_on_two_instances_overshoot_a_nearly_spent_budget_by_one_at_most(instances):
    first, second = instances.servers
    per_chat = sum(tokens_of(first.request("/api/converse/v3", STREAM)[2]))
    key = instances.create("crowd", "--tokens-per-day", str(per_chat + 1))
    assert first.request("/api/converse/v3", STREAM, key=key)[0] == 200
    instances.wait_for_requests("crowd", 1)  # one token of the budget is left
    answers = burst(instances.servers, "/api/converse/v3", STREAM, key, 50)
    assert sorted(status for status, _, _ in answers) == [200] + [429] * 49
    instances.wait_for_requests("crowd", 2)


def test_streams_cut_short_spend_the_budget_across_two_instances(instances):
    key = instances.create("cutter", "--tokens-per-day", "12000")
    statuses = []
    while len(statuses) < 8 and 429 not in statuses:
        server = instances.servers[len(statuses) % 2]
        statuses.append(read_a_little_then_hang_up(server, "/api/converse/v3", CUT_STREAMS["/api/converse/v3"], key))
    served = statuses.count(200)
    assert statuses == [200] * served + [429] and 1 <= served <= 3
    instances.wait_for_requests("cutter", served)
    person = instances.usage()["cutter"]
    assert person["input_tokens"] == served * PROMPT_WORDS  # Bedrock's count of each input (CountTokens)
    assert person["estimated_input_tokens"] == 0


def test_image_generations_count_toward_a_keys_images_per_day(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("painter", "--images-per-day", "1")
    drawing = {
        "prompt": "a cat",
        "modelId": "amazon.titan-image-generator-v2:0",
        "region": "us-west-2",
        "width": 1024,
        "height": 1024,
    }
    assert server.request("/api/image", drawing, key=key)[0] == 200
    status, headers, body = server.request("/api/image", drawing, key=key)
    assert status == 429 and "retry-after" in headers
    assert json.loads(body)["detail"].startswith("This key has made its 1 images for today")
    assert server.request("/api/converse/v3", SHORT, key=key)[0] == 200  # chats are not images
    status, headers, body = server.request(
        "/v1/images/generations", {"model": drawing["modelId"], "prompt": "a cat", "size": "1024x1024"}, key=key
    )
    assert status == 429 and headers.get("x-should-retry") == "false"  # the SDKs must not retry before the day turns
    assert json.loads(body)["error"]["code"] == "insufficient_quota"


def test_a_budget_key_is_admitted_and_settled_on_whole_v1_answers_too(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("whole", "--tokens-per-day", "50")  # the hold of one chat takes all of it
    chat_body = {"model": MODEL, "messages": [{"role": "user", "content": '[[emulator reply="ok"]]'}]}
    for served in (1, 2):  # the first chat's hold (its maxTokens) is settled before the second arrives
        status, _, body = server.request("/v1/chat/completions", chat_body, key=key)
        assert status == 200, body
        sqlite.wait_for_requests("whole", served)
    person = sqlite.usage()["whole"]
    assert person["input_tokens"] > 0 and person["estimated_input_tokens"] == 0


def test_the_image_helper_models_tokens_count_toward_the_keys_usage(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("translator", "--tokens-per-day", "100000")
    drawing = {"prompt": "海", "modelId": "amazon.nova-canvas-v1:0", "region": "us-west-2"}
    status, _, body = server.request("/api/image", {**drawing, "width": "1024", "height": "1024"}, key=key)
    assert status == 200 and "image" in json.loads(body)
    sqlite.wait_for_requests("translator", 1)
    person = sqlite.usage()["translator"]
    assert (person["input_tokens"], person["output_tokens"]) == (10, 10)  # the emulator's helper answer


CACHING_MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"  # caches prefixes of 1,024 tokens and more


def test_tokens_read_from_and_written_to_bedrocks_prompt_cache_count_toward_the_budget(sqlite):
    server = sqlite.servers[0]
    key = sqlite.create("cacher", "--tokens-per-day", "1000000")
    system = " ".join(["cached"] * 3_000)  # past the model's minimum: Bedrock caches it
    body = {
        "model": CACHING_MODEL,
        "messages": [
            {"role": "system", "content": system, "cache_control": {"type": "ephemeral"}},
            {"role": "user", "content": '[[emulator reply="ok"]] hello'},
        ],
    }
    answers = [server.request("/v1/chat/completions", body, key=key) for _ in range(2)]
    assert [status for status, _, _ in answers] == [200, 200]
    usages = [json.loads(answer)["usage"] for _, _, answer in answers]
    assert usages[1]["prompt_tokens_details"]["cached_tokens"] >= 3_000  # the second read the prefix back

    sqlite.wait_for_requests("cacher", 2)
    person = sqlite.usage()["cacher"]
    # What Bedrock bills: the cache's writes and reads as well as the rest of the input
    assert person["input_tokens"] == sum(usage["prompt_tokens"] for usage in usages)
    lines = [line for line in access_lines(server) if line["key"] == "cacher"]
    assert lines[0]["cache_write_tokens"] >= 3_000 and lines[1]["cache_read_tokens"] >= 3_000
