""" "Use Proxy" (/api/gpt, /api/openai) and our gunicorn worker, end to end through real gunicorn.

A stand-in OpenAI-compatible provider runs on 127.0.0.1 (plain http, and https with a
certificate signed by a CA made here, trusted through OPENAI_PROXY_CA_BUNDLE). A tripwire
port records any connection at all: targets the server must refuse point at it.
"""

import datetime
import json
import random
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apps
import pytest
from conftest import TEST_KEY, Server, free_port

from swiftchat_api.config import Config, ConfigError
from swiftchat_api.exceptions import ApiError
from swiftchat_api.services.proxy import PATH_REFUSED, REFUSED, Proxy, Timeouts

PROVIDER_KEY = "sk-provider-0123456789"


def _chat(scenario, tag, **extra):
    return {"model": scenario, "messages": [{"role": "user", "content": "Hi"}], "stream": True, "tag": tag, **extra}


def _event(n):
    return b'data: {"choices": [{"delta": {"content": "word%d "}}]}\n\n' % n


def _peer_closed(connection, seconds):
    """True once the other end has closed ``connection`` (within ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([connection], [], [], 0.05)
        if readable:
            try:
                if connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
    return False


class _Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        record = {
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": body,
            "state": "open",
            "events": 0,
        }
        request = json.loads(body)
        self.server.stand_in.records[request.get("tag")] = record
        try:
            record["state"] = getattr(self, "_" + request["model"].replace("-", "_"))(record)
        except OSError:
            record["state"] = "cancelled"

    def _start(self, status=200, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _chunk(self, data, record):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        record["events"] += 1

    def _end(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream(self, record):
        self._start()
        for n in range(3):
            self._chunk(_event(n), record)
        self._chunk(b"data: [DONE]\n\n", record)
        self._end()
        return "completed"

    def _held(self, record):
        """One event, then nothing until the test says so."""
        self._start()
        self._chunk(_event(0), record)
        if not self.server.stand_in.release.wait(10):
            return "never released"
        self._chunk(_event(1), record)
        self._end()
        return "completed"

    def _slow(self, record):
        self._start()
        for n in range(200):
            if _peer_closed(self.connection, 0.05):
                return "cancelled"
            self._chunk(_event(n), record)
        self._end()
        return "completed"

    def _flood(self, record):
        """Far more than any socket buffer holds, as fast as it will go."""
        self._start()
        piece = b"data: " + b"x" * 65536 + b"\n\n"
        for _ in range(800):
            self._chunk(piece, record)
        self._end()
        return "completed"

    def _late(self, record):
        """No status line for a long while."""
        return "cancelled" if _peer_closed(self.connection, 4) else "timed out"

    def _silent(self, record):
        self._start()
        self._chunk(_event(0), record)
        return "cancelled" if _peer_closed(self.connection, 4) else "timed out"

    def _cut(self, record):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(_event(0))
        self.wfile.flush()
        self.close_connection = True
        return "cut"

    def _unauthorized(self, record):
        body = b'{"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return "completed"

    def _throttled(self, record):
        self._start(429, [("Retry-After", "7"), ("Set-Cookie", "provider=secret")])
        self._chunk(b'{"error": {"message": "Rate limit reached"}}', record)
        self._end()
        return "completed"

    def _redirect(self, record):
        self.send_response(302)
        self.send_header("Location", self.server.stand_in.redirect_to)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return "completed"


class StandIn:
    """A provider on 127.0.0.1 that remembers every request by its body's ``tag`` and counts connections."""

    def __init__(self, tls=None):
        self.records = {}
        self.connections = 0
        self.release = threading.Event()
        self.redirect_to = ""
        stand_in = self

        class Counting(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, address = super().get_request()
                stand_in.connections += 1
                if tls is not None:
                    sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, address

        self._server = Counting(("127.0.0.1", 0), _Provider)
        self._server.stand_in = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def record(self, tag, until=lambda record: record["state"] != "open", seconds=10):
        """The request tagged ``tag``, once ``until`` holds for it (or the time is up)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            record = self.records.get(tag)
            if record is not None and until(record):
                return record
            time.sleep(0.02)
        return self.records.get(tag)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class Tripwire:
    """A listening port that only counts who connects to it."""

    def __init__(self):
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def stop(self):
        self._sock.close()


def _certificates(directory):
    """A CA (its PEM file) and a server context whose certificate the CA signed for the name localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, key, issuer_key, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swiftchat-api test CA")])
    ca = build(ca_name, ca_name, ca_key, ca_key, ca=True)
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name, key, ca_key, ca=False)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """The stand-in providers (http and https), a tripwire and a port nobody listens on."""
    directory = tmp_path_factory.mktemp("proxy")
    ca_file, context = _certificates(directory)
    plain, secure, tripwire = StandIn(), StandIn(tls=context), Tripwire()
    plain.redirect_to = f"http://127.0.0.1:{tripwire.port}/v1/chat/completions"
    yield {
        "plain": plain,
        "secure": secure,
        "tripwire": tripwire,
        "closed": free_port(),
        "ca": str(ca_file),
    }
    for stand_in in (plain, secure, tripwire):
        stand_in.stop()


