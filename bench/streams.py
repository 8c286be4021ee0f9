"""Benchmark: N concurrent chat streams through ONE gunicorn gevent worker vs. straight to the emulator.

    python bench/streams.py [--streams 1000] [--words 100] [--delay-ms 100]

Both runs stream the same scripted reply in the same session of this script, so the ratios
compare like with like on a shared, noisy machine. Prints completed/failed streams, time to
first byte, aggregate events per second, the worker's peak RSS and its CPU time per event. A
third row, "boto3", reads the same streams with boto3 alone (bench/direct.py) and times each to
its first event: the best a relay built on boto3 could do.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from swiftchat_api.emulator import launch  # noqa: E402

KEY = "bench-key"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            pass
    return found


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def load(port, path, body, separator, expect, streams, headers=None):
    command = [
        sys.executable,
        str(ROOT / "bench" / "loadgen.py"),
        "--port",
        str(port),
        "--path",
        path,
        "--body",
        json.dumps(body),
        "--separator",
        separator,
        "--expect",
        str(expect),
        "--streams",
        str(streams),
        "--headers",
        json.dumps(headers or {}),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def with_boto3(url, text, streams, hold=False, one_by_one=False, history_kb=0):
    """``streams`` streams of ``text`` read with boto3 straight from the emulator (bench/direct.py)."""
    command = [sys.executable, str(ROOT / "bench" / "direct.py"), "--url", url, "--model", MODEL, "--text", text]
    command += ["--streams", str(streams), "--history-kb", str(history_kb)]
    command += (["--hold"] if hold else []) + (["--one-by-one"] if one_by_one else [])
    env = {**os.environ, **launch.environment(url)}
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)


def conversation(text, history_kb=0):
    """Messages ending with a user message, ``text`` (an emulator directive), after about
    ``history_kb`` KB of earlier turns: the apps send a chat's whole history with every message."""
    turn = "lorem ipsum dolor sit amet " * 38  # about 1 KB
    history = [
        {"role": role, "content": [{"text": f"{number} {turn}"}]}
        for number in range(history_kb // 2)
        for role in ("user", "assistant")
    ]
    return [*history, {"role": "user", "content": [{"text": text}]}]


def chat(text, history_kb=0):
    """A chat body: ``text`` (an emulator directive) after ``history_kb`` KB of earlier turns."""
    return {"messages": conversation(text, history_kb), "modelId": MODEL, "region": "us-west-2"}


def through_worker(worker, port, text, streams, expect, key=KEY, history_kb=0):
    """``streams`` v3 streams of ``text`` (after ``history_kb`` KB of earlier turns) through the worker at once:
    (loadgen's result, worker CPU seconds)."""
    before = cpu_seconds(worker)
    body = chat(text, history_kb)
    result = load(port, "/api/converse/v3", body, r"b'\n\n'", expect, streams, {"Authorization": f"Bearer {key}"})
    return result, cpu_seconds(worker) - before


def start_gunicorn(emulator_url, streams):
    port = free_port()
    env = {
        **os.environ,
        **launch.environment(emulator_url),
        "API_KEY": KEY,
        "WEB_CONCURRENCY": "1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WORKER_CONNECTIONS": str(streams + 100),
        "ACCESS_LOG": "",
    }
    master = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = children(master.pid)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if workers:
                return master, workers[0], port
        except OSError:
            pass
        time.sleep(0.1)
    master.kill()
    raise RuntimeError("gunicorn did not start")


def boto3_read(url, text, streams):
    """The same streams read by boto3 alone, timed to their first event, in loadgen's terms for report()."""
    read = with_boto3(url, text, streams)
    return {**read, "completed": len(read["ttfb"]), "failed": streams - len(read["ttfb"]), "errors": {}}


def report(name, result, streams):
    ttfb = result["ttfb"]
    rate = result["events"] / result["wall"]
    print(
        f"{name:<8} completed {result['completed']:>5}/{streams}  failed {result['failed']:>4}  "
        f"ttfb p50 {percentile(ttfb, 0.5) * 1000:7.1f} ms  p99 {percentile(ttfb, 0.99) * 1000:7.1f} ms  "
        f"{rate:9.0f} events/s  wall {result['wall']:.2f} s"
    )
    for error in list(result["errors"])[:3]:
        print(f"         e.g. {error}")
    return rate, percentile(ttfb, 0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--words", type=int, default=100, help="content deltas per stream")
    parser.add_argument("--delay-ms", type=int, default=100, help="emulator pause between deltas")
    args = parser.parse_args()
    text = f"[[emulator words={args.words} delay_ms={args.delay_ms}]]"
    expect = args.words + 4  # messageStart, deltas, contentBlockStop, messageStop, metadata
    emulator, url = launch.start()
    master, worker, port = start_gunicorn(url, args.streams)
    try:
        emulator_port = int(url.rsplit(":", 1)[1])
        upstream = {"messages": conversation(text), "inferenceConfig": {"maxTokens": 4096}}
        # One stream each way first, so neither side is measured while importing or connecting.
        load(emulator_port, f"/model/{MODEL}/converse-stream", upstream, "b':event-type'", expect, 1)
        through_worker(worker, port, text, 1, expect)
        print(f"{args.streams} concurrent streams, {expect} events each, {args.delay_ms} ms between deltas")
        emulator_before = cpu_seconds(emulator.pid)
        direct = load(
            emulator_port, f"/model/{MODEL}/converse-stream", upstream, "b':event-type'", expect, args.streams
        )
        emulator_direct = cpu_seconds(emulator.pid) - emulator_before
        emulator_before = cpu_seconds(emulator.pid)
        proxied, cpu_used = through_worker(worker, port, text, args.streams, expect)
        emulator_proxied = cpu_seconds(emulator.pid) - emulator_before
        read = boto3_read(url, text, args.streams)
        direct_rate, direct_ttfb = report("direct", direct, args.streams)
        _, boto3_ttfb = report("boto3", read, args.streams)
        proxy_rate, proxy_ttfb = report("proxied", proxied, args.streams)
        print(
            f"throughput proxied/direct {proxy_rate / direct_rate:.2f}   ttfb p50 proxied/direct "
            f"{proxy_ttfb / direct_ttfb:.1f}   ttfb p50 proxied - boto3 {(proxy_ttfb - boto3_ttfb) * 1000:.1f} ms"
        )
        print(
            f"worker peak RSS {peak_rss_mb(worker):.0f} MB   worker CPU {cpu_used:.2f} s = "
            f"{cpu_used / max(proxied['events'], 1) * 1e6:.0f} µs per streamed event"
        )
        for name, result, emulator_cpu in (("direct", direct, emulator_direct), ("proxied", proxied, emulator_proxied)):
            events = max(result["events"], 1)
            print(
                f"{name}: emulator {emulator_cpu / events * 1e6:.0f} µs and load generator "
                f"{result['cpu'] / events * 1e6:.0f} µs of CPU per event"
            )
    finally:
        master.terminate()
        master.wait(30)
        emulator.terminate()


if __name__ == "__main__":
    main()
