"""What users of every SwiftChat app generation see, reading our streams over real HTTP.

Each test runs the apps' own parsing rules (tests/apps.py) on Android-style and iOS-style
reads of a live gunicorn server, and asserts the user sees exactly the reply the emulator
produced. A last group checks the write rule those apps depend on at the HTTP level.
"""

import json
import shlex
from concurrent.futures import ThreadPoolExecutor

import apps
import pytest
from conftest import TEST_KEY, Server, chat, emulator_env

from swiftchat_api.emulator.script import read_script

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
STREAM_ERROR = (
    "Error: An error occurred (modelStreamErrorException) when calling the ConverseStream operation: "
    "The emulator failed the stream as asked."
)
MAX_WRITE = 4096
BUSY_STREAMS = 250
WINDOW_S = 0.5  # how long slow_server waits for the first event before it sends headers
SLOW_MS = 4000  # past that window, and past the default one too

COMBOS = [(generation, platform) for generation in apps.GENERATIONS for platform in apps.PLATFORMS]
COMBO_IDS = [f"{generation.name}-{platform}" for generation, platform in COMBOS]
each_app = pytest.mark.parametrize(("generation", "platform"), COMBOS, ids=COMBO_IDS)


def ask(directive, **options):
    """A chat whose last message steers the emulator; values are quoted so any text survives."""
    steer = " ".join([directive, *(f"{key}={shlex.quote(value)}" for key, value in options.items())])
    return chat(f"[[emulator {steer}]]", model=MODEL)


def reply_of(body):
    """The whole reply the emulator produces for this chat."""
    return read_script(MODEL, body).reply


def _around(text, at):
    return repr(text[max(0, at - 60) : at + 60])


def assert_sees(screen, expected, usage=True):
    """The user sees ``expected`` and nothing else: no fragments, no silently dropped text."""
    if screen.garbage:
        pytest.fail(f"raw stream on screen ({len(screen.garbage)} pieces), e.g. {screen.garbage[0][:160]!r}")
    if screen.lost:
        pytest.fail(f"text silently dropped ({len(screen.lost)} pieces), e.g. {screen.lost[0][:160]!r}")
    if screen.text != expected:
        at = next((i for i, (a, b) in enumerate(zip(screen.text, expected, strict=False)) if a != b), None)
        at = min(len(screen.text), len(expected)) if at is None else at
        pytest.fail(
            f"screen shows {len(screen.text)} chars, the reply has {len(expected)}; first difference at {at}: "
            f"screen {_around(screen.text, at)} vs reply {_around(expected, at)}"
        )
    if usage and not (screen.usage or {}).get("outputTokens"):
        pytest.fail("token usage was not shown")


@each_app
def test_a_burst_of_thousands_of_events_reads_whole(server, generation, platform):
    body = ask("words=3000")
    assert_sees(apps.see(server.port, generation, platform, body), reply_of(body))


@pytest.fixture(scope="module")
def busy_worker(server):
    """Hundreds of paced streams at once through the one worker, spread over every app and platform.

    Paced so that a stream's events pile up only while the worker is busy with the others; at
    this load a stream's backlog has reached 10 KB when the relay wrote it as one chunk.
    """
    body = ask("words=300 delay_ms=5")
    jobs = [COMBOS[i % len(COMBOS)] for i in range(BUSY_STREAMS)]

    def one(job):
        generation, platform = job
        return job, apps.fetch(server.port, generation.route, body, platform)

    with ThreadPoolExecutor(max_workers=BUSY_STREAMS) as pool:
        return body, list(pool.map(one, jobs))


@each_app
def test_every_stream_of_a_busy_worker_reads_whole(busy_worker, generation, platform):
    body, responses = busy_worker
    seen = [generation.parse(r.reads) for job, r in responses if job == (generation, platform)]
    assert len(seen) == BUSY_STREAMS // len(COMBOS)
    for screen in seen:
        assert_sees(screen, reply_of(body))


