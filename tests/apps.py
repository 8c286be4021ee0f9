"""Read chat streams the way the SwiftChat apps do, to see what their users would see.

Each app generation parses every network read on its own; what a read holds depends on the
platform, not on the app:
- Android (OkHttp under React Native's networking module) reads into an 8 KiB buffer and a
  read never crosses an HTTP chunk, so a chunk bigger than 8 KiB arrives as several reads;
- iOS (URLSession) hands over whatever one socket read brought: the payloads of several
  chunks at once, and a big write in pieces.
Both decode UTF-8 progressively, so a character split between reads survives. See PLATFORMS.

The parsers below are our own re-implementations of the rules in aws-samples/swift-chat,
``react-native/src/api/bedrock-api.ts`` at each release tag (see GENERATIONS). Apart from
the text, each returns what a user would notice: raw pieces shown as they came (``raw``) and
pieces thrown away without a word (``lost``).
"""

import codecs
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conftest import TEST_KEY

RECEIVE_BUFFER = 4 << 20
ERROR = "Error: "


@dataclass
class Screen:
    """What the user sees once the stream has ended."""

    text: str = ""
    reasoning: str = ""
    usage: dict | None = None
    raw: list = field(default_factory=list)
    lost: list = field(default_factory=list)

    @property
    def garbage(self):
        """Raw pieces on screen other than the server's in-band error: JSON fragments, mostly."""
        return [piece for piece in self.raw if not piece.startswith(ERROR)]


