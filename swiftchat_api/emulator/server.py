"""The built-in Bedrock emulator: a small HTTP/1.1 server on gevent that boto3 talks to.

It serves the bedrock-runtime routes (ConverseStream, Converse, InvokeModel, CountTokens) and the
bedrock control-plane routes (ListFoundationModels, ListInferenceProfiles, GetInferenceProfile)
on one port, so both ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and ``AWS_ENDPOINT_URL_BEDROCK`` can
point at it.
``GET /_emulator/streams/<id>`` tells tests what happened to a tagged stream upstream.
"""

import json
import select
import socket
from collections import deque
from urllib.parse import parse_qs, unquote, urlsplit

import gevent
from gevent.server import StreamServer
from gevent.socket import wait_read

from . import cache, catalogue, counting, embeddings, frames, images, rules
from .script import REFUSALS, DirectiveError, converse_output, read_script, refusal, stream_frames

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ClientGone(Exception):
    """The caller closed its connection while a stream was being written."""


class Emulator:
    """Routes requests and remembers what happened to tagged streams."""

    def __init__(self):
        self.streams = {}
        self.calls = deque(maxlen=50)
        self.prompt_cache = cache.PromptCache()

    def handle(self, sock, _address):
        """Serve requests on one connection until the peer closes it."""
        rfile = sock.makefile("rb")
        try:
            while self._serve_one(sock, rfile):
                pass
        except (ClientGone, OSError, ValueError):  # gone, or not speaking HTTP
            pass
        finally:
            rfile.close()
            sock.close()

    def _serve_one(self, sock, rfile):
        request_line = rfile.readline(65537)
        if not request_line.strip():
            return False
        method, target, _version = request_line.decode("latin-1").split()
        headers = {}
        while (line := rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = rfile.read(int(headers.get("content-length") or 0))
        path = urlsplit(target).path
        keep_alive = headers.get("connection", "").lower() != "close"
        if method == "POST" and path.startswith("/model/") and path.endswith("/converse-stream"):
            return self._converse_stream(
                sock, unquote(path[len("/model/") : -len("/converse-stream")]), body, keep_alive
            )
        answer = self._route(method, path, body, _region(headers), urlsplit(target).query)
        return self._send_json(sock, *answer, keep_alive)

    def _route(self, method, path, raw, region, query=""):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return refusal(400, "ValidationException", "Request body is not JSON.")
        if method == "GET" and path == "/foundation-models":
            self.calls.append({"operation": "ListFoundationModels", "region": region})
            if region.startswith(catalogue.DENIED_REGIONS):
                return refusal(403, "AccessDeniedException", f"The emulator denies ListFoundationModels in {region}.")
            return 200, {"modelSummaries": catalogue.foundation_models(region)}, []
        if method == "GET" and path == "/inference-profiles":
            if region.startswith(catalogue.NO_PROFILE_REGIONS):
                return refusal(403, "AccessDeniedException", f"The emulator denies ListInferenceProfiles in {region}.")
            # Bedrock lists system-defined profiles unless typeEquals (?type=) asks for the account's own.
            if parse_qs(query).get("type") == ["APPLICATION"]:
                return 200, {"inferenceProfileSummaries": catalogue.application_profiles(region)}, []
            return 200, {"inferenceProfileSummaries": catalogue.inference_profiles(region)}, []
        if method == "GET" and path.startswith("/inference-profiles/"):
            identifier = unquote(path[len("/inference-profiles/") :])
            self.calls.append({"operation": "GetInferenceProfile", "identifier": identifier, "region": region})
            found = catalogue.inference_profile(identifier, region)
            if found is None:
                return refusal(404, "ResourceNotFoundException", "The specified inference profile doesn't exist.")
            return 200, found, []
        if method == "GET" and path == "/_emulator/calls":
            return 200, list(self.calls), []
        if method == "GET" and path.startswith("/_emulator/streams/"):
            tag = path.rsplit("/", 1)[1]
            return (200, self.streams[tag], []) if tag in self.streams else (404, {"message": "no such stream"}, [])
        if method == "POST" and path.startswith("/model/"):
            model_id, _, action = unquote(path[len("/model/") :]).rpartition("/")
            self.calls.append({"operation": action, "modelId": model_id, "region": region, "body": body})
            if action == "converse":
                refused = rules.problem(model_id, body)
                if refused:
                    self.calls[-1]["refused"] = refused
                    return refusal(400, "ValidationException", refused)
                analysis = images.analysis_reply(body)
                if analysis:
                    return 200, analysis, []
                try:
                    script = read_script(model_id, body)
                    self.prompt_cache.account(model_id, body, script)
                except DirectiveError as error:
                    return refusal(400, "ValidationException", str(error))
                gevent.sleep(script.header_delay)  # a slow generation, before any byte of the answer
                return _refused(script) if script.error else (200, converse_output(script), [])
            if action == "count-tokens":
                return counting.count_tokens(model_id, body)
            if action == "invoke" and embeddings.handles(model_id):
                return embeddings.invoke(model_id, body)
            if action == "invoke":
                return images.invoke(model_id, body, region)
        return refusal(404, "UnknownOperationException", f"The emulator does not serve {method} {path}.")

    def _converse_stream(self, sock, model_id, raw, keep_alive):
        try:
            request = json.loads(raw or b"{}")
            refused = rules.problem(model_id, request)
            if refused:
                record = {"operation": "converse-stream", "modelId": model_id, "body": request, "refused": refused}
                self.calls.append(record)
                return self._send_json(sock, *refusal(400, "ValidationException", refused), keep_alive)
            script = read_script(model_id, request)
            self.prompt_cache.account(model_id, request, script)
        except (ValueError, DirectiveError) as error:
            return self._send_json(sock, *refusal(400, "ValidationException", str(error)), keep_alive)
        if script.error:
            self.calls.append({"operation": "converse-stream", "modelId": model_id, "refused": script.error})
            return self._send_json(sock, *_refused(script), keep_alive)
        record = {"events": 0, "state": "streaming", "modelId": model_id, "request": request}
        if script.tag:
            self.streams[script.tag] = record
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n"
        try:
            _pause(sock, script.header_delay)
            sock.sendall((head + ("" if keep_alive else "Connection: close\r\n") + "\r\n").encode())
            for delay, data in stream_frames(script):
                if script.fail_after is not None and record["events"] >= script.fail_after:
                    data = frames.exception(script.fail_with, "The emulator failed the stream as asked.")
                    record["state"] = "failed"
                _pause(sock, delay)
                sock.sendall(b"%X\r\n%s\r\n" % (len(data), data))
                record["events"] += 1
                if record["state"] == "failed":
                    break
            sock.sendall(b"0\r\n\r\n")
        except (ClientGone, OSError):
            record["state"] = "cancelled"
            raise ClientGone from None
        if record["state"] == "streaming":
            record["state"] = "completed"
        return keep_alive

    def _send_json(self, sock, status, payload, extra, keep_alive):
        data = json.dumps(payload).encode()
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *extra,
            *([] if keep_alive else ["Connection: close"]),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        return keep_alive


def _region(headers):
    """The region boto3 signed for (the emulator serves every region on one port)."""
    scope = headers.get("authorization", "").partition("Credential=")[2].split("/")
    return scope[2] if len(scope) > 2 else "us-east-1"


def _refused(script):
    return refusal(*REFUSALS[script.error], f"The emulator refused the call ({script.error}).")


class _Elapsed(Exception):
    pass


def _pause(sock, delay):
    """Wait ``delay`` seconds before the next frame; raise ClientGone as soon as the peer hangs up."""
    if delay:
        try:
            wait_read(sock.fileno(), timeout=delay, timeout_exc=_Elapsed)
        except _Elapsed:
            return  # nothing stirred on the socket, so the peer is still there
    else:
        poller = select.poll()  # not select.select: descriptors past 1024 are common under load
        poller.register(sock.fileno(), select.POLLIN)
        if not poller.poll(0):
            return
    try:
        if sock.recv(1, socket.MSG_PEEK):
            gevent.sleep(delay)  # bytes, not a hang-up: keep the pace
            return
    except ConnectionError:
        pass
    raise ClientGone


def serve(host="127.0.0.1", port=8090, ready=None):
    """Run the emulator until interrupted; ``ready`` is called with the bound port."""
    server = StreamServer((host, port), Emulator().handle, backlog=4096)
    server.init_socket()
    # Frames are small and must leave at once, as Bedrock's do; accepted sockets inherit this.
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ready:
        ready(server.address[1])
    server.serve_forever()
