"""The baseline for bench/cost.py and bench/streams.py: the same streams read with boto3 straight from the emulator.

Run by bench/cost.py and bench/streams.py in its own process (gevent-patched, like a worker).
Prints one JSON object: events and requests read, each stream's time from its call to its first
event, the wall time, this process's CPU seconds (with ``--hold``, until every stream is open),
and its RSS growth while ``--hold`` streams were open at once (opened all together, or
``--one-by-one``).
"""

import argparse
import json
import resource
import time

from gevent import monkey

monkey.patch_all()

import boto3  # noqa: E402
import gevent  # noqa: E402
from botocore.config import Config  # noqa: E402
from gevent.event import Event  # noqa: E402
from streams import conversation  # noqa: E402 (bench/ is this script's directory)


def rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--hold", action="store_true", help="keep every stream open after its first event")
    parser.add_argument("--one-by-one", action="store_true", help="with --hold: open them in turn")
    parser.add_argument("--history-kb", type=int, default=0, help="earlier turns sent with the message, in KB")
    args = parser.parse_args()
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-west-2",
        endpoint_url=args.url,
        config=Config(max_pool_connections=args.streams + 10, read_timeout=None, retries={"total_max_attempts": 1}),
    )
    messages = conversation(args.text, args.history_kb)
    # Load botocore's models before measuring, with a one-word reply: args.text may keep a stream open for minutes.
    warm_up = conversation('[[emulator reply="ok"]]')
    list(client.converse_stream(modelId=args.model, messages=warm_up, inferenceConfig={"maxTokens": 4096})["stream"])
    counted = {"events": 0, "requests": 0, "ttfb": []}
    opened, release = [], Event()

    def read_one():
        called = time.perf_counter()
        stream = client.converse_stream(modelId=args.model, messages=messages, inferenceConfig={"maxTokens": 4096})
        counted["requests"] += 1
        for index, _event in enumerate(stream["stream"]):
            if index == 0:
                counted["ttfb"].append(time.perf_counter() - called)
            counted["events"] += 1
            if args.hold:
                opened.append(stream)
                release.wait()
                break

    before_rss, before_cpu, started = rss_kb(), cpu_seconds(), time.perf_counter()
    greenlets = []
    for _ in range(args.streams):
        greenlets.append(gevent.spawn(read_one))
        while args.one_by_one and len(opened) < len(greenlets) and not greenlets[-1].dead:
            gevent.sleep(0.001)
    held_rss = 0
    if args.hold:  # measured once every stream is open, as bench/cost.py measures the worker
        while len(opened) < args.streams and not all(g.dead for g in greenlets):
            gevent.sleep(0.05)
        held_rss, used = rss_kb(), cpu_seconds() - before_cpu
        release.set()
    gevent.joinall(greenlets)
    wall = time.perf_counter() - started
    if not args.hold:
        used = cpu_seconds() - before_cpu
    print(json.dumps({**counted, "wall": wall, "cpu": used, "rss_growth_kb": held_rss - before_rss}))


if __name__ == "__main__":
    main()
