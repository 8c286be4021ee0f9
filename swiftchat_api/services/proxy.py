"""The apps' "Use Proxy": an OpenAI chat-completions body relayed to a provider the operator allows.

Never an open proxy. A target is accepted only when it is ``OPENAI_GPT_URL`` (/api/gpt), or
(/api/openai) an ``https`` URL whose host is listed in ``OPENAI_PROXY_HOSTS`` (port 443), or
whose host:port is listed, or an ``http`` URL whose host:port is listed. Every other target is
refused before anything is resolved or connected.

A listed name vouches only for public addresses: a loopback, private, link-local or otherwise
non-public address is used only when that address itself is listed (or is the host of
``OPENAI_GPT_URL``). The name is resolved once and the connection goes to the very address
that was checked, so a second DNS answer (rebinding) cannot move it; TLS is still verified
against the name. No redirect is followed.

The provider's status and body reach the caller byte for byte as they arrive; the usage an
OpenAI-compatible provider reports at the end of its answer is read from the answer's last
bytes alone (``provider_usage``). The connection
to the provider is bounded (connect, first byte, silence between bytes) and is closed the
moment the caller walks away, so the provider stops generating. A provider that cannot be
reached, or answers with a redirect, is told in a shape every app generation shows (see
``failure_body``).
"""

import contextlib
import errno
import ipaddress
import json
import logging
import math
import re
import socket
import ssl
import struct
from dataclasses import dataclass

import gevent
from marshmallow import EXCLUDE, Schema, fields
from urllib3.connection import HTTPConnection, HTTPSConnection

from ..config import ConfigError
from ..exceptions import ApiError, StreamRefused
from ..relay import Limits, UpstreamSilent, UpstreamTooMuch
from ..wire import Dialect

log = logging.getLogger(__name__)