def _env(net, **extra):
    plain, secure = net["plain"].port, net["secure"].port
    hosts = [
        f"127.0.0.1:{plain}",  # plain http: host:port listed explicitly
        f"localhost:{secure}",  # https by name; the name resolves to 127.0.0.1 ...
        f"127.0.0.1:{secure}",  # ... which may be used because that address is listed too
        f"localhost:{net['tripwire'].port}",  # a listed name whose loopback address is not listed
        f"127.0.0.1:{net['closed']}",  # a provider that is down
        UNRESOLVED,  # a provider whose name does not resolve (.invalid never does)
    ]
    return {
        "API_KEY": TEST_KEY,
        "OPENAI_GPT_URL": f"http://127.0.0.1:{plain}/v1/chat/completions",
        "OPENAI_PROXY_HOSTS": ",".join(hosts),
        "OPENAI_PROXY_CA_BUNDLE": net["ca"],
        "OPENAI_PROXY_FIRST_BYTE_TIMEOUT": "2",
        "OPENAI_PROXY_IDLE_TIMEOUT": "2",
        "SWIFTCHAT_MAX_BODY_MB": "1",
        # These stand-ins are on loopback, which would make x-api-key required: here, as apps before main send it.
        "OPENAI_PROXY_REQUIRE_KEY": "off",
        **extra,
    }


@pytest.fixture(scope="module")
def live(net):
    server = Server(_env(net))
    yield server
    server.stop()


UNRESOLVED = "nowhere.invalid"


def _failure(reason):
    """A failure before the provider's answer, as the README tells it: an OpenAI error event, then the plain line."""
    message = json.dumps(reason[:1].upper() + reason[1:])
    return b'data: {"error": {"message": %s, "type": "proxy_error"}}\n\nError: %s' % (message.encode(), reason.encode())


def _post(server, path, body, headers=None, raw=None):
    """One request with only the given headers (no key of ours unless they carry one); (status, headers, body)."""
    return server.request(path, body, headers, key=None, raw=raw)


