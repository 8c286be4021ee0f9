"""Property-based fuzzing through real gunicorn (issue 8): whatever arrives, no 5xx, a documented
error shape, no input echoed, answers that match /openapi.json, and a worker that stays healthy.

Budgets are fixed (derandomized Hypothesis, a bounded number of examples) so a run is repeatable
and fits CI on two cores.
"""

import http.client
import json
import random
import string
import threading

import pytest
import schemathesis
from conftest import TEST_KEY, Server, emulator_env
from fuzz_support import (
    API_ROUTES,
    CHAT_ROUTES,
    HOLE,
    MARKER,
    PROVIDER_KEY,
    PROXY_ROUTES,
    READ_AT_MOST,
    Provider,
    exchange,
    metric_series,
    nested,
    positions,
    problems,
    request,
    splice,
    splice_into_string,
    string_positions,
    template,
    worker_boots,
)
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from swiftchat_api import openapi

EXAMPLES = 12
# Every failure is collected and reported; shrinking would only spend the budget again.
NO_SHRINKING = [Phase.explicit, Phase.generate]
# Left unmarked: values a valid body needs exactly as generated, and the model id, which Bedrock's own
# refusals may name (it is the model's name, not the user's text).
_CLOSED = {"region", "format", "role", "modelId"}


@pytest.fixture(scope="module")
def fuzzed(emulator, moto_url):
    """A one-worker server of its own, so a worker that dies here is seen and harms no other test."""
    provider = Provider()
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "BEDROCK_MAX_ATTEMPTS": "1",
            "SWIFTCHAT_MAX_BODY_MB": "2",
            "CLIENT_ROLE_ARN": "arn:aws:iam::123456789012:role/swiftchat-app",
            "AWS_ENDPOINT_URL_STS": moto_url,
            # Nothing here may leave the machine: the release lookup goes to a closed port, the relay to a fake.
            "UPGRADE_TAGS_URL": "http://127.0.0.1:9/tags",
            "OPENAI_GPT_URL": provider.url,
            "OPENAI_PROXY_HOSTS": provider.authority,
        }
    )
    live.provider_url = provider.url
    yield live
    live.stop()
    provider.close()


def _caller(route, fuzzed):
    """(key sent as Bearer, extra headers) for ``route``: the relay routes carry the provider's key instead."""
    if route in PROXY_ROUTES:
        return PROVIDER_KEY, {"x-api-key": TEST_KEY, "request_url": fuzzed.provider_url}
    return TEST_KEY, {}


@pytest.fixture(autouse=True)
def still_healthy(fuzzed):
    """After every test the one worker is the same process and answers /healthz."""
    yield
    status, _, body, _ = request(fuzzed.port, "/healthz", method="GET", key=None, timeout=10)
    assert status == 200, body
    assert worker_boots(fuzzed.output()) == 1, "the worker died and was replaced"


# The document leaves content blocks open on purpose (new Bedrock block types pass through), so a
# schema-valid chat body may still be one Bedrock's validation refuses: the documented 400 "Error: ...".
FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path-regex": "^/api/converse",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]
                    }
                },
            },
            # The same for /v1: message order, tool call ids and model families are checked in code.
            {
                "include-path-regex": "^/v1/",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "429"]}
                },
            },
        ]
    }
)


@pytest.fixture(scope="module")
def api_schema(fuzzed):
    """The server's own OpenAPI document, loaded from the live server."""
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{fuzzed.port}/openapi.json", config=FUZZ_CONFIG)


