"""Benchmark: what one stream costs one gevent worker, next to boto3 reading the same streams directly.

    python bench/cost.py [--streams 300] [--events 200] [--delay-ms 100] [--held 1000] [--long-held 300]
    python bench/cost.py --v1 [--streams 300] [--events 200] [--delay-ms 100] [--rounds 4]

The issue's three figures and three more, each from the worker's own CPU time (/proc/<pid>/stat)
or RSS, so a noisy shared machine matters little:
- CPU per relayed event: --streams streams of --events deltas, --delay-ms apart (realistic
  pacing: each event is relayed alone);
- CPU per request: --streams one-word replies; a second line sends each with 32 KB of earlier
  turns, as the apps send a chat's whole history with every message;
- KB per open stream: --held streams held open (a silent model after its first event), opened
  one after another, then (a second line) all at once; each on a fresh worker, whose heap has no
  room to spare. All at once, the worker serves every request together and its heap keeps the
  peak of their transient memory for later use, so the second line is the larger; a third line
  opens --long-held streams at once whose requests carry 32 KB of earlier turns, as the apps
  send a chat's history with every message. The worker's growth is read 12 s after the
  last stream opened, once it has given back what it freed (swiftchat_api/heap.py);
- CPU per request in that burst, where every request opens a new upstream connection.
The "direct" column is a gevent process reading the same streams from the emulator with boto3
alone: what any Python relay pays before it writes a byte (it gives nothing back).

With --v1, only the CPU per relayed event of the two OpenAI dialects, side by side on one worker:
/v1/chat/completions (a ``chat.completion.chunk`` per delta) and /v1/responses (typed events with a
``sequence_number``), in alternating rounds of --streams streams each. An event here is one of
Bedrock's, relayed: the Responses dialect writes a few more SSE events per answer around the same
deltas, and that cost is in its figure.
"""

import argparse
import json
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from streams import KEY, MODEL, chat, cpu_seconds, load, start_gunicorn, through_worker, with_boto3  # noqa: E402

from swiftchat_api.emulator import launch  # noqa: E402