def _open(server, path, body, headers):
    """Send a request on a raw socket; return the socket with the answer unread."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    return sock


def _read_until(sock, marker, seconds=10):
    received = b""
    deadline = time.monotonic() + seconds
    while marker not in received and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _openai(net, name="plain", path="/v1/chat/completions"):
    port = net[name].port if name in ("plain", "secure") else net[name]
    host = "localhost" if name == "secure" else "127.0.0.1"
    scheme = "https" if name == "secure" else "http"
    return {"request_url": f"{scheme}://{host}:{port}{path}", "Authorization": f"Bearer {PROVIDER_KEY}"}


EXPECTED_STREAM = b"".join(_event(n) for n in range(3)) + b"data: [DONE]\n\n"


# --- relayed ---


def test_openai_relays_the_providers_stream_byte_for_byte(live, net):
    status, headers, body = _post(live, "/api/openai", _chat("stream", "relay"), _openai(net))
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert body == EXPECTED_STREAM
    assert net["plain"].record("relay")["path"] == "/v1/chat/completions"


def test_gpt_goes_to_openai_gpt_url_whatever_request_url_says(live, net):
    before = net["tripwire"].connections
    headers = {"Authorization": f"Bearer {PROVIDER_KEY}", "request_url": f"http://127.0.0.1:{net['tripwire'].port}/"}
    status, _, body = _post(live, "/api/gpt", _chat("stream", "gpt"), headers)
    assert (status, body) == (200, EXPECTED_STREAM)
    assert net["plain"].record("gpt")["path"] == "/v1/chat/completions"
    assert net["tripwire"].connections == before


def test_https_provider_is_verified_against_its_name_and_relayed(live, net):
    status, _, body = _post(live, "/api/openai", _chat("stream", "tls"), _openai(net, "secure"))
    assert (status, body) == (200, EXPECTED_STREAM)
    assert net["secure"].record("tls")["headers"]["host"] == f"localhost:{net['secure'].port}"


def test_first_event_reaches_the_app_before_the_provider_finishes(live, net):
    net["plain"].release.clear()
    sock = _open(live, "/api/openai", _chat("held", "held"), _openai(net))
    try:
        received = _read_until(sock, b"word0")
        assert b"word0" in received
        assert net["plain"].record("held", seconds=0)["state"] == "open"  # still holding back the rest
        net["plain"].release.set()
        received += _read_until(sock, b"\r\n0\r\n\r\n")
        assert b"word1" in received
    finally:
        sock.close()
    assert net["plain"].record("held")["state"] == "completed"


def test_provider_key_and_its_two_headers_are_forwarded_and_nothing_else(live, net):
    headers = {
        **_openai(net),
        "HTTP-Referer": "https://github.com/aws-samples/swift-chat",
        "X-Title": "SwiftChat",
        "x-api-key": TEST_KEY,
        "Cookie": "session=private",
        "X-Forwarded-For": "203.0.113.9",
        "User-Agent": "SwiftChat/2.7",
        "X-Request-ID": "caller-id",
    }
    raw = b'{"model": "stream",  "messages": [{"role": "user", "content": "Hi \\u00e9"}], "tag": "fwd", "extra": [1]}'
    status, _, _ = _post(live, "/api/openai", None, headers, raw=raw)
    assert status == 200
    record = net["plain"].record("fwd")
    assert record["body"] == raw  # sent on unchanged
    seen = record["headers"]
    assert seen["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert seen["http-referer"] == "https://github.com/aws-samples/swift-chat"
    assert seen["x-title"] == "SwiftChat"
    assert seen["host"] == f"127.0.0.1:{net['plain'].port}"
    assert seen["user-agent"] == "swiftchat-api"
    assert set(seen) == {
        "host",
        "authorization",
        "http-referer",
        "x-title",
        "content-type",
        "accept",
        "accept-encoding",
        "user-agent",
        "content-length",
    }


def test_providers_error_status_and_body_are_passed_through(live, net):
    status, headers, body = _post(live, "/api/openai", _chat("unauthorized", "401"), _openai(net))
    assert status == 401
    assert body == b'{"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}'
    status, headers, body = _post(live, "/api/openai", _chat("throttled", "429"), _openai(net))
    assert (status, headers["retry-after"], body) == (429, "7", b'{"error": {"message": "Rate limit reached"}}')
    assert "set-cookie" not in headers  # only Retry-After of the provider's headers comes back


def test_works_without_authorization_for_keyless_providers(live, net):
    headers = {"request_url": _openai(net)["request_url"]}
    status, _, body = _post(live, "/api/openai", _chat("stream", "keyless"), headers)
    assert (status, body) == (200, EXPECTED_STREAM)
    assert "authorization" not in net["plain"].record("keyless")["headers"]


# --- refused before anything is contacted ---


def _refused(server, net, path, body, headers, status=403):
    stand_ins = (net["plain"], net["secure"], net["tripwire"])
    before = [stand_in.connections for stand_in in stand_ins]
    answer = _post(server, path, body, headers)
    assert answer[0] == status, answer
    assert answer[1]["content-type"] == "application/json"
    assert [stand_in.connections for stand_in in stand_ins] == before, "a refused request reached a provider"
    return json.loads(answer[2])["detail"]


def _hostile_urls(net):
    trip, plain = net["tripwire"].port, net["plain"].port
    return [
        None,  # no request_url at all
        "",
        "not a url",
        f"ftp://127.0.0.1:{plain}/",
        f"//127.0.0.1:{plain}/v1/chat/completions",
        f"http://127.0.0.1:{trip}/v1/chat/completions",  # http to a host:port not listed
        f"https://127.0.0.1:{trip}/v1/chat/completions",
        f"http://localhost:{trip}/v1/chat/completions",  # listed name, but https only... and
        f"https://localhost:{trip}/v1/chat/completions",  # ...its loopback address is not listed
        f"http://[::1]:{plain}/",
        f"http://[::ffff:127.0.0.1]:{trip}/",
        f"http://2130706433:{trip}/",
        f"http://127.1:{trip}/",
        f"http://0x7f.0.0.1:{trip}/",
        f"http://0177.0.0.1:{trip}/",
        f"http://127.0.0.1.:{plain}/",
        f"http://user:pw@127.0.0.1:{plain}/",
        f"http://127.0.0.1:{plain}@127.0.0.1:{trip}/",
        f"http://127.0.0.1:{trip}#@127.0.0.1:{plain}/",
        f"http://127.0.0.1:{trip}\\@127.0.0.1:{plain}/",
        f"http://127.0.0.1:{plain}/v1/chat completions",
        f"http://127.0.0.1:{plain}/\tx",
        f"http://127.0.0.1:{plain}:{trip}/",
        f"http://127.0.0.1:0{trip}0/",
        "https://api.openai.com.evil.example/v1/chat/completions",
        "https://ａpi.openai.com/v1/chat/completions",
        "https://api.openai.com:8443/v1/chat/completions",  # not listed here at all
        f"http://127.0.0.1:{plain}/" + "a" * 5000,
    ]


def test_no_request_url_or_a_hostile_one_is_refused_without_connecting(live, net):
    for url in _hostile_urls(net):
        headers = {"Authorization": f"Bearer {PROVIDER_KEY}"}
        if url is not None:
            headers["request_url"] = url.encode("utf-8").decode("latin-1")
        assert _refused(live, net, "/api/openai", _chat("stream", "hostile"), headers) == REFUSED, url
    assert "hostile" not in net["plain"].records


def test_redirect_is_not_followed(live, net):
    before = net["tripwire"].connections
    status, headers, body = _post(live, "/api/openai", _chat("redirect", "redirect"), _openai(net))
    assert status == 502
    assert headers["content-type"].startswith("text/event-stream")
    assert body == _failure("the provider answered with a redirect (302); this server follows none.")
    assert "location" not in headers
    time.sleep(0.3)
    assert net["tripwire"].connections == before


def test_oversize_not_json_or_shapeless_body_is_refused_without_connecting(live, net):
    huge = _chat("stream", "huge", padding="x" * (1024 * 1024 + 1))
    detail = _refused(live, net, "/api/openai", huge, _openai(net), status=413)
    assert detail == "The request body is larger than 1 MB."
    for raw in (b"{not json", b"[1, 2]", b'{"messages": []}', b'{"model": 1, "messages": "no"}'):
        stand_ins = (net["plain"], net["secure"])
        before = [stand_in.connections for stand_in in stand_ins]
        status, _, body = _post(live, "/api/gpt", None, _openai(net), raw=raw)
        assert status == 422, raw
        assert isinstance(json.loads(body)["detail"], list)
        assert [stand_in.connections for stand_in in stand_ins] == before


def test_x_api_key_when_sent_must_be_this_servers_key(live, net):
    headers = {**_openai(net), "x-api-key": "not-the-key"}
    assert _refused(live, net, "/api/openai", _chat("stream", "xkey"), headers, status=401) == "Invalid API Key"
    assert _refused(live, net, "/api/gpt", _chat("stream", "xkey"), headers, status=401) == "Invalid API Key"
    status, _, body = _post(live, "/api/openai", _chat("stream", "xkey-ok"), {**_openai(net), "x-api-key": TEST_KEY})
    assert (status, body) == (200, EXPECTED_STREAM)


def test_this_servers_key_is_never_sent_to_a_provider(live, net):
    headers = {**_openai(net), "Authorization": f"Bearer {TEST_KEY}"}
    detail = _refused(live, net, "/api/openai", _chat("stream", "ours"), headers)
    assert "never sent on" in detail
    assert TEST_KEY not in detail


# --- failures ---


def test_provider_down_is_an_in_band_error(live, net):
    status, headers, body = _post(live, "/api/openai", _chat("stream", "down"), _openai(net, "closed"))
    assert status == 200
    assert body == (
        b'data: {"error": {"message": "The provider refused the connection", "type": "proxy_error"}}\n\n'
        b"Error: the provider refused the connection"
    )
    assert headers["content-type"].startswith("text/event-stream")


def test_provider_that_never_answers_is_given_up_and_disconnected(live, net):
    started = time.monotonic()
    status, _, body = _post(live, "/api/openai", _chat("late", "late"), _openai(net))
    assert (status, body) == (200, _failure("the provider did not answer within 2 s"))
    assert time.monotonic() - started < 4
    assert net["plain"].record("late")["state"] == "cancelled"


def test_silent_provider_is_cut_off_in_band(live, net):
    status, _, body = _post(live, "/api/openai", _chat("silent", "silent"), _openai(net))
    assert status == 200
    assert body == _event(0) + b"Error: the provider sent nothing for 2 s; the answer was cut off"
    assert net["plain"].record("silent")["state"] == "cancelled"


@pytest.fixture(scope="module")
def bounded(net):
    """A server whose relays may last 1 s and carry 100 KB in all."""
    server = Server(_env(net, OPENAI_PROXY_MAX_SECONDS="1", OPENAI_PROXY_MAX_MB="0.1"))
    yield server
    server.stop()


def test_an_answer_longer_than_the_bound_is_cut_off_in_band(bounded, net):
    status, _, body = _post(bounded, "/api/openai", _chat("slow", "too-long"), _openai(net))
    assert status == 200
    assert body.startswith(_event(0))
    assert body.endswith(b"Error: the provider's answer went past 1 s; it was cut off")
    assert net["plain"].record("too-long")["state"] == "cancelled"


def test_an_answer_larger_than_the_bound_is_cut_off_in_band(bounded, net):
    status, _, body = _post(bounded, "/api/openai", _chat("flood", "too-big"), _openai(net))
    assert status == 200
    assert body.endswith(b"Error: the provider's answer went past 104,857 bytes; it was cut off")
    assert len(body) < 104_857 + 65_600 + 100  # up to the read that passed the bound, not the 50 MB sent
    assert net["plain"].record("too-big")["state"] == "cancelled"


def test_answer_broken_off_is_said_in_band(live, net):
    status, _, body = _post(live, "/api/openai", _chat("cut", "cut"), _openai(net))
    assert status == 200
    assert body == _event(0) + b"Error: the connection to the provider broke off mid-answer"


def test_app_walking_away_closes_the_providers_connection(live, net):
    sock = _open(live, "/api/openai", _chat("slow", "walk"), _openai(net))
    assert b"word1" in _read_until(sock, b"word1")
    sock.close()
    record = net["plain"].record("walk")
    assert record["state"] == "cancelled"
    assert record["events"] < 40, f"the provider kept streaming for {record['events']} events"


def test_a_pipelined_byte_then_a_hang_up_during_a_silence_closes_the_providers_connection(net):
    patient = Server(_env(net, OPENAI_PROXY_IDLE_TIMEOUT="30"))  # only the hang-up can end this silence
    try:
        sock = _open(patient, "/api/openai", _chat("silent", "pipelined-walk"), _openai(net))
        assert b"word0" in _read_until(sock, b"word0")
        sock.sendall(b"G")  # the start of a next request: the socket stays readable from now on ...
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_WR)  # ... and then the app is gone
        sock.close()
        assert net["plain"].record("pipelined-walk")["state"] == "cancelled"  # the stand-in waits 4 s at most
    finally:
        patient.stop()


def test_app_walking_away_before_the_provider_answers_closes_its_connection(live, net):
    sock = _open(live, "/api/openai", _chat("late", "walk-early"), _openai(net))
    net["plain"].record("walk-early", until=lambda record: True)  # the provider has the request
    sock.close()
    started = time.monotonic()
    assert net["plain"].record("walk-early")["state"] == "cancelled"
    assert time.monotonic() - started < 1.5  # at once, not at the 2 s first-byte time-out


# --- what each app generation shows (tests/apps.py reads as their open-api.ts does) ---


@pytest.fixture(scope="module")
def gpt_unreachable(net):
    """A server, by failure, whose OPENAI_GPT_URL cannot be reached: started when first asked for."""
    urls = {
        "refused": f"http://127.0.0.1:{net['closed']}/v1/chat/completions",
        "unresolved": f"https://{UNRESOLVED}/v1/chat/completions",
    }
    servers = {}

    def server(failure):
        if failure not in servers:
            servers[failure] = Server(_env(net, OPENAI_GPT_URL=urls[failure]))
        return servers[failure]

    yield server
    for started in servers.values():
        started.stop()


PROXY_COMBOS = [(generation, platform) for generation in apps.PROXY_GENERATIONS for platform in apps.PLATFORMS]
each_proxy_app = pytest.mark.parametrize(
    ("generation", "platform"), PROXY_COMBOS, ids=[f"{g.name}-{p}" for g, p in PROXY_COMBOS]
)
# How each generation's chat bubble shows an OpenAI error event's message.
SHOWN = {"1.10": "\n\n{}", "2.0": "\n\n{}", "2.2": "\n\n{}", "2.3": "\n\n**Error:** {}", "2.5.1": "\n\n**Error:** {}"}


def _as_the_app_sends(net, generation, target):
    """The headers ``generation`` sends with Use Proxy on: the provider's key, and on /api/openai its URL."""
    headers = {"Authorization": f"Bearer {PROVIDER_KEY}"}
    if generation.route == "/api/openai":
        headers["request_url"] = target
    return headers