def _marked(value, key=None):
    """``value`` with MARKER added to every free-text string (prefixed to base64, which stays base64)."""
    if isinstance(value, dict):
        return {name: _marked(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_marked(item, key) for item in value]
    if isinstance(value, str) and key not in _CLOSED:
        return MARKER + value if key == "bytes" else value + MARKER
    return value


# Read from the same function that serves /openapi.json; the test itself fuzzes what the live server serves.
OPERATIONS = [(method.upper(), path) for path, item in openapi.document()["paths"].items() for method in item]


def _cases(operation):
    if operation.method.upper() == "GET":
        return operation.as_strategy(GenerationMode.POSITIVE)
    return st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_openapi_operation(api_schema, fuzzed, method, path):
    """Generated requests, valid and not: answers match the document, errors are well formed, nothing echoed."""
    failures = {}  # what went wrong -> one request that shows it

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=NO_SHRINKING,
    )
    @given(case=_cases(api_schema[path][method]))
    def one(case):
        if isinstance(case.body, (dict, list)):
            case.body = _marked(case.body)
        sent = _short(json.dumps(case.body, default=str)) if case.body is not NOT_SET else "(no body)"
        key, extra = _caller(path, fuzzed)
        # Our key always (ignored_auth checks the rest); a generated request_url is kept, to be judged.
        auth = {"Authorization": f"Bearer {key}", **{k: v for k, v in extra.items() if k not in (case.headers or {})}}
        response = case.call(headers=auth, timeout=20)
        answer = f"{response.status_code} {_short(response.content, 240)}"
        try:
            case.validate_response(response, headers=auth, transport_kwargs={"timeout": 20})
        except (Failure, FailureGroup) as error:  # schemathesis' own checks, response schema conformance among them
            for each in error.exceptions if isinstance(error, FailureGroup) else [error]:
                if each.title != _SSE_ITEMS:
                    why = " ".join(each.message.split("Hint:")[0].split())
                    failures.setdefault(f"{each.code} {each.title}: {answer} ({_short(why, 200)})", sent)
        if path.startswith("/api/"):
            headers = {name.lower(): _text(value) for name, value in response.headers.items()}
            streamed = path in CHAT_ROUTES and response.status_code == 200
            # A 200 chat answer is the model's reply, and the emulator's default reply quotes the prompt.
            for problem in problems(path, response.status_code, headers, response.content, echo_allowed=streamed):
                failures.setdefault(problem[:160], sent)

    one()
    if failures:
        pytest.fail("\n".join(f"- {what}\n    e.g. {example}" for what, example in failures.items()), pytrace=False)


# schemathesis reads a text/event-stream schema as the schema of each event (OpenAPI 3.2's itemSchema);
# in this OpenAPI 3.0 document it describes the whole body, a string. Not a disagreement with the server.
_SSE_ITEMS = "SSE event violates schema"


def _short(text, most=160):
    text = text if isinstance(text, str) else text.decode("utf-8", "replace")
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= most else text[:most] + "..."


def _text(value):
    return ", ".join(value) if isinstance(value, list) else value


def _chat(directive):
    return {**template("/api/converse/v3"), "messages": [{"role": "user", "content": [{"text": directive}]}]}


# Answers random bodies seldom reach, each checked against the document:
# (path, body, how to send it, the status it answers with).
KNOWN_ANSWERS = {
    "chat stream": ("/api/converse/v3", _chat("[[emulator words=3]]"), {}, 200),
    "chat, Bedrock validation refusal": ("/api/converse/v2", _chat("[[emulator error=validation]]"), {}, 400),
    "chat, Bedrock access refusal": ("/api/converse", _chat("[[emulator error=access]]"), {}, 403),
    "chat, unknown model": ("/api/converse/v3", _chat("[[emulator error=notfound]]"), {}, 404),
    "chat, throttled": ("/api/converse/v3", _chat("[[emulator error=throttling]]"), {}, 429),
    "chat, attachment with invalid base64": (
        "/api/converse/v3",
        {**_chat("see"), "messages": [{"role": "user", "content": [{"image": {"source": {"bytes": "!"}}}]}]},
        {},
        422,
    ),
    "chat, no key": ("/api/converse/v3", _chat("hi"), {"key": None}, 403),
    "chat, wrong key": ("/api/converse/v3", _chat("hi"), {"key": "not-the-key"}, 401),
    "chat, body over the limit": ("/api/converse/v3", {**_chat("hi"), "pad": "x" * (3 << 20)}, {}, 413),
    "image": ("/api/image", template("/api/image"), {}, 200),
    "image the model cannot draw": ("/api/image", {**template("/api/image"), "width": 333}, {}, 200),
    "catalogue": ("/api/models", {"region": "us-west-2"}, {}, 200),
    "empty catalogue": ("/api/models", {"region": "af-south-1"}, {}, 200),
    "catalogue Bedrock refused": ("/api/models", {"region": "me-south-1"}, {}, 200),
    "upgrade": ("/api/upgrade", {"os": "android", "version": "2.1.0"}, {}, 200),
    "token": ("/api/token", {"region": "us-west-2"}, {}, 200),
}


@pytest.mark.parametrize("answer", KNOWN_ANSWERS)
def test_known_answers_match_the_document(api_schema, fuzzed, answer):
    """Every answer shape the README names has its status, content type and body described by the document."""
    path, body, how, status = KNOWN_ANSWERS[answer]
    key = how.get("key", TEST_KEY)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    case = api_schema[path]["POST"].Case(body=body, headers=headers, media_type="application/json")
    response = case.call(timeout=20)
    try:
        case.validate_response(
            response,
            checks=[response_schema_conformance, status_code_conformance, content_type_conformance],
            headers=headers,
        )
    except (Failure, FailureGroup) as error:
        failures = error.exceptions if isinstance(error, FailureGroup) else [error]
        pytest.fail(
            f"{response.status_code} {_short(response.content, 200)}: "
            + "; ".join(f"{each.code} {each.title}" for each in failures),
            pytrace=False,
        )
    assert response.status_code == status, _short(response.content, 200)