def _get(value, *keys):
    """JavaScript's ``value?.a?.b``: None as soon as a step is missing."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _take(screen, event, raw):
    """Add one parsed event to the screen as extractChunkContent does (falsy values add nothing).

    An object with ``detail`` (an error body) is shown as the raw text it came in; 2.0.1 alone
    lacks that rule, which matters only for error bodies, never for a 200 stream.
    """
    text = _get(event, "contentBlockDelta", "delta", "text")
    if _get(event, "detail"):
        text = raw
        screen.raw.append(raw)
    screen.reasoning += _get(event, "contentBlockDelta", "delta", "reasoningContent", "text") or ""
    screen.text += text if isinstance(text, str) else ""
    screen.usage = _get(event, "metadata", "usage") or screen.usage


def _parse(text):
    """JSON.parse, or None when it would throw."""
    try:
        return (json.loads(text),)
    except ValueError:
        return None


USAGE_START = '\n{"inputTokens":'


def app_1x(reads):
    """1.5.0–1.10.0: text as it comes; a read that ends in ``}`` and holds the usage line splits there."""
    screen = Screen()
    for chunk in reads:
        at = chunk.find(USAGE_START)
        if chunk.endswith("}") and at >= 0:
            usage = _parse(chunk[at + 1 :])
            if usage is None:  # JSON.parse throws outside any try: the fetch's catch ends the chat
                screen.text += "\n\nRequest error: SyntaxError"
                return screen
            screen.text += chunk[:at]
            screen.usage = usage[0]
        else:
            screen.text += chunk
    return screen


def app_2_0(reads):
    """2.0.0–2.1.0: parse the read; failing that, split on ``}{`` and drop parts that do not parse."""
    screen = Screen()
    for chunk in reads:
        whole = _parse(chunk)
        if whole is not None:
            _take(screen, whole[0], chunk)
        elif chunk.find("}{") > 0:
            parts = chunk.split("}{")
            for i, part in enumerate(parts):
                part = ("{" if i else "") + part + ("}" if i < len(parts) - 1 else "")
                event = _parse(part)
                if event is None:
                    screen.lost.append(part)
                else:
                    _take(screen, event[0], chunk)
        else:
            screen.raw.append(chunk)
            screen.text += chunk
    return screen


def _balanced(text):
    """2.2.0's splitJsonStrings: brace counting that knows nothing of JSON strings."""
    parts, start, depth = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                parts.append(text[start : i + 1])
    return parts


def app_2_2(reads):
    """2.2.0: parse the read; failing that, parse each brace-balanced part and drop the rest."""
    screen = Screen()
    for chunk in reads:
        whole = _parse(chunk)
        if whole is not None:
            _take(screen, whole[0], chunk)
            continue
        parts = _balanced(chunk)
        if not parts:
            screen.raw.append(chunk)
            screen.text += chunk
            continue
        rest = chunk
        for part in parts:
            rest = rest.replace(part, "", 1)
            event = _parse(part)
            if event is None:
                screen.lost.append(part)
            else:
                _take(screen, event[0], chunk)
        if rest.strip():
            screen.lost.append(rest)
    return screen


def app_2_3(reads):
    """2.3.0–2.4.0: split the read on blank lines; if any part fails, show the whole read raw."""
    screen = Screen()
    for chunk in reads:
        read = Screen()
        for part in filter(None, chunk.split("\n\n")):
            event = _parse(part)
            if event is None:
                # Reasoning and usage parsed so far in this read stay; its text becomes the raw read.
                read.text = chunk
                read.raw.append(chunk)
                break
            _take(read, event[0], chunk)
        screen.text += read.text
        screen.reasoning += read.reasoning
        screen.usage = read.usage or screen.usage
        screen.raw += read.raw
    return screen


def app_2_5(reads):
    """2.5.0–2.7.0 and main: each blank-line-separated part alone; one that fails is shown raw."""
    screen = Screen()
    for chunk in reads:
        for part in chunk.split("\n\n"):
            if not part:
                continue
            event = _parse(part)
            if event is None:
                screen.raw.append(part)
                screen.text += part
            else:
                _take(screen, event[0], part)
    return screen


@dataclass(frozen=True)
class Generation:
    """App releases that call the same route and parse reads the same way."""

    name: str
    tags: str
    route: str
    parse: Callable
    header_timeout: float  # the app aborts when response headers take longer


GENERATIONS = [
    # 1.5.0 and 1.6.0 abort after 20 s without headers, 1.7.0+ after 60 s.
    Generation("1.x", "1.5.0–1.10.0", "/api/converse", app_1x, 20),
    Generation("2.0", "2.0.0, 2.0.1, 2.1.0", "/api/converse/v2", app_2_0, 60),
    Generation("2.2", "2.2.0", "/api/converse/v2", app_2_2, 60),
    Generation("2.3", "2.3.0, 2.4.0", "/api/converse/v3", app_2_3, 60),
    Generation("2.5", "2.5.0, 2.5.1, 2.6.0, 2.7.0, main", "/api/converse/v3", app_2_5, 60),
]


@dataclass(frozen=True)
class Platform:
    """How a platform's HTTP stack cuts the response body into the reads an app parses."""

    name: str
    read_limit: int  # the most one read takes from one HTTP chunk
    spans_chunks: bool  # whether one read may hold the end of a chunk and the next one


PLATFORMS = {
    # OkHttp under React Native's networking module: an 8 KiB buffer, never across a chunk.
    "android": Platform("android", 8 * 1024, spans_chunks=False),
    # URLSession: whatever one socket read brought, several chunks at once; over TLS a write
    # bigger than one 16 KiB record arrives in pieces (loopback alone would hand it over whole).
    "ios": Platform("ios", 16 * 1024, spans_chunks=True),
}


@dataclass
class Response:
    """One chat response as it came off the socket."""

    status: int
    headers: dict
    chunks: list  # the HTTP chunks' payloads, as the server wrote them
    reads: list  # the decoded text of each read the app's parser was handed
    header_seconds: float


class _Chunked:
    """HTTP/1.1 chunked transfer decoding, fed bytes as they arrive."""

    def __init__(self):
        self._buffer = b""
        self._left = None  # bytes still due in the current chunk; None while a size line is due
        self._chunk = b""
        self.chunks = []
        self.done = False

    def feed(self, data):
        """Return the payload in ``data`` as (offset in its chunk, bytes) pieces."""
        self._buffer += data
        pieces = []
        while not self.done:
            if self._left is None:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    break
                self._left = int(self._buffer[:end].split(b";")[0], 16)
                self._buffer = self._buffer[end + 2 :]
                self.done = self._left == 0
                continue
            if self._left:
                piece = self._buffer[: self._left]
                self._buffer = self._buffer[len(piece) :]
                pieces.append((len(self._chunk), piece))
                self._chunk += piece
                self._left -= len(piece)
                if self._left:
                    break
            if len(self._buffer) < 2:
                break
            if self._buffer[:2] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            self._buffer = self._buffer[2:]
            self.chunks.append(self._chunk)
            self._chunk, self._left = b"", None
        return pieces


class _Whole:
    """A body sent with Content-Length (an error answer): one chunk, read until the server closes."""

    def __init__(self):
        self.chunks, self.done, self._seen = [b""], False, 0

    def feed(self, data):
        self.chunks[0] += data
        self._seen += len(data)
        return [(self._seen - len(data), data)] if data else []


def _cut(pieces, platform):
    """The reads one socket read's worth of payload becomes on ``platform``."""
    reads, current = [], b""
    for offset, data in pieces:
        if offset == 0 and current and not platform.spans_chunks:
            reads.append(current)
            current = b""
        while data:
            room = platform.read_limit - offset % platform.read_limit
            current += data[:room]
            offset += len(data[:room])
            data = data[room:]
            if offset % platform.read_limit == 0:
                reads.append(current)
                current = b""
    return [*reads, current] if current else reads


class TimedOut(Exception):
    """The response headers took longer than the app waits."""


@dataclass(frozen=True)
class Link:
    """The client's side of the network: its receive buffer (the window the server sees) and how
    long the app takes before each read (None: it reads at once)."""

    receive_buffer: int = RECEIVE_BUFFER
    pause: Callable | None = None


def slow_link(rng, receive_buffer=4096, longest_pause=0.004):
    """A phone on a poor network: a small window, and reads after random pauses."""
    return Link(receive_buffer, lambda: rng.uniform(0, longest_pause))


def fetch(port, route, body, platform, header_timeout=60, timeout=30, headers=None, link=Link()):
    """POST a chat on a raw socket and cut the response into reads as ``platform`` (a name) would.

    ``headers`` replace the ``Authorization: Bearer <our key>`` the chat routes get (Use Proxy sends
    the provider's key, and ``request_url``).
    """
    platform = PLATFORMS[platform]
    data = json.dumps(body).encode()
    sent = {"Authorization": f"Bearer {TEST_KEY}"} if headers is None else headers
    lines = "".join(f"{name}: {value}\r\n" for name, value in sent.items())
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}"
        f"Content-Type: application/json\r\nAccept: */*\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    started = time.monotonic()
    with socket.socket() as sock:
        # By default a receive buffer bigger than any reply: the server never waits on us, so on
        # loopback a read ends where a write ended; how reads fall then depends on the server's
        # writes alone. A slow link has a small window, and reads come when the app gets to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, link.receive_buffer)
        sock.settimeout(header_timeout)
        sock.connect(("127.0.0.1", port))
        sock.sendall(head.encode() + data)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                more = sock.recv(RECEIVE_BUFFER)
                if not more:
                    raise ConnectionError("connection closed before the response headers")
                received += more
        except TimeoutError:
            raise TimedOut(f"no response headers within {header_timeout} s") from None
        header_seconds = time.monotonic() - started
        sock.settimeout(timeout)
        raw_head, data = received.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        body = _Chunked() if headers.get("transfer-encoding", "").lower() == "chunked" else _Whole()
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        reads = []
        while True:
            reads += [decode(read) for read in _cut(body.feed(data), platform)]
            if body.done:
                break
            if link.pause is not None:
                time.sleep(link.pause())
            data = sock.recv(RECEIVE_BUFFER)
            if not data:
                break
        reads.append(decode(b"", final=True))
    status = int(lines[0].split()[1])
    return Response(status, headers, body.chunks, [r for r in reads if r], header_seconds)