def _app_chat(scenario, tag):
    return _chat(scenario, tag, stream_options={"include_usage": True})


def _assert_shows(screen, expected):
    assert not screen.garbage, f"raw text on screen: {screen.garbage}"
    assert not screen.lost, f"text skipped without a word: {screen.lost}"
    assert screen.text in expected, f"the bubble shows {screen.text!r}"


@each_proxy_app
def test_every_app_shows_the_providers_reply(live, net, generation, platform):
    headers = _as_the_app_sends(net, generation, _openai(net)["request_url"])
    screen = apps.see_proxied(live.port, generation, platform, _app_chat("stream", "app-relay"), headers)
    _assert_shows(screen, ["word0 word1 word2 "])


UNREACHABLE = {
    # /api/openai names its provider in request_url; /api/gpt's is the server's OPENAI_GPT_URL.
    "refused": "the provider refused the connection",
    "unresolved": "the provider's host name could not be resolved",
    "redirect": "the provider answered with a redirect (302); this server follows none.",
}


@pytest.mark.parametrize("failure", list(UNREACHABLE))
@each_proxy_app
def test_every_app_shows_why_the_provider_cannot_be_reached(live, gpt_unreachable, net, generation, platform, failure):
    server, scenario = live, "stream"
    if failure == "redirect":  # the stand-in behind both routes redirects
        scenario, target = "redirect", _openai(net)["request_url"]
    else:
        target = (
            _openai(net, "closed")["request_url"]
            if failure == "refused"
            else f"https://{UNRESOLVED}/v1/chat/completions"
        )
        if generation.route == "/api/gpt":
            server = gpt_unreachable(failure)
    headers = _as_the_app_sends(net, generation, target)
    screen = apps.see_proxied(server.port, generation, platform, _app_chat(scenario, "app-" + failure), headers)
    reason = UNREACHABLE[failure]
    told = [reason, reason + " in time"] if failure == "unresolved" else [reason]  # a slow resolver times out
    _assert_shows(screen, [SHOWN[generation.name].format(text[:1].upper() + text[1:]) for text in told])


