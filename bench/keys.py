"""Benchmark: what per-person keys cost a gevent worker, with the SQLite store.

    python bench/keys.py [--requests 2000] [--rounds 3] [--streams 500] [--words 50] [--delay-ms 50]

Three figures:
- store CPU per request, in-process: looking a key up (cached), admitting it under an rpm and a
  daily budget, and recording its usage, as the server does them, timed with process CPU time;
- worker CPU per request through one gunicorn worker: --requests POST /api/token (a route that
  calls nothing upstream) with the shared key, then with a per-person key with both limits, in
  alternating rounds; the difference is what the key's lookup and admission add (both record
  their usage);
- streaming: --streams concurrent /api/converse/v3 streams with each key; events per second and
  worker CPU per event should not change.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from streams import KEY, cpu_seconds, start_gunicorn, through_worker  # noqa: E402

CONNECTIONS = 8
_PROBE = """
from gevent import monkey

monkey.patch_all()
import json, sys, time
from swiftchat_api import auth
from swiftchat_api.auth import StaticKey
from swiftchat_api.store import open_store

store = open_store(sys.argv[1])
key = store.create_key("probe", rpm=100_000, tokens_per_day=10**12)
shared = StaticKey("shared-key")
count = int(sys.argv[2])
results = {}
for label, presented in (("shared key", "shared-key"), ("personal key", key)):
    headers = {"Authorization": "Bearer " + presented}
    for _ in range(200):  # warm: connection open, key cached
        auth.admit(store, auth.identify(shared, store, headers))
    started = time.process_time()
    for n in range(count):
        identity = auth.identify(shared, store, headers)
        auth.admit(store, identity)
        store.record_usage(identity.name, "model", 10, 20)
    results[label] = (time.process_time() - started) / count * 1e6
print(json.dumps(results))
"""


def in_process(store_url, count):
    """Store CPU per request (µs) measured in a gevent-patched process: lookup, admission, usage."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, store_url, str(count)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def requests(port, key, count):
    """``count`` POST /api/token over a few keep-alive connections; all must answer 200."""
    body = json.dumps({"region": "us-west-2"})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    failures = []

    def worker(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(share):
            connection.request("POST", "/api/token", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=worker, args=(count // CONNECTIONS,)) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. status {failures[0]}")
    return count // CONNECTIONS * CONNECTIONS


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--words", type=int, default=50)
    parser.add_argument("--delay-ms", type=int, default=50)
    args = parser.parse_args()

    from swiftchat_api.emulator import launch
    from swiftchat_api.store import open_store

    directory = tempfile.mkdtemp(prefix="swiftchat-bench-keys-")
    store_url = f"sqlite:///{directory}/store.db"
    probe = in_process(f"sqlite:///{directory}/probe.db", 5000)
    print(
        "store CPU per request, in-process (lookup cached, admission, usage written): "
        + ", ".join(f"{label} {micros:.0f} µs" for label, micros in probe.items())
    )

    personal = open_store(store_url).create_key("bench", rpm=100_000, tokens_per_day=10**12)
    os.environ["SWIFTCHAT_STORE"] = store_url  # start_gunicorn passes its environment on
    emulator, url = launch.start()
    master, worker, port = start_gunicorn(url, args.streams)
    try:
        cost = {"shared": [], "personal": []}
        for key in (KEY, personal):
            requests(port, key, 400)  # warm both paths
        for _ in range(args.rounds):
            for name, key in (("shared", KEY), ("personal", personal)):
                before = cpu_seconds(worker)
                sent = requests(port, key, args.requests)
                cost[name].append((cpu_seconds(worker) - before) / sent * 1e6)
        shared, mine = statistics.median(cost["shared"]), statistics.median(cost["personal"])
        print(
            f"worker CPU per request (POST /api/token, median of {args.rounds} rounds of {args.requests}): "
            f"shared key {shared:.0f} µs, per-person key with rpm and budget {mine:.0f} µs, "
            f"difference {mine - shared:+.0f} µs"
        )
        print(
            "  rounds: " + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(cost["shared"], cost["personal"], strict=True))
        )

        text = f"[[emulator words={args.words} delay_ms={args.delay_ms}]]"
        expect = args.words + 4
        for key in (KEY, personal):
            through_worker(worker, port, text, 1, expect, key)
        print(f"{args.streams} concurrent streams, {expect} events each, {args.delay_ms} ms between deltas:")
        for name, key in (("shared", KEY), ("personal", personal)):
            result, used = through_worker(worker, port, text, args.streams, expect, key)
            print(
                f"  {name:<8} key: completed {result['completed']}/{args.streams}, failed {result['failed']}, "
                f"{result['events'] / result['wall']:.0f} events/s, "
                f"worker CPU {used / max(result['events'], 1) * 1e6:.0f} µs per event"
            )
    finally:
        master.terminate()
        master.wait(30)
        emulator.terminate()


if __name__ == "__main__":
    main()