# --- Bodies no schema describes, sent raw to every /api route -------------------------------------------------------

ROUTES = [*API_ROUTES, *PROXY_ROUTES]
REGION_ROUTES = [route for route in ROUTES if "region" in template(route)]
HOSTILE = {
    "array nested 100k deep": nested(100_000, "array"),
    "object nested 100k deep": nested(100_000, "object"),
    "5,000-digit integer": "9" * 5000,
    "1e999": "1e999",
    "-1e999": "-1e999",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
}


def _judge(fuzzed, route, sent):
    """Send raw bytes to ``route``; the problems with its answer, each naming what was sent."""
    key, headers = _caller(route, fuzzed)
    status, received, body, length = request(fuzzed.port, route, sent, headers=headers, key=key)
    return [f"{what} (sent {_short(sent, 120)})" for what in problems(route, status, received, body, length)]


def _fail_on(found):
    if found:
        pytest.fail("\n".join(dict.fromkeys(found)), pytrace=False)


def test_every_api_route_is_fuzzed(fuzzed):
    """Every /api route the live document lists is fuzzed here, and every route fuzzed here is served."""
    spec = json.loads(request(fuzzed.port, "/openapi.json", method="GET", key=None)[2])
    assert {path for path in spec["paths"] if path.startswith("/api/")} <= set(ROUTES)
    for route in ROUTES:
        assert request(fuzzed.port, route, b"{}", key=None)[0] != 404, route


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("route", ROUTES)
def test_hostile_json_in_every_position(fuzzed, route, kind):
    """Deep nesting, a 5,000-digit integer and non-finite numbers, as the body and as every value in it."""
    body = template(route)
    found = []
    for path in [(), *positions(body)]:
        found += _judge(fuzzed, route, splice(body, path, HOSTILE[kind]))
    _fail_on(found)


@pytest.mark.parametrize("route", ROUTES)
def test_invalid_utf8_in_every_string(fuzzed, route):
    """Bytes that are not UTF-8 (a stray byte, an overlong form, an encoded surrogate) in each string."""
    body = template(route)
    found = _judge(fuzzed, route, b"\xff\xfe" + json.dumps(body).encode())
    for path in string_positions(body):
        for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"):
            found += _judge(fuzzed, route, splice_into_string(body, path, bad))
    _fail_on(found)


@pytest.mark.parametrize("route", ROUTES)
def test_lone_surrogate_in_every_string(fuzzed, route):
    """A lone surrogate escape ("\\ud800", "\\udfff") after, or instead of, each string's text."""
    body = template(route)
    found = []
    for path in string_positions(body):
        for escape in ("\\ud800", "\\udfff"):
            found += _judge(fuzzed, route, splice_into_string(body, path, escape))
            found += _judge(fuzzed, route, splice(body, path, f'"{escape}"'))
    _fail_on(found)


# Lower-case letters only, so it fits inside an otherwise well-formed region name.
REGION_MARKER = "zqfuzzmarkregion"


@pytest.mark.parametrize(
    "region",
    [
        "us-west-2\n",
        "us-west-2\r\n",
        " us-west-2",
        f"us-{REGION_MARKER * 4}x-2",
        f"us-{REGION_MARKER}-{'9' * 3}",
        f"us-{REGION_MARKER}-\u0662",
    ],
    ids=["trailing newline", "trailing CRLF", "leading space", "70 characters", "3-digit number", "Arabic-Indic digit"],
)
@pytest.mark.parametrize("route", REGION_ROUTES)
def test_region_that_is_no_aws_region(fuzzed, route, region):
    """A region that merely resembles one is refused as a 422; its value and the server's signature never return."""
    status, headers, body, length = request(fuzzed.port, route, json.dumps({**template(route), "region": region}))
    found = problems(route, status, headers, body, length)
    assert status == 422 and not found, f"{status} {found} {_short(body, 300)}"
    for leak in (REGION_MARKER.encode(), b"AWS4-HMAC-SHA256", b"Signature=", b"Credential="):
        assert leak not in body and leak.decode() not in str(headers), leak