@pytest.fixture(scope="module")
def strict(net):
    """A server that trusts only the system's CAs, relays nothing for /api/gpt and lets go of non-readers fast."""
    server = Server(_env(net, OPENAI_PROXY_CA_BUNDLE="", OPENAI_GPT_URL="none", SWIFTCHAT_CLIENT_TIMEOUT="1"))
    yield server
    server.stop()


def test_untrusted_certificate_is_refused(strict, net):
    status, _, body = _post(strict, "/api/openai", _chat("stream", "untrusted"), _openai(net, "secure"))
    assert status == 200
    assert body.startswith(b'data: {"error": {"message": "The provider\'s TLS certificate was not accepted')
    assert b"\n\nError: the provider's TLS certificate was not accepted" in body
    assert "untrusted" not in net["secure"].records


def test_app_that_stops_reading_is_let_go_and_the_provider_disconnected(strict, net):
    sock = _open(strict, "/api/openai", _chat("flood", "flood"), _openai(net))
    try:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # then the app reads nothing more
        record = net["plain"].record("flood", seconds=15)
        assert record["state"] == "cancelled"
        assert record["events"] < 800
    finally:
        sock.close()


def test_gpt_route_can_be_switched_off(strict, net):
    assert _refused(strict, net, "/api/gpt", _chat("stream", "off"), _openai(net)) == REFUSED