def see(port, generation, platform, body):
    """What a user of ``generation`` on ``platform`` sees for this chat."""
    try:
        response = fetch(port, generation.route, body, platform, header_timeout=generation.header_timeout)
    except TimedOut:
        return Screen(text="\n\nRequest error: Timed out", raw=["Request error: Timed out"])
    return generation.parse(response.reads)


# --- Use Proxy: the apps' OpenAI client ---------------------------------------------------------
#
# With Use Proxy on, a chat with an OpenAI(-compatible) model goes through invokeOpenAIWithCallBack
# in ``react-native/src/api/open-api.ts``: 1.10.0–2.2.0 post to /api/gpt, 2.3.0+ to /api/openai.
# None of them looks at the status: the body is read one network read at a time (the same
# React Native networking as the chat routes, so PLATFORMS cut it the same way), each read goes
# through parseStreamData with whatever the last read held back, and what the chat bubble shows
# is the message of the last callback. The parsers below are our own re-implementations of that
# file at each tag: 1.10.0; 2.0.0 (same in 2.0.1, 2.1.0); 2.2.0; 2.3.0 (same reading in 2.4.0,
# 2.5.0); 2.5.1 (unchanged in 2.6.0, 2.7.0 and main at 3dc507c).

GITHUB_LINK = "https://github.com/aws-samples/swift-chat"
OPENROUTER_TAG = ": OPENROUTER PROCESSING"
UPGRADE = f"Error: Please upgrade your [server API]({GITHUB_LINK}?tab=readme-ov-file#upgrade-api), API "