def _in_background(port, route, sent):
    """Start sending ``sent``; return (a thread, the dict its answer lands in, an event set once the body is out)."""
    answer, body_sent = {}, threading.Event()

    def run():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.putrequest("POST", route)
            for name, value in (
                ("Authorization", f"Bearer {TEST_KEY}"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(sent))),
            ):
                connection.putheader(name, value)
            connection.endheaders()
            connection.send(sent)
            body_sent.set()
            response = connection.getresponse()
            data = response.read(READ_AT_MOST)
            headers = {name.lower(): value for name, value in response.getheaders()}
            answer.update(status=response.status, headers=headers, body=data)
            answer["length"] = max(int(headers.get("content-length", len(data))), len(data))
        except OSError as error:
            answer["error"] = repr(error)
        finally:
            body_sent.set()
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answer, body_sent


MANY = 250_000


def _many(route, shape):
    body = template(route)
    if shape == "empty content blocks":
        body["messages"][0]["content"] = [{}] * MANY
    elif shape == "empty messages":
        body["messages"] = [{}] * MANY
    else:
        body["refImages"] = [{}] * MANY
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("route", "shape"),
    [
        *((route, "empty content blocks") for route in CHAT_ROUTES),
        ("/api/converse/v3", "empty messages"),
        ("/api/image", "empty reference images"),
    ],
)
def test_many_empty_items_get_a_small_answer_while_the_worker_serves_others(fuzzed, route, shape):
    """A megabyte of ``{},`` (250,000 objects) is refused with a small answer, and /healthz answers meanwhile."""
    thread, answer, body_sent = _in_background(fuzzed.port, route, _many(route, shape))
    assert body_sent.wait(30)
    # The worker is reading or validating that body now; one that freezes on it leaves /healthz waiting.
    health = request(fuzzed.port, "/healthz", method="GET", key=None, timeout=5)
    thread.join(60)
    assert health[0] == 200
    assert "status" in answer, answer
    found = problems(route, answer["status"], answer["headers"], answer["body"], answer["length"])
    assert 400 <= answer["status"] < 500 and not found, f"{answer['status']} {found} {_short(answer['body'], 300)}"


def _tool_turns(depth, kind):
    """A conversation whose tool call input and tool result JSON are both nested ``depth`` deep."""
    body = template("/api/converse/v3")
    body["messages"] += [
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": HOLE}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": HOLE}]}}]},
    ]
    return json.dumps(body).replace(json.dumps(HOLE), nested(depth, kind)).encode()


@pytest.mark.parametrize("route", CHAT_ROUTES)
@settings(
    max_examples=6,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=NO_SHRINKING,
)
@given(depth=st.integers(min_value=600, max_value=1500), kind=st.sampled_from(["object", "array", "mixed"]))
@example(depth=950, kind="object")
def test_deeply_nested_tool_input(fuzzed, route, depth, kind):
    """A tool call whose input (and the tool's JSON result) nests about a thousand levels deep."""
    _fail_on(_judge(fuzzed, route, _tool_turns(depth, kind)))


@st.composite
def _hostile_edits(draw, body):
    """One hostile edit of ``body``: junk bytes in a string, or an odd JSON value in any position."""
    strings = string_positions(body)
    every = [(), *positions(body)]
    edit = draw(st.sampled_from(["bytes", "escapes", "nesting", "digits", "number"]))
    if edit == "bytes":
        junk = draw(st.binary(min_size=1, max_size=6).filter(_not_utf8))
        return splice_into_string(body, draw(st.sampled_from(strings)), junk)
    if edit == "escapes":
        pieces = st.sampled_from(["\\ud800", "\\udbff", "\\udc00", "\\u0000", "\\u202e", "\\ud83d\\ude00", "a"])
        text = "".join(draw(st.lists(pieces, min_size=1, max_size=8)))
        return splice(body, draw(st.sampled_from(strings)), f'"{text}{MARKER}"')
    if edit == "nesting":
        depth = draw(st.integers(min_value=65, max_value=120_000))
        return splice(
            body, draw(st.sampled_from(every)), nested(depth, draw(st.sampled_from(["array", "object", "mixed"])))
        )
    if edit == "digits":
        digits = draw(st.integers(min_value=4_300, max_value=20_000))
        return splice(body, draw(st.sampled_from(every)), draw(st.sampled_from(["", "-"])) + "7" * digits)
    exponent = draw(st.integers(min_value=309, max_value=100_000))
    number = draw(st.sampled_from([f"1e{exponent}", f"-2.5E+{exponent}", f"1e-{exponent}", "NaN", "-Infinity"]))
    return splice(body, draw(st.sampled_from(every)), number)