# --- our gunicorn worker ---


def test_request_url_is_admitted_while_other_underscore_headers_stay_dropped(live, net):
    headers = {**_openai(net), "x_api_key": "wrong-key-that-would-be-a-401", "x_request_id": "from-underscore"}
    status, answer_headers, body = _post(live, "/api/openai", _chat("stream", "underscore"), headers)
    assert (status, body) == (200, EXPECTED_STREAM)  # request_url arrived, x_api_key did not
    assert answer_headers["x-request-id"] != "from-underscore"
    _, answer_headers, _ = _post(live, "/api/openai", _chat("stream", "hyphen"), {**headers, "X-Request-ID": "hyphen"})
    assert answer_headers["x-request-id"] == "hyphen"


def _raw(server, data):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


REQUEST = "POST /api/openai HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"


@pytest.mark.parametrize(
    ("data", "status", "detail"),
    [
        (b"SECRET-GARBAGE\r\n\r\n", 400, "The request line is not valid HTTP."),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "The request line is too long."),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"s" * 9000 + b"\r\n\r\n", 431, None),
        (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(120)) + b"\r\n", 431, None),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad SECRET: 1\r\n\r\n", 400, "A request header name is not valid."),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "The HTTP version is not supported."),
        (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: SECRET, chunked\r\n\r\n", 501, None),
        ((REQUEST + "request_url: a\r\nRequest-Url: b\r\n\r\n").encode(), 400, None),
        ((REQUEST + "request_url: a\r\nrequest_url: b\r\n\r\n").encode(), 400, None),
    ],
    ids=[
        "bad-request-line",
        "uri-too-long",
        "header-too-large",
        "too-many-headers",
        "bad-header-name",
        "bad-version",
        "unknown-transfer-coding",
        "request-url-twice-spelt-two-ways",
        "request-url-twice",
    ],
)
def test_gunicorns_own_errors_are_json(live, data, status, detail):
    answer_status, headers, body = _raw(live, data)
    assert answer_status == status
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    answer = json.loads(body)
    assert list(answer) == ["detail"]
    if detail:
        assert answer["detail"] == detail
    assert b"SECRET" not in body and b"sss" not in body


