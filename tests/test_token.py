"""POST /api/token: temporary credentials from STS AssumeRole (moto)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import TEST_KEY, Server, emulator_env


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


def test_token_without_a_role_is_an_error(server):
    status, _, body = server.request("/api/token", {"region": "us-west-2"})
    assert status == 200
    assert json.loads(body) == {
        "error": "This server has no CLIENT_ROLE_ARN configured, so it hands out no credentials."
    }


def test_token_needs_a_key_and_a_region(token_server):
    assert token_server.request("/api/token", {"region": "us-west-2"}, key=None)[0] == 403
    assert token_server.request("/api/token", {})[0] == 422