def test_a_busy_worker_writes_whole_events_within_4_kib(busy_worker):
    _, responses = busy_worker
    for (generation, _), response in responses:
        assert_whole_events_within_4_kib(generation.route, response.chunks)


ERROR_CASES = {
    # Bedrock fails between two paced deltas: the reads before the error hold one event each.
    "paced": "delay_ms=30 fail_after=6",
    # Bedrock fails right behind a burst. Only Android's reads follow the server's writes; an iOS
    # read may hold the events and the error together whatever the server does, so iOS is left out.
    "burst": "fail_after=6",
}


@pytest.mark.parametrize(
    ("case", "generation", "platform"),
    [
        pytest.param(case, generation, platform, id=f"{case}-{generation.name}-{platform}")
        for case in ERROR_CASES
        for generation, platform in COMBOS
        if case == "paced" or platform == "android"
    ],
)
def test_a_mid_stream_error_shows_the_text_so_far_and_the_error(server, case, generation, platform):
    body = ask(ERROR_CASES[case], reply="one two three four five six seven eight")
    screen = apps.see(server.port, generation, platform, body)
    # messageStart, five deltas, then Bedrock's exception frame.
    assert_sees(screen, "one two three four five" + STREAM_ERROR, usage=False)


# The emulator drops trailing whitespace (it streams whitespace-led words), so neither ends with any.
CODE = 'function f(a) {\n  return {"x": {"y": a}};}{}\n}{ const o = {};\n\tif (o) { f({}) }\n' * 3
CODE = CODE.rstrip()
CJK_EMOJI = ("你好，世界！ こんにちは、元気ですか？ 안녕하세요 🌏🚀 👩‍💻 café ☕️ 🇯🇵 数学公式 ∑∫√ 𠮷野家 " * 40).rstrip()


@each_app
def test_code_with_closing_and_opening_braces_reads_whole(server, generation, platform):
    body = ask("chunk=2", reply=CODE)
    assert_sees(apps.see(server.port, generation, platform, body), CODE)


@each_app
def test_cjk_and_emoji_read_whole(server, generation, platform):
    body = ask("", reply=CJK_EMOJI)
    assert_sees(apps.see(server.port, generation, platform, body), CJK_EMOJI)


@pytest.fixture(scope="module")
def slow_server(emulator):
    """A server whose first-event window is short, so a test can outlast it in seconds."""
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "SWIFTCHAT_KEEPALIVE_SECONDS": "0.3",
            "BEDROCK_MAX_ATTEMPTS": "1",
            "SWIFTCHAT_FIRST_EVENT_WINDOW": str(WINDOW_S),
        }
    )
    yield live
    live.stop()


SLOW_CASES = {
    # Bedrock accepts the call, then its first event comes past the window (a long prompt).
    "slow-first-event": f"start_delay_ms={SLOW_MS}",
    # The stream opens at once, then the model thinks before its first delta.
    "slow-first-delta": f"first_delay_ms={SLOW_MS}",
}


@pytest.fixture(scope="module")
def slow_first_events(slow_server):
    """Every app and platform, each slow case, all at once (the waits overlap)."""
    jobs = [(case, generation, platform) for case in SLOW_CASES for generation, platform in COMBOS]

    def one(job):
        case, generation, platform = job
        body = ask(SLOW_CASES[case], reply="Worth the wait.")
        return job, apps.fetch(slow_server.port, generation.route, body, platform, generation.header_timeout)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return dict(pool.map(one, jobs))


@pytest.mark.parametrize("case", SLOW_CASES)
@each_app
def test_a_first_event_after_the_header_window_reaches_the_user(slow_first_events, case, generation, platform):
    response = slow_first_events[(case, generation, platform)]
    waited = response.header_seconds
    assert waited < SLOW_MS / 1000 - 1, f"the response headers waited {waited:.1f} s, for the first event"
    assert_sees(generation.parse(response.reads), "Worth the wait.")


# The write rule, checked on the chunks themselves.


