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


def fetch(port, route, body, platform, header_timeout=60, timeout=30):
    """POST a chat on a raw socket and cut the response into reads as ``platform`` (a name) would."""
    platform = PLATFORMS[platform]
    data = json.dumps(body).encode()
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TEST_KEY}\r\n"
        f"Content-Type: application/json\r\nAccept: */*\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    started = time.monotonic()
    with socket.socket() as sock:
        # A receive buffer bigger than any reply: the server never waits on us, so on loopback a
        # read ends where a write ended; how reads fall then depends on the server's writes alone.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
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