FORWARDED_HEADERS = ("Authorization", "HTTP-Referer", "X-Title")  # nothing else of the caller's
READ_SIZE = 65536
USAGE_TAIL = 4096  # the bytes at the end of a provider's answer where its usage is looked for
MAX_URL_LENGTH = 4096
MAX_ADDRESSES = 4  # addresses of one name tried in turn
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Scheme, host (a name or a bracketed IPv6 address), optional port, optional path and query.
# No user-info, no fragment, no whitespace or controls: anything else is not a target.
_URL = re.compile(r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?(/[!-\"$-~]*)?", re.ASCII | re.IGNORECASE)
_ENTRY = re.compile(r"([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?", re.ASCII)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}", re.ASCII)

REFUSED = (
    "Error: this server does not relay to that address. Use an https provider its operator allows "
    "(OPENAI_PROXY_HOSTS), or turn off Use Proxy."
)
PATH_REFUSED = (
    "Error: this server relays only a provider's chat-completions path (…/chat/completions, with no query"
    " string), e.g. https://api.openai.com/v1/chat/completions."
)
# Plain path segments ending in /chat/completions: no query, no escapes, no dot segments.
_CHAT_PATH = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/chat/completions", re.ASCII)


def failure_body(reason):
    """How a failure before the provider's answer is told: an OpenAI error event, then ``Error: <reason>``.

    The apps' OpenAI clients (open-api.ts) show the event's message, 1.10–2.2 as it is and 2.3+
    after "**Error:** ", and read no further; curl users, and anyone reading as the original
    server wrote it, get the plain line too. Plain text alone is what the original server sent:
    1.10–2.2 skip it (an empty bubble) and 2.5.1+ hold it back as an unfinished event. The other
    order fails as well: 2.3+ show a read that starts with unparsable text raw, events and all.
    """
    message = reason[:1].upper() + reason[1:]
    event = json.dumps({"error": {"message": message, "type": "proxy_error"}})
    return f"data: {event}\n\nError: {reason}".encode()


class ChatCompletionsRequest(Schema):
    """The little a relayed body must be: an OpenAI chat-completions request. It is sent on unchanged."""

    class Meta:
        unknown = EXCLUDE

    model = fields.String(required=True, metadata={"example": "gpt-4o-mini"})
    messages = fields.List(fields.Dict(), required=True, metadata={"example": [{"role": "user", "content": "Hi"}]})
    stream = fields.Boolean(metadata={"example": True})
    stream_options = fields.Dict(metadata={"example": {"include_usage": True}})


@dataclass(frozen=True)
class Target:
    """Where one relayed request goes."""

    scheme: str
    host: str  # a lower-case name, or an IP address without brackets
    port: int
    path: str  # path and query, as given

    @property
    def address(self):
        """The host as an IP address when it is one, else None."""
        return _ip(self.host)

    @property
    def authority(self):
        """The Host header: host, bracketed if IPv6, with the port unless it is the scheme's own."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def _host(text):
    """A URL's or list entry's host, canonical; ValueError when it is neither a DNS name nor an IP address."""
    text = text.lower()
    if text.startswith("["):
        return str(ipaddress.IPv6Address(text[1:-1]))
    if _DOTTED_QUAD.fullmatch(text):
        return str(ipaddress.IPv4Address(text))
    labels = text.split(".")
    # A last label of digits only ("127.1", "2130706433") is an address in disguise, not a name.
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("not a host name")
    return text


def _port(text, default):
    if text is None:
        return default
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError("port out of range")
    return port


def parse_target(url):
    """A Target from a URL; ValueError when it is not an http(s) URL this module can relay to."""
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValueError("no URL, or too long")
    match = _URL.fullmatch(url)
    if not match:
        raise ValueError("not an http(s) URL")
    scheme, host, port, path = match.groups()
    scheme = scheme.lower()
    return Target(scheme, _host(host), _port(port, _DEFAULT_PORTS[scheme]), path or "/")


def parse_host_entry(entry):
    """One OPENAI_PROXY_HOSTS entry as (host, port or None); ValueError when it is not host or host:port."""
    match = _ENTRY.fullmatch(entry.strip().lower())
    if not match:
        raise ValueError(f"{entry!r} is not host or host:port")
    host, port = match.groups()
    try:
        return _host(host), _port(port, None)
    except ValueError:
        raise ValueError(f"{entry!r} is not host or host:port") from None


def _public(address):
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo and address.teredo[1])
        if embedded:
            return _public(embedded)
    return address.is_global and not address.is_multicast


def _canonical(address):
    """An IPv4-mapped IPv6 address as the IPv4 address it is; scope ids dropped."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


@dataclass(frozen=True)
class Timeouts:
    connect: float  # resolving, connecting and the TLS handshake, in all
    first_byte: float  # from the request sent to the provider's status line and headers
    idle: float  # the longest silence from the provider once its answer has started
    most: float | None = None  # the longest a relay may last in all
    most_bytes: int | None = None  # the most one relay may carry


class Proxy:
    """The allowed targets and how to reach them; one per app."""

    def __init__(self, gpt_url, hosts, timeouts, ca_bundle=None):
        self.gpt = parse_target(gpt_url) if gpt_url else None
        entries = [parse_host_entry(entry) for entry in hosts]
        self._hosts = frozenset(entries)
        # Addresses listed as themselves, with their port (None: 443), may be used even when not public.
        listed = {(_canonical(ip), port or 443) for host, port in entries if (ip := _ip(host)) is not None}
        if self.gpt is not None and self.gpt.address is not None:
            listed.add((_canonical(self.gpt.address), self.gpt.port))
        self._listed_addresses = frozenset(listed)
        self.timeouts = timeouts
        # A relayed answer's bounds: silence, length in time and bytes (the caller's side: its Connection).
        self.limits = Limits(timeouts.idle, math.inf, most_seconds=timeouts.most, most_bytes=timeouts.most_bytes)
        self._tls = ssl.create_default_context()
        if ca_bundle:
            self._tls.load_verify_locations(cafile=ca_bundle)

    @classmethod
    def from_config(cls, config):
        """The proxy the configuration describes."""
        timeouts = Timeouts(
            connect=config.openai_proxy_connect_timeout,
            first_byte=config.openai_proxy_first_byte_timeout,
            idle=config.openai_proxy_idle_timeout,
            most=config.openai_proxy_max_seconds,
            most_bytes=config.openai_proxy_max_bytes,
        )
        try:
            return cls(config.openai_gpt_url, config.openai_proxy_hosts, timeouts, config.openai_proxy_ca_bundle)
        except ValueError as error:  # config.py checked the shape; this is what the values mean
            raise ConfigError(f"OPENAI_GPT_URL or OPENAI_PROXY_HOSTS cannot be used: {error}") from None
        except ssl.SSLError:
            raise ConfigError("OPENAI_PROXY_CA_BUNDLE holds no usable PEM certificate") from None

    def gpt_target(self):
        """Where /api/gpt goes; 403 when OPENAI_GPT_URL is off."""
        if self.gpt is None:
            raise ApiError(403, REFUSED)
        return self.gpt

    def target(self, request_url):
        """The Target a request_url names, if the allowlist admits it; 403 otherwise (nothing is contacted)."""
        try:
            target = parse_target(request_url)
        except ValueError:
            raise ApiError(403, REFUSED) from None
        listed = (target.host, target.port) in self._hosts or (
            target.scheme == "https" and target.port == 443 and (target.host, None) in self._hosts
        )
        if not listed:
            raise ApiError(403, REFUSED)
        if not _CHAT_PATH.fullmatch(target.path):  # a provider's other routes (Ollama's /api/pull) are not ours
            raise ApiError(403, PATH_REFUSED)
        return target

    def _permitted(self, address, port):
        address = _canonical(address)
        return _public(address) or (address, port) in self._listed_addresses

    def call(self, target, body, headers):
        """The upstream a relay opens to send ``body`` to ``target`` (see ProviderCall)."""
        return ProviderCall(self, target, body, headers)

    def _addresses(self, target):
        """The addresses ``target`` may be reached at, resolved once; 403 when none may be used."""
        deadline = gevent.Timeout(self.timeouts.connect)
        try:
            with deadline:
                found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except gevent.Timeout as expired:
            if expired is not deadline:
                raise
            raise _Unreachable("the provider's host name could not be resolved in time") from None
        except OSError:
            raise _Unreachable("the provider's host name could not be resolved") from None
        addresses = []
        for *_, sockaddr in found:
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        permitted = [address for address in addresses if self._permitted(address, target.port)]
        if not permitted:
            log.warning("proxy: refused %s, which resolves only to non-public addresses", target.host)
            raise ApiError(403, REFUSED)
        return permitted[:MAX_ADDRESSES]


def _ip(host):
    """``host`` as an IP address when it is one, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _upstream_headers(target, incoming):
    headers = {
        "Host": target.authority,
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Accept-Encoding": "identity",  # relayed byte for byte: nothing to decode
        "User-Agent": "swiftchat-api",
    }
    for name in FORWARDED_HEADERS:
        value = incoming.get(name)
        if value is not None:
            headers[name] = value
    return headers


class _Unreachable(Exception):
    """The provider could not be reached, or did not answer in time (the message says which, in words)."""


def _reason(error):
    """Why a connection failed, in words that carry nothing the caller sent (no URL, no header)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the provider's TLS certificate was not accepted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"TLS with the provider failed ({error.reason or type(error).__name__})"
    if isinstance(error, ConnectionRefusedError):
        return "the provider refused the connection"
    if isinstance(error, TimeoutError):
        return "the provider did not answer in time"
    if isinstance(error, OSError) and error.errno:
        return f"the connection to the provider failed ({errno.errorcode.get(error.errno, error.errno)})"
    cause = error.__context__ or error.__cause__
    if cause is not None and cause is not error and isinstance(cause, OSError):
        return _reason(cause)
    return f"the connection to the provider failed ({type(error).__name__})"


class ProviderCall:
    """A provider's answer as a relay's upstream: its status and headers, then its bytes as they arrive.

    Opening it resolves, connects and sends, and waits (bounded) for the provider's status:
    refused with 403 when the target resolves only to addresses it may not use, and with 502
    (StreamRefused) for a redirect or an unusable status. A provider that cannot be reached or
    does not answer in time is answered 200 (as the original server did) with ``failure_body``:
    the relay writes it as the stream's only write. Once the provider has answered, silence is
    watched by the relay's Ticker, not by a timer on every read.
    """

    service = "provider"  # not Bedrock: its failures are not counted as Bedrock's
    first_item = False  # the headers go out with the provider's status, before its first byte

    def __init__(self, proxy, target, body, headers):
        self.target = target
        self.status = 200
        self.headers = {}
        self._proxy = proxy
        self._body = body
        self._incoming = headers
        self._connection = None
        self._socket = None
        self._response = None
        self._whole = False  # the provider's answer was read to its end
        self._tail = b""  # its last USAGE_TAIL bytes so far

    def open(self):
        """Send the request; the provider's body, read as it comes (or its failure, told in-band)."""
        target, body, self._body = self.target, self._body, None
        try:
            self._connect(self._proxy._addresses(target), self._proxy._tls)
            self._send(body, _upstream_headers(target, self._incoming))
        except _Unreachable as failure:
            log.warning("proxy: %s:%s unreachable: %s", target.host, target.port, failure)
            self.halt()
            return _failing(failure)
        return self._chunks()

    def _connect(self, addresses, tls):
        """Connect to the first of ``addresses`` that answers, within the connect time-out in all."""
        target, timeouts = self.target, self._proxy.timeouts
        name = target.host if target.address is None else None  # TLS is verified against the name
        deadline = gevent.Timeout(timeouts.connect)
        failure = None
        try:
            with deadline:
                for address in addresses:
                    if target.scheme == "https":
                        connection = HTTPSConnection(
                            str(address), target.port, timeout=timeouts.connect, server_hostname=name,
                            ssl_context=tls,
                        )  # fmt: skip
                    else:
                        connection = HTTPConnection(str(address), target.port, timeout=timeouts.connect)
                    try:
                        connection.connect()
                    except Exception as error:
                        connection.close()
                        failure = error
                        continue
                    self._connection, self._socket = connection, connection.sock
                    return
        except gevent.Timeout as expired:
            if expired is not deadline:
                raise
            raise _Unreachable(f"the provider could not be reached within {timeouts.connect:g} s") from None
        raise _Unreachable(_reason(failure))

    def _send(self, body, headers):
        """Send the request and wait (bounded) for the provider's status line and headers."""
        connection, first_byte = self._connection, self._proxy.timeouts.first_byte
        try:
            connection.request(
                "POST", self.target.path, body=body, headers=headers, preload_content=False, decode_content=False
            )
            connection.timeout = first_byte  # getresponse() applies it to the socket
            response = connection.getresponse()
        except Exception as error:
            if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
                raise _Unreachable(f"the provider did not answer within {first_byte:g} s") from None
            raise _Unreachable(_reason(error)) from None
        self._response = response
        self._socket.settimeout(None)  # silence is the relay's to watch from here on
        status = response.status
        if 300 <= status < 400:
            raise StreamRefused(502, f"the provider answered with a redirect ({status}); this server follows none.")
        if not 200 <= status < 600:
            raise StreamRefused(502, f"the provider answered with an unusable status ({status}).")
        self.status = status
        retry_after = response.headers.get("Retry-After", "")
        if retry_after and len(retry_after) < 64 and retry_after.isprintable():
            self.headers["Retry-After"] = retry_after

    def _chunks(self):
        read = self._response.read1
        while True:
            try:
                data = read(READ_SIZE, decode_content=False)
            except Exception:  # urllib3 and http.client tell a cut in many ways, none of them useful here
                raise _BrokeOff("the connection to the provider broke off mid-answer") from None
            if not data:
                self._whole = True
                return
            # The usage is in the last event: a bounded copy of the end, no event parsed on its way.
            keep = USAGE_TAIL - len(data)
            self._tail = self._tail[-keep:] + data if keep > 0 else data[-USAGE_TAIL:]
            yield data

    def reported_usage(self):
        """(usage, model) the provider's answer reported at its end (see provider_usage), or (None, None)."""
        return provider_usage(self._tail)

    def halt(self):
        """Cut the connection to the provider at once; a read blocked on it returns."""
        if self._socket is not None:
            with contextlib.suppress(OSError, ValueError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def close(self):
        if not self._whole and self._socket is not None:
            # Cut short: reset, not a polite close, which a provider that is still sending never
            # sees while its window to us is full; reset, its next write fails and it stops.
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.halt()
        if self._response is not None:
            self._response.close()
        if self._connection is not None:
            self._connection.close()


_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


_MOST_TOKENS = 10**9
_LOOKS = 8  # "usage" keys looked at, from the last: a stream's earlier events say "usage": null
_decode = json.JSONDecoder().raw_decode


def provider_usage(tail):
    """(``{"inputTokens", "outputTokens"}``, the model the answer names or None) from the last bytes of an
    OpenAI-compatible answer, or (None, None) when they report no usage.

    A stream reports it in its last event (OpenAI with ``stream_options.include_usage``, after
    events that say ``"usage": null``; some providers always), a whole JSON answer near its end.
    Only the ``"usage"`` object (and ``"model"``) is decoded: a quote inside the answer's text is
    escaped, so a key found is a key of the answer's own JSON, never text the caller wrote.
    """
    text = tail.decode("utf-8", "replace")
    end = len(text)
    for _ in range(_LOOKS):
        end = text.rfind('"usage"', 0, end)
        if end < 0:
            return None, None
        usage = _value_after(text, end + len('"usage"'))
        if isinstance(usage, dict):
            break
    else:
        return None, None
    tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not all(type(count) is int and 0 <= count < _MOST_TOKENS for count in tokens):
        return None, None
    named = text.rfind('"model"', 0, end)
    model = _value_after(text, named + len('"model"')) if named >= 0 else None
    model = model if isinstance(model, str) and 0 < len(model) <= 128 and model.isprintable() else None
    return {"inputTokens": tokens[0], "outputTokens": tokens[1]}, model


def _value_after(text, at):
    """The JSON value after the key that ends at ``at`` (its colon, then the value), or None."""
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    if text[at : at + 1] != ":":
        return None
    at += 1
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    try:
        return _decode(text, at)[0]
    except ValueError:
        return None


def _failing(failure):
    """Items that are only ``failure``: the relay tells it in-band, as the stream's one write."""
    raise failure
    yield  # a generator, raising when it is first read


class _BrokeOff(Exception):
    """The provider's answer was cut off after it began."""


class Passthrough(Dialect):
    """The provider's bytes as they came; a failure as the apps' Use Proxy shows it (see failure_body)."""

    def __init__(self):
        super().__init__(bytes)

    def error(self, error):
        if isinstance(error, _Unreachable):  # before the provider answered: the answer's only bytes
            return failure_body(str(error))
        if isinstance(error, UpstreamTooMuch):
            return f"Error: the provider's answer went past {error.bound}; it was cut off".encode()
        if isinstance(error, UpstreamSilent):
            return f"Error: the provider sent nothing for {error.seconds:g} s; the answer was cut off".encode()
        return f"Error: {error}".encode()  # a write of its own, after the provider's bytes


PASSTHROUGH = Passthrough()