def test_worker_is_still_healthy_after_all_that(live):
    status, _, body = _raw(live, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


# --- nothing private in the log ---


def test_log_never_holds_the_provider_key_our_key_or_the_chat(live, net):
    """After everything above and a relayed, a refused and a failed chat, the live server's log holds no secret."""
    words = "Zq-relay-private-words-3"
    chat = {**_chat("stream", "private"), "messages": [{"role": "user", "content": words}]}
    headers = {**_openai(net), "x-api-key": TEST_KEY}
    status, _, body = _post(live, "/api/openai", chat, headers)
    assert (status, body) == (200, EXPECTED_STREAM)
    assert net["plain"].record("private")["state"] == "completed"
    refused = {**headers, "request_url": f"http://127.0.0.1:{net['tripwire'].port}/v1/chat/completions"}
    assert _post(live, "/api/openai", {**chat, "tag": "private-refused"}, refused)[0] == 403
    failed = {**chat, "model": "unauthorized", "tag": "private-401"}
    assert _post(live, "/api/openai", failed, headers)[0] == 401
    time.sleep(0.2)  # let the worker's last lines reach the log file
    log = live.output()
    assert "/api/openai" in log  # the requests were logged: there was a log to leak into
    for private in (PROVIDER_KEY, TEST_KEY, words):
        assert private not in log


# --- settings ---


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_PROXY_HOSTS", "https://api.openai.com"),
        ("OPENAI_PROXY_HOSTS", "api.openai.com/v1"),
        ("OPENAI_PROXY_HOSTS", "user@api.openai.com"),
        ("OPENAI_GPT_URL", "ftp://api.openai.com/"),
        ("OPENAI_GPT_URL", "https://key@api.openai.com/"),
        ("OPENAI_PROXY_CONNECT_TIMEOUT", "soon"),
        ("OPENAI_PROXY_IDLE_TIMEOUT", "0"),
        ("OPENAI_PROXY_CA_BUNDLE", "/nonexistent/ca.pem"),
    ],
)
def test_bad_settings_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({"API_KEY": "k", name: value})