SETTLE = 12.0  # past the first trim: heap.GAP after the worker started, a second after the burst


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hold_streams(worker, port, count, one_by_one=False, history_kb=0):
    """Open count silent streams through the worker: (its RSS growth in KB, its CPU seconds) once all are open.

    All at once, the worker serves every request together, and its heap keeps the peak of their
    transient memory for later requests; one by one, the growth is what the open streams hold.
    The growth is read SETTLE seconds after the last stream opened, once the worker has given
    back what it freed (swiftchat_api/heap.py).
    """
    body = json.dumps(chat("[[emulator first_delay_ms=120000]]", history_kb)).encode()
    request = (
        f"POST /api/converse/v2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    time.sleep(0.5)
    before, cpu = rss_kb(worker), cpu_seconds(worker)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.sendall(request)
            sockets.append(sock)
            if one_by_one:
                _first_event(sock)
        for sock in [] if one_by_one else sockets:
            _first_event(sock)
        cpu = cpu_seconds(worker) - cpu
        time.sleep(SETTLE)
        return rss_kb(worker) - before, cpu
    finally:
        for sock in sockets:
            sock.close()


def _first_event(sock):
    if b"messageStart" not in sock.recv(65536):
        sock.recv(65536)


def held(url, count, one_by_one, history_kb=0):
    """Per stream held open, each side on a fresh process (a used heap has room to spare):
    ((worker KB, direct KB), (worker CPU ms, direct CPU ms) to open it on a connection of its own).
    """
    silent = "[[emulator first_delay_ms=120000]]"
    base = with_boto3(url, silent, count, hold=True, one_by_one=one_by_one, history_kb=history_kb)
    master, worker, port = start_gunicorn(url, count)
    try:
        through_worker(worker, port, '[[emulator reply="ok"]]', 20, 5)  # warm up: imports, connections
        grown, cpu = hold_streams(worker, port, count, one_by_one, history_kb)
        return (grown / count, base["rss_growth_kb"] / count), (cpu / count * 1e3, base["cpu"] / count * 1e3)
    finally:
        master.terminate()
        master.wait(30)


V1_ROUTES = ("/v1/chat/completions", "/v1/responses")


def v1_body(route, text):
    """A streamed /v1 body asking for ``text`` (an emulator directive) on ``route``."""
    if route == "/v1/responses":
        return {"model": MODEL, "input": text, "stream": True, "store": False}
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": True}


def v1_per_event(worker, port, text, streams, words, rounds):
    """CPU per relayed Bedrock event of each /v1 dialect: {route: µs}, from alternating rounds on one worker."""
    # Server-sent events a stream writes: chat's role chunk, deltas, finish chunk and [DONE]; the
    # Responses API's created, in_progress, item and part added, deltas, text, part and item done, completed.
    written = {"/v1/chat/completions": words + 3, "/v1/responses": words + 8}
    relayed = words + 4  # Bedrock's messageStart, deltas, contentBlockStop, messageStop, metadata
    cpu, events, failed = dict.fromkeys(V1_ROUTES, 0.0), dict.fromkeys(V1_ROUTES, 0), 0
    headers = {"Authorization": f"Bearer {KEY}"}
    for _ in range(rounds):
        for route in V1_ROUTES:
            before = cpu_seconds(worker)
            result = load(port, route, v1_body(route, text), r"b'\n\n'", written[route], streams, headers)
            cpu[route] += cpu_seconds(worker) - before
            events[route] += result["completed"] * relayed
            failed += result["failed"]
    return {route: cpu[route] / max(events[route], 1) * 1e6 for route in V1_ROUTES}, failed


def main_v1(args):
    """The --v1 comparison alone."""
    paced = f"[[emulator words={args.events} delay_ms={args.delay_ms}]]"
    emulator, url = launch.start()
    master = None
    try:
        master, worker, port = start_gunicorn(url, args.streams)
        for route in V1_ROUTES:  # warm up: imports, connections
            load(
                port,
                route,
                v1_body(route, '[[emulator reply="ok"]]'),
                r"b'\n\n'",
                0,
                5,
                {"Authorization": f"Bearer {KEY}"},
            )
        print(f"one gevent worker; {args.rounds} rounds of {args.streams} streams x {args.events} events "
              f"{args.delay_ms} ms apart, per route")  # fmt: skip
        per_event, failed = v1_per_event(worker, port, paced, args.streams, args.events, args.rounds)
        for route, micros in per_event.items():
            print(f"{'CPU per relayed event ' + route:54}{micros:8.0f} µs")
        chat, responses = per_event["/v1/chat/completions"], per_event["/v1/responses"]
        print(f"/v1/responses over /v1/chat/completions: {responses / chat - 1:+.1%}")
        print(f"failed streams: {failed}")
    finally:
        if master is not None:
            master.terminate()
            master.wait(30)
        emulator.terminate()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--long-held", type=int, default=300, help="streams of 32 KB conversations opened at once")
    parser.add_argument("--v1", action="store_true", help="only /v1/chat/completions beside /v1/responses")
    parser.add_argument("--rounds", type=int, default=4, help="with --v1: alternating rounds per route")
    args = parser.parse_args()
    if args.v1:
        return main_v1(args)
    paced = f"[[emulator words={args.events} delay_ms={args.delay_ms}]]"
    short = '[[emulator reply="ok"]]'
    emulator, url = launch.start()
    master = None
    try:
        print(f"one gevent worker; {args.streams} streams x {args.events} events {args.delay_ms} ms apart")
        (one_by_one, _), (burst, opened) = held(url, args.held, True), held(url, args.held, False)
        (long_burst, _) = held(url, args.long_held, False, history_kb=32)
        master, worker, port = start_gunicorn(url, args.streams)
        through_worker(worker, port, short, 20, 5)

        base = with_boto3(url, paced, args.streams)
        relayed, cpu = through_worker(worker, port, paced, args.streams, args.events + 4)
        per_event = (cpu / max(relayed["events"], 1) * 1e6, base["cpu"] / max(base["events"], 1) * 1e6)
        failed = relayed["failed"]

        per_request = {}
        for history_kb in (0, 32):
            base = with_boto3(url, short, args.streams, history_kb=history_kb)
            answered, cpu = through_worker(worker, port, short, args.streams, 5, history_kb=history_kb)
            per_request[history_kb] = (cpu / args.streams * 1e3, base["cpu"] / max(base["requests"], 1) * 1e3)
            failed += answered["failed"]

        print(f"{'':34}{'worker':>10}{'direct boto3':>14}")
        print(f"{'CPU per relayed event':34}{per_event[0]:8.0f} µs{per_event[1]:12.0f} µs")
        print(f"{'CPU per request':34}{per_request[0][0]:8.2f} ms{per_request[0][1]:12.2f} ms")
        print(f"{'  ... 32 KB chats':34}{per_request[32][0]:8.2f} ms{per_request[32][1]:12.2f} ms")
        print(f"{'RSS per open stream':34}{one_by_one[0]:8.0f} KB{one_by_one[1]:12.0f} KB")
        print(f"{'  ... opened in one burst':34}{burst[0]:8.0f} KB{burst[1]:12.0f} KB")
        print(f"{f'  ... {args.long_held} at once, 32 KB chats':34}{long_burst[0]:8.0f} KB{long_burst[1]:12.0f} KB")
        print(f"{'CPU per request in the burst':34}{opened[0]:8.2f} ms{opened[1]:12.2f} ms")
        print(f"failed streams: {failed}")
    finally:
        if master is not None:
            master.terminate()
            master.wait(30)
        emulator.terminate()


if __name__ == "__main__":
    main()