def _not_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@pytest.mark.parametrize("route", ROUTES)
def test_random_hostile_bodies(fuzzed, route):
    """Hypothesis picks the edit and where it goes; a fixed, derandomized budget per route."""
    found = []

    @settings(
        max_examples=12,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=NO_SHRINKING,
    )
    @given(sent=_hostile_edits(template(route)))
    def one(sent):
        found.extend(_judge(fuzzed, route, sent))

    one()
    _fail_on(found)


def _scrape(port):
    status, _, body, _ = request(port, "/metrics", method="GET")
    assert status == 200, body
    return metric_series(body.decode())


def test_junk_methods_do_not_grow_the_metrics(fuzzed):
    """500 requests with made-up method names add (next to) nothing to /metrics: the series stay bounded."""
    alphabet = string.ascii_uppercase + string.digits + "!$%&'*+-.^_`|~"
    pick = random.Random(8)
    junk = ["".join(pick.choices(alphabet, k=pick.randint(3, 20))) for _ in range(501)]
    paths = ["/api/converse/v3", "/healthz", "/no/such/path"]
    _scrape(fuzzed.port)
    for path in paths:  # the first junk request to each path may add its series once
        request(fuzzed.port, path, b"{}", method=junk[0])
    before = _scrape(fuzzed.port)
    connection = http.client.HTTPConnection("127.0.0.1", fuzzed.port, timeout=10)
    statuses, found = set(), []
    for number, method in enumerate(junk[1:]):
        path = paths[number % len(paths)]
        connection.request(method, path, body=b"{}")
        response = connection.getresponse()
        answer = response.read()
        statuses.add(response.status)
        headers = {name.lower(): value for name, value in response.getheaders()}
        found += problems(path, response.status, headers, answer)
        if response.will_close:
            connection.close()
    connection.close()
    _fail_on(found)
    after = _scrape(fuzzed.port)
    grown = sorted(after - before)
    assert len(grown) <= 3, f"{len(grown)} new series, e.g. {grown[:4]}"
    assert statuses <= {400, 404, 405, 501}, statuses


def _head(line, *headers, body=b""):
    """A raw request: ``line``, a Host and this server's key, then ``headers``."""
    fields = [b"Host: x", b"Authorization: Bearer " + TEST_KEY.encode(), *headers]
    return line + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n" + body


_MARK = MARKER.encode()
MALFORMED = {
    "not a request line": b"GARBAGE " + _MARK + b"\r\n\r\n",
    "lower-case method": _head(b"post /api/models HTTP/1.1"),
    "URI of 9,000 characters": _head(b"GET /" + _MARK * 750 + b" HTTP/1.1"),
    "header of 9,000 characters": _head(b"GET /healthz HTTP/1.1", b"X-A: " + _MARK * 750),
    "200 headers": _head(b"GET /healthz HTTP/1.1", *(b"X-%d: 1" % number for number in range(200))),
    "header name with a space": _head(b"GET /healthz HTTP/1.1", b"Bad Name: " + _MARK),
    "control byte in a header": _head(b"GET /healthz HTTP/1.1", b"X-A: " + _MARK + b"\x01"),
    "HTTP/9.9": _head(b"GET /healthz HTTP/9.9"),
    "Content-Length not a number": _head(b"POST /api/models HTTP/1.1", b"Content-Length: " + _MARK),
    "two Content-Lengths": _head(b"POST /api/models HTTP/1.1", b"Content-Length: 2", b"Content-Length: 3", body=b"{}"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_http_gets_a_short_json_answer(fuzzed, name):
    """What gunicorn itself refuses is answered like everything else: a 4xx {"detail": ...}, nothing echoed."""
    status, headers, body, length = exchange(fuzzed.port, MALFORMED[name])
    found = problems("/", status, headers, body, length)
    assert 400 <= status < 500 and not found, f"{status} {found} {_short(body, 300)}"


@settings(max_examples=25, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    line=st.binary(min_size=1, max_size=60).filter(lambda line: b"\n" not in line),
    value=st.binary(max_size=40).filter(lambda value: b"\n" not in value),
)
def test_junk_request_lines_get_a_documented_answer(fuzzed, line, value):
    """Random bytes as the request line and a header value: never a 5xx, never HTML, never an echo."""
    data = _head(line + b" " + _MARK, b"X-Junk: " + value + _MARK)
    status, headers, body, length = exchange(fuzzed.port, data)
    found = problems("/", status, headers, body, length)
    assert not found, f"{status} {found} {_short(body, 300)}"