class _Thrown(Exception):
    """What JSON.parse, or reading a property of null or undefined, throws inside parseStreamData's try."""


def _reject_constant(name):
    raise ValueError(name)  # JSON.parse knows no NaN or Infinity


def _json_parse(text):
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise _Thrown("SyntaxError: JSON Parse error: ") from None


def _truthy(value):
    """JavaScript truthiness (an empty object or list is true)."""
    return value not in (None, False, 0, "") and value == value


def _js_str(value):
    """``'' + value`` in JavaScript, for the values JSON can hold."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join("" if item is None else _js_str(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return format(value, "g") if isinstance(value, float) else str(value)


def _member(value, key):
    """``value.key``: throws on null or undefined, undefined (None) where a primitive or a list has no such key."""
    if value is None:
        raise _Thrown(f"TypeError: cannot read property '{key}' of undefined")
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, (list, str)) and isinstance(key, int):
        return value[key] if key < len(value) else None
    return None


def _optional(value, *keys):
    """``value?.a?.b``."""
    for key in keys:
        if value is None:
            return None
        value = _member(value, key)
    return value


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def _parse_stream_data(chunk, last_chunk, era, screen):
    """parseStreamData of ``era`` ("1.10", "2.2", "2.3" or "2.5.1"; 2.0 reads as 1.10 does).

    Returns what it returns, a dict with some of error, reason, content, dataChunk and usage.
    Parts it skips without a word go to ``screen.lost``.
    """
    data_chunks = (last_chunk + chunk).split("\n\n")
    content = reason = ""
    usage = None
    for data_chunk in data_chunks:
        if not data_chunk.strip():
            continue
        if data_chunk[0] == "\n":
            data_chunk = data_chunk[1:]
        if era == "2.2" and not data_chunk.startswith("data"):
            screen.lost.append(data_chunk)
            continue
        cleaned = data_chunk[len("data: ") :] if data_chunk.startswith("data: ") else data_chunk
        if cleaned.strip() == "[DONE]":
            continue
        if era in ("2.3", "2.5.1") and cleaned.strip() == OPENROUTER_TAG:
            continue
        try:
            parsed = _json_parse(cleaned)
            error = _member(parsed, "error")
            if _truthy(error):
                message = _optional(error, "message")
                if era == "1.10":
                    return {"error": message}  # a falsy message: no error, and nothing else either
                text = ("**Error:** " if era in ("2.3", "2.5.1") else "") + _js_str("" if message is None else message)
                raw = _optional(error, "metadata", "raw")
                if _truthy(raw):
                    text += ":\n" + _js_str(raw)
                return {"error": text}
            detail = _member(parsed, "detail")
            if _truthy(detail):
                return {"error": UPGRADE + _js_str(detail)}
            choice = _member(_member(parsed, "choices"), 0)
            if _truthy(value := _optional(choice, "delta", "content")):
                content += _js_str(value)
            if _truthy(value := _optional(choice, "delta", "reasoning_content")):
                reason += _js_str(value)
            if era in ("2.3", "2.5.1") and _truthy(value := _optional(choice, "delta", "reasoning")):
                reason += _js_str(value)
            if _truthy(found := _member(parsed, "usage")):
                usage = {
                    "inputTokens": _number(_member(found, "prompt_tokens"))
                    - _number(_member(found, "prompt_cache_hit_tokens") or 0),
                    "outputTokens": _member(found, "completion_tokens"),
                    "totalTokens": _member(found, "total_tokens"),
                }
        except _Thrown as thrown:
            held = {"reason": reason, "content": content, "dataChunk": data_chunk, "usage": usage}
            if era == "2.5.1":
                if data_chunk == data_chunks[-1]:
                    return held
                screen.raw.append(chunk)
                return {"error": chunk}
            if era == "2.3":
                if last_chunk:
                    return held
                if reason == "" and content == "":
                    if data_chunk == "data: ":
                        return held
                    screen.raw.append(chunk)
                    return {"error": chunk}
                return held
            if last_chunk:
                screen.raw.append(f"{thrown}{cleaned}")
                return {"error": f"{thrown}{cleaned}"}
            if era == "2.2" and reason == "" and content == "":
                screen.raw.append(chunk)
                return {"error": chunk}
            if reason or content:
                return held
            screen.lost.append(data_chunk)
    return {"reason": reason, "content": content, "usage": usage}


def _openai_client(reads, era, quote_reasoning=False):
    """invokeOpenAIWithCallBack's reading loop; the screen shows the last callback's message.

    ``quote_reasoning``: 1.10.0 puts the reasoning in the message as a ``> `` quote; later
    releases keep it apart. 2.5.1+ end with a "**Parse error**" when the body ends on held text.
    """
    screen = Screen()
    message = last_chunk = ""
    first_reason = first_content = True
    for chunk, done in [*((read, False) for read in reads), ("", True)]:
        parsed = _parse_stream_data(chunk, last_chunk, era, screen)
        if _truthy(parsed.get("error")):
            message += "\n\n" + _js_str(parsed["error"])
            break
        if parsed.get("reason"):
            if quote_reasoning:
                if first_reason:
                    message += "> "
                    first_reason = False
                message += parsed["reason"].replace("\n\n", "\n>\n>")
            else:
                screen.reasoning += parsed["reason"]
        if parsed.get("content"):
            if quote_reasoning and not first_reason and first_content:
                message += "\n\n"
                first_content = False
            message += parsed["content"]
        last_chunk = parsed.get("dataChunk") or ""
        if parsed.get("usage") and _truthy(parsed["usage"]["inputTokens"]):
            screen.usage = parsed["usage"]
        if done:
            if era == "2.5.1" and last_chunk:
                screen.raw.append(last_chunk)
                message += "\n\n**Parse error**:\n" + last_chunk
            break
    screen.text = message
    return screen


def openai_1_10(reads):
    """1.10.0 (/api/gpt): an unparsable part is skipped unless text came before it; reasoning quoted."""
    return _openai_client(reads, "1.10", quote_reasoning=True)


def openai_2_0(reads):
    """2.0.0, 2.0.1, 2.1.0 (/api/gpt): 1.10.0's parseStreamData, reasoning kept apart."""
    return _openai_client(reads, "1.10")


