"""Benchmark: the input tokens a chat reads from Bedrock's prompt cache, SWIFTCHAT_PROMPT_CACHE off and auto.

    python bench/prompt_cache.py [--turns 20] [--document-words 2000] [--reply-words 150] [--route /api/converse]

One run plays the same chat twice, each time through a real gunicorn worker (one gevent worker)
against the built-in emulator, whose prompt cache plays Bedrock's (emulator/cache.py): first with
the setting off, then with it on. The chat is resent whole with every message, as the apps and
OpenAI clients do: a document in the first message, then per turn a question and the model's
reply (no system prompt: the emulator counts one only in a request with cache points). Per turn it
prints the tokens billed as plain input, read from the cache and written to it, and at the end
what the input would cost at Claude's rates relative to plain input (a cache read 0.1, a write
1.25). Tokens are the emulator's: a word a token.
"""

import argparse
import http.client
import json
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from streams import KEY, start_gunicorn  # noqa: E402

from swiftchat_api.emulator import launch  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"  # caches from 1,024 tokens
READ_RATE, WRITE_RATE = 0.1, 1.25  # Claude's cache prices, per plain input token


def words(count, salt):
    return " ".join(f"{salt}{i}" for i in range(count))


def ask(port, route, model, history):
    """Bedrock's usage of one chat message through the worker, on the apps' route or /v1."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    if route == "/v1/chat/completions":
        messages = [{"role": m["role"], "content": m["content"][0]["text"]} for m in history]
        body = {"model": model, "messages": messages}
    else:
        body = {"modelId": model, "region": "us-west-2", "messages": history}
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    connection.request("POST", route, body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{route} answered {response.status}: {data[:300]!r}")
    if route == "/v1/chat/completions":
        answer = json.loads(data)
        usage = answer["usage"]
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        # OpenAI's prompt_tokens hold the cached ones; what was written is not told apart.
        return answer["choices"][0]["message"]["content"], {"inputTokens": usage["prompt_tokens"] - cached,
                                                             "cacheReadInputTokens": cached}  # fmt: skip
    text, _, usage = data.rpartition(b"\n")
    return text.decode(), json.loads(usage)


def play(port, route, turns, document_words, reply_words):
    """The usage of each message of one chat of ``turns`` messages."""
    salt = uuid.uuid4().hex[:8]  # a chat no earlier run left in the emulator's cache
    document, history, usages = words(document_words, f"d{salt}-"), [], []
    for turn in range(turns):
        question = f"Question {turn}: {words(30, f'q{turn}{salt}-')} [[emulator words={reply_words}]]"
        question = f"{document}\n\n{question}" if turn == 0 else question
        history.append({"role": "user", "content": [{"text": question}]})
        reply, usage = ask(port, route, MODEL, history)
        usages.append(usage)
        history.append({"role": "assistant", "content": [{"text": reply}]})
    return usages


def run(url, mode, args):
    os.environ["SWIFTCHAT_PROMPT_CACHE"] = mode
    master, _worker, port = start_gunicorn(url, streams=10)
    try:
        return play(port, args.route, args.turns, args.document_words, args.reply_words)
    finally:
        master.terminate()
        master.wait(30)


def cost(usages):
    plain = sum(u.get("inputTokens", 0) for u in usages)
    read = sum(u.get("cacheReadInputTokens", 0) for u in usages)
    written = sum(u.get("cacheWriteInputTokens", 0) for u in usages)
    return plain, read, written, plain + READ_RATE * read + WRITE_RATE * written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--document-words", type=int, default=2000)
    parser.add_argument("--reply-words", type=int, default=150)
    parser.add_argument("--route", default="/api/converse", choices=["/api/converse", "/v1/chat/completions"])
    args = parser.parse_args()
    emulator, url = launch.start()
    try:
        results = {mode: run(url, mode, args) for mode in ("off", "auto")}
    finally:
        emulator.terminate()
        emulator.wait(10)
    print(f"{args.turns}-turn chat on {args.route}, {MODEL}: a document of {args.document_words} words "
          f"first, questions of 31, replies of {args.reply_words}")  # fmt: skip
    print(f"{'turn':>4}  {'off: input':>10}  {'auto: input':>11}  {'read':>7}  {'written':>7}")
    for turn, (off, auto) in enumerate(zip(results["off"], results["auto"], strict=True), 1):
        print(
            f"{turn:>4}  {off.get('inputTokens', 0):>10}  {auto.get('inputTokens', 0):>11}  "
            f"{auto.get('cacheReadInputTokens', 0):>7}  {auto.get('cacheWriteInputTokens', 0):>7}"
        )
    for mode in ("off", "auto"):
        plain, read, written, priced = cost(results[mode])
        print(
            f"{mode:>4}: plain input {plain:,}, read from cache {read:,}, written {written:,}; "
            f"input priced as {priced:,.0f} plain tokens"
        )
    off_price, auto_price = cost(results["off"])[3], cost(results["auto"])[3]
    print(f"auto / off, input price: {auto_price / off_price:.2f}")


if __name__ == "__main__":
    main()