def test_default_settings_allow_the_apps_public_providers_only():
    config = Config.from_env({"API_KEY": "k"})
    assert config.openai_gpt_url == "https://api.openai.com/v1/chat/completions"
    assert config.openai_proxy_hosts == ("api.openai.com", "api.deepseek.com", "openrouter.ai")
    assert Config.from_env({"API_KEY": "k", "OPENAI_PROXY_HOSTS": "none"}).openai_proxy_hosts == ()


def test_only_listed_targets_are_ever_accepted_whatever_request_url_holds():
    """A seeded stream of URLs assembled from tricky pieces: whatever is accepted is on the list, as listed."""
    service = Proxy(None, ["api.openai.com", "127.0.0.1:8080"], Timeouts(1, 1, 1))
    pieces = (
        ["https", "http", "HTTPS", "ftp", "", "https:", "javascript"],
        ["://", ":/", ":\\\\", "://user@", "://api.openai.com@", "//", ":///"],
        ["api.openai.com", "API.openai.COM", "api.openai.com.", "api.openai.com.evil", "evil.example", "127.0.0.1",
         "localhost", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "127.1", "0x7f000001", "ａpi.openai.com",
         "api.openai.com\x00", "api%2eopenai.com", "xn--pi-openai-xyz.com", "127.0.0.1\t", ""],
        ["", ":443", ":8080", ":80", ":0443", ":65536", ":-1", ": 443", ":443:80", ":", ":08080"],
        ["", "/", "/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions", "#frag",
         "?a=b", "/@evil.example", "\\@evil.example", " /x", "/\r\nX: y",
         "/ok#@evil.example", "@evil.example/"],
    )  # fmt: skip
    chosen = random.Random(7)
    accepted = set()
    for _ in range(5000):
        url = "".join(chosen.choice(options) for options in pieces)
        try:
            target = service.target(url)
        except ApiError as refused:
            assert (refused.status, refused.detail) in {(403, REFUSED), (403, PATH_REFUSED)}
            continue
        assert (target.scheme, target.host, target.port) in {
            ("https", "api.openai.com", 443),
            ("https", "127.0.0.1", 8080),
            ("http", "127.0.0.1", 8080),
        }, url
        assert target.path.startswith("/") and "#" not in target.path and not any(c in target.path for c in " \r\n\t")
        accepted.add(url)
    assert len(accepted) >= 3  # the pieces do assemble allowed targets too, so the check above was exercised
    assert service.target("https://api.openai.com/v1/chat/completions").authority == "api.openai.com"
    for path in (
        "/api/pull",
        "/api/create",
        "/any/path?x=1",
        "/v1/chat/completions?x=1",
        "/v1/chat/completions/",
        "/v1/../api/pull/chat/completions",
        "/v1/%2e%2e/chat/completions",
        "/api/pull%3F/chat/completions",
        "/v1//chat/completions",
        "/v1/chat/completions;x",
    ):
        with pytest.raises(ApiError) as refused:
            service.target("http://127.0.0.1:8080" + path)
        assert (refused.value.status, refused.value.detail) == (403, PATH_REFUSED), path
    assert service.target("http://127.0.0.1:8080/v1/chat/completions").authority == "127.0.0.1:8080"