def openai_2_2(reads):
    """2.2.0 (/api/gpt): parts not starting with ``data`` are skipped; an unparsable first part shows the read."""
    return _openai_client(reads, "2.2")


def openai_2_3(reads):
    """2.3.0, 2.4.0, 2.5.0 (/api/openai): an unparsable part with nothing before it shows the whole read."""
    return _openai_client(reads, "2.3")


def openai_2_5_1(reads):
    """2.5.1, 2.6.0, 2.7.0, main (/api/openai): an unparsable last part is held for the next read."""
    return _openai_client(reads, "2.5.1")


PROXY_GENERATIONS = [
    Generation("1.10", "1.10.0", "/api/gpt", openai_1_10, 60),
    Generation("2.0", "2.0.0, 2.0.1, 2.1.0", "/api/gpt", openai_2_0, 60),
    Generation("2.2", "2.2.0", "/api/gpt", openai_2_2, 60),
    Generation("2.3", "2.3.0, 2.4.0, 2.5.0", "/api/openai", openai_2_3, 60),
    Generation("2.5.1", "2.5.1, 2.6.0, 2.7.0, main", "/api/openai", openai_2_5_1, 60),
]


def see_proxied(port, generation, platform, body, headers):
    """What a user of ``generation`` on ``platform`` sees for this Use Proxy chat (``headers``: the app's)."""
    try:
        response = fetch(port, generation.route, body, platform, generation.header_timeout, headers=headers)
    except TimedOut:
        return Screen(text="\n\nRequest error: AbortError", raw=["Request error: AbortError"])
    return generation.parse(response.reads)