def _v1_events(chunk, first):
    """How many whole v1 events a chunk holds; fails if one is cut (every word after the first starts with a space)."""
    text, _, usage = chunk.decode().partition("\n{")
    assert first or not text or text.startswith(" "), f"chunk starts inside a word: {text[:40]!r}"
    if usage:
        json.loads("{" + usage)
    return len(text.split(" ")) - (not first) + bool(usage)


def _v2_events(chunk, first):
    text, at, count, decoder = chunk.decode(), 0, 0, json.JSONDecoder()
    while at < len(text):
        _, at = decoder.raw_decode(text, at)  # raises if an event is cut
        count += 1
    return count


def _v3_events(chunk, first):
    assert chunk.endswith(b"\n\n"), f"chunk ends inside an event: {chunk[-40:]!r}"
    parts = [part for part in chunk.split(b"\n\n") if part]
    for part in parts:
        json.loads(part)
    return len(parts)


WHOLE_EVENTS = {"/api/converse": _v1_events, "/api/converse/v2": _v2_events, "/api/converse/v3": _v3_events}


def assert_whole_events_within_4_kib(route, chunks):
    """Every write holds whole events; one over 4 KiB holds a single event."""
    whole_events = WHOLE_EVENTS[route]
    events = [whole_events(chunk, i == 0) for i, chunk in enumerate(chunks)]
    too_big = [len(c) for c, n in zip(chunks, events, strict=True) if len(c) > MAX_WRITE and n > 1]
    assert not too_big, f"{len(too_big)} writes over {MAX_WRITE} B hold several events (largest {max(too_big)} B)"


@pytest.mark.parametrize("route", WHOLE_EVENTS)
def test_each_write_holds_whole_events_within_4_kib(server, route):
    response = apps.fetch(server.port, route, ask("words=3000"), "android")
    assert response.status == 200
    assert_whole_events_within_4_kib(route, response.chunks)


@pytest.mark.parametrize("route", WHOLE_EVENTS)
def test_the_in_band_error_is_a_write_of_its_own(server, route):
    response = apps.fetch(server.port, route, ask("words=20 fail_after=6"), "android")
    assert response.status == 200
    *events, error = response.chunks
    assert error.decode() == STREAM_ERROR, f"the error shares a write: {error[-200:]!r}"
    for i, chunk in enumerate(events):
        WHOLE_EVENTS[route](chunk, i == 0)


def test_a_keep_alive_is_a_write_of_its_own(server):
    response = apps.fetch(server.port, "/api/converse/v3", ask("first_delay_ms=1000 words=5"), "android")
    keepalives = [c for c in response.chunks if not c.strip(b"\n")]
    assert keepalives and all(c == b"\n\n" for c in keepalives)
    assert all(c.startswith(b"{") for c in response.chunks if c.strip(b"\n"))


# A body the apps can send but nothing can use is answered as text, which every generation shows.

PICTURE = {"image": {"format": "png", "source": {"bytes": "aGVsbG8="}}}
PDF = {"document": {"format": "pdf", "name": "notes", "source": {"bytes": "aGVsbG8="}}}


@each_app
def test_an_attachment_with_invalid_base64_shows_a_readable_error(server, generation, platform):
    body = ask("", reply="never")
    body["messages"][0]["content"].append({"image": {"format": "png", "source": {"bytes": "not base64!"}}})
    assert_sees(
        apps.see(server.port, generation, platform, body), "Error: Invalid base64 data in the image block.", usage=False
    )


@pytest.mark.parametrize("attachment", [PICTURE, PDF], ids=["image", "document"])
@each_app
def test_bedrock_refusing_an_attachment_shows_a_readable_error(server, generation, platform, attachment):
    body = ask("error=validation")
    body["messages"][0]["content"].append(attachment)
    expected = (
        "Error: An error occurred (ValidationException) when calling the ConverseStream operation "
        "(reached max retries: 0): The emulator refused the call (validation)."
    )
    assert_sees(apps.see(server.port, generation, platform, body), expected, usage=False)
