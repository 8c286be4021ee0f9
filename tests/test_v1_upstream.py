"""What /v1 does when Bedrock is slow or refuses: no generation made twice, Bedrock's own words shown.

Driven by the real ``openai`` SDK with its default retries, through gunicorn, against the emulator.
"""

import uuid

import openai
import pytest
from botocore.exceptions import ClientError
from conftest import TEST_KEY, Server, emulator_calls, emulator_env

from swiftchat_api.oai.errors import upstream_error

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"


@pytest.fixture(scope="module")
def patient(emulator):
    """A server that waits one second for a whole answer and tries a call three times, as configured."""
    live = Server(
        {**emulator_env(emulator), "API_KEY": TEST_KEY, "BEDROCK_READ_TIMEOUT": "1", "BEDROCK_MAX_ATTEMPTS": "3"}
    )
    yield live
    live.stop()


def sdk(server, **options):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=TEST_KEY, timeout=60, **options)


def calls_saying(emulator, marker):
    """The emulator's Converse calls whose request holds ``marker``."""
    return [call for call in emulator_calls(emulator) if call.get("operation") == "converse" and marker in str(call)]


def test_a_generation_slower_than_the_read_timeout_is_made_once(patient, emulator):
    marker = uuid.uuid4().hex
    with sdk(patient) as client, pytest.raises(openai.InternalServerError) as raised:  # the SDK's default retries
        client.chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": f"{marker} [[emulator header_delay_ms=2500]]"}]
        )
    assert raised.value.status_code == 504
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert "BEDROCK_READ_TIMEOUT" in raised.value.message
    assert len(calls_saying(emulator, marker)) == 1


def test_throttling_is_still_retried_and_told_in_bedrocks_words(patient, emulator):
    marker = uuid.uuid4().hex
    with sdk(patient, max_retries=0) as client, pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": f"{marker} [[emulator error=throttling]]"}]
        )
    assert len(calls_saying(emulator, marker)) == 3  # BEDROCK_MAX_ATTEMPTS
    assert raised.value.body["message"] == "The emulator refused the call (throttling)."
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_a_refusal_streamed_or_whole_carries_no_botocore_prefix(patient):
    with sdk(patient, max_retries=0) as client:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as raised:
                client.chat.completions.create(
                    model=CLAUDE, stream=stream, messages=[{"role": "user", "content": "[[emulator error=validation]]"}]
                )
            assert raised.value.body["message"] == "The emulator refused the call (validation)."


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"MaxAttemptsReached": True, "RetryAttempts": 2},  # "... the Converse operation (reached max retries: 2): "
        {"MaxAttemptsReached": True, "RetryAttempts": 0},
    ],
)
@pytest.mark.parametrize(
    ("code", "operation"),
    [("ThrottlingException", "Converse"), ("throttlingException", "ConverseStream"), ("Unknown.Code", "InvokeModel")],
)
def test_botocores_prefix_is_stripped_in_every_form(metadata, code, operation):
    answer = {"Error": {"Code": code, "Message": "Too many tokens, wait."}, "ResponseMetadata": metadata}
    error = ClientError(answer, operation)
    assert str(error).startswith("An error occurred (")
    assert upstream_error(error).detail == "Too many tokens, wait."
