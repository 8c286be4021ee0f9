"""POST /api/token: temporary credentials from STS AssumeRole (moto)."""

import json
import os
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from xml.sax.saxutils import escape

import boto3
import pytest
from conftest import TEST_KEY, Server, emulator_env, flask_keys

from swiftchat_api import create_app
from swiftchat_api.config import Config


@pytest.fixture(scope="module")
def token_server(emulator, moto_url):
    live = Server(
        {
            **emulator_env(emulator),
            "API_KEY": TEST_KEY,
            "CLIENT_ROLE_ARN": "arn:aws:iam::123456789012:role/swiftchat-app",
            "AWS_ENDPOINT_URL_STS": moto_url,
        }
    )
    yield live
    live.stop()


def test_token_is_an_hour_of_credentials(token_server):
    status, _, body = token_server.request("/api/token", {"region": "us-west-2"})
    assert status == 200
    answer = json.loads(body)
    assert set(answer) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}
    assert answer["accessKeyId"].startswith("ASIA") and answer["secretAccessKey"] and answer["sessionToken"]
    expires = datetime.fromisoformat(answer["expiration"])
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1, minutes=1)


def _session_of(answer, moto_url):
    """The role session name STS records for credentials /api/token handed out (what CloudTrail shows)."""
    sts = boto3.client(
        "sts",
        region_name="us-west-2",
        endpoint_url=moto_url,
        aws_access_key_id=answer["accessKeyId"],
        aws_secret_access_key=answer["secretAccessKey"],
        aws_session_token=answer["sessionToken"],
    )
    return sts.get_caller_identity()["Arn"].rsplit("/", 1)[1]


def _key(server, *args):
    env = {**os.environ, "SWIFTCHAT_STORE": f"sqlite:///{server.logfile.with_suffix('.db')}"}
    made = flask_keys(env, "create", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_a_per_person_key_gets_credentials_only_when_made_to_and_named_in_their_session(token_server, moto_url):
    plain = _key(token_server, "plain")
    status, _, body = token_server.request("/api/token", {"region": "us-west-2"}, key=plain)
    assert status == 200
    assert json.loads(body)["error"].startswith("This key is not given AWS credentials")

    trusted = _key(token_server, "ops@example.com", "--aws-credentials")
    status, _, body = token_server.request("/api/token", {"region": "us-west-2"}, key=trusted)
    assert status == 200
    assert _session_of(json.loads(body), moto_url) == "swiftchat-key-ops@example.com"

    status, _, body = token_server.request("/api/token", {"region": "us-west-2"})  # the shared key
    assert _session_of(json.loads(body), moto_url) == "swiftchat-app"


def test_token_without_a_role_is_an_error(server):
    status, _, body = server.request("/api/token", {"region": "us-west-2"})
    assert status == 200
    assert json.loads(body) == {
        "error": "This server has no CLIENT_ROLE_ARN configured, so it hands out no credentials."
    }


def test_token_needs_a_key_and_a_region(token_server):
    assert token_server.request("/api/token", {"region": "us-west-2"}, key=None)[0] == 403
    assert token_server.request("/api/token", {})[0] == 422


class _RefusingSts(ThreadingHTTPServer):
    """An STS that refuses every call the way STS refuses a signature it cannot read: quoting the
    request's Authorization header, signature and access key id included, in its message."""

    def __init__(self):
        self.seen = []
        super().__init__(("127.0.0.1", 0), self._Handler)

    class _Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's spelling)
            self.rfile.read(int(self.headers["Content-Length"]))
            authorization = self.headers["Authorization"]
            self.server.seen.append(authorization)
            message = f"'{authorization}' not a valid key=value pair (missing equal-sign) in Authorization header"
            body = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>IncompleteSignature</Code><Message>{escape(message)}</Message></Error>"
                "<RequestId>4d6c6c9e-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass


ACCESS_KEY_ID = "AKIAZQ7EXAMPLEKEY42"


@pytest.fixture(scope="module")
def refusing_sts_app(tmp_path_factory):
    """An app, in process, whose STS refuses AssumeRole quoting the request's signature."""
    sts = _RefusingSts()
    Thread(target=sts.serve_forever, daemon=True).start()
    store = tmp_path_factory.mktemp("token-store") / "keys.db"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        env.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{sts.server_address[1]}")
        config = Config(
            api_key=TEST_KEY,
            client_role_arn="arn:aws:iam::123456789012:role/swiftchat-app",
            store_url=f"sqlite:///{store}",
            bedrock_max_attempts=1,
        )
        yield create_app(config).test_client(), sts
    sts.shutdown()
    sts.server_close()


def test_an_sts_refusal_is_told_without_the_signature_or_the_access_key(refusing_sts_app):
    client, sts = refusing_sts_app
    answer = client.post("/api/token", json={"region": "us-west-2"}, headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert answer.status_code == 200
    error = answer.get_json()["error"]
    assert error.startswith("An error occurred (IncompleteSignature) when calling the AssumeRole operation")
    assert "Credential=<redacted>" in error and "Signature=<redacted>" in error
    signature = sts.seen[-1].rsplit("Signature=", 1)[1]
    assert ACCESS_KEY_ID not in error and signature not in error
