"""Open N chat streams at once against one target and report what arrived (a bench helper).

Run by bench/streams.py in its own process, so the load it makes costs the server nothing.
Prints one JSON object: completed, failed, time to first byte per stream, events, wall time.
"""

import argparse
import json
import resource
import time

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402

from gevent.pool import Pool  # noqa: E402


def one_stream(host, port, request, separator, expect, results):
    started = time.perf_counter()
    first = None
    events = 0
    tail = b""
    try:
        sock = socket.create_connection((host, port), timeout=120)
        sock.sendall(request)
        head = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            if first is None:
                first = time.perf_counter() - started
            if head is not None:
                head += data
                if b"\r\n\r\n" not in head:
                    continue
                status_line, data = head.split(b"\r\n", 1)[0], head.split(b"\r\n\r\n", 1)[1]
                head = None
                if b" 200 " not in status_line:
                    raise RuntimeError(status_line.decode())
            window = tail + data
            events += window.count(separator) - tail.count(separator)
            tail = window[-len(separator) + 1 :] if len(separator) > 1 else b""
        sock.close()
        if events != expect:
            raise RuntimeError(f"{events} events instead of {expect}")
        results["completed"] += 1
        results["ttfb"].append(first)
    except Exception as error:  # a failed stream is counted, not fatal
        results["failed"] += 1
        results["errors"][type(error).__name__ + ": " + str(error)[:80]] = 1
    finally:
        results["events"] += events


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--headers", default="{}")
    parser.add_argument("--separator", required=True, help="bytes that end each event, as a Python literal")
    parser.add_argument("--expect", type=int, required=True, help="events each stream must deliver")
    parser.add_argument("--streams", type=int, required=True)
    args = parser.parse_args()
    body = args.body.encode()
    headers = {
        "Host": args.host,
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **json.loads(args.headers),
    }
    request = (
        f"POST {args.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ).encode()
    request += body
    separator = eval(args.separator)  # noqa: S307 - a bytes literal from our own bench script
    results = {"completed": 0, "failed": 0, "events": 0, "ttfb": [], "errors": {}}
    pool = Pool(args.streams)
    started = time.perf_counter()
    for _ in range(args.streams):
        pool.spawn(one_stream, args.host, args.port, request, separator, args.expect, results)
    pool.join()
    results["wall"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results["cpu"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(results))


if __name__ == "__main__":
    main()
