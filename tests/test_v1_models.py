"""GET /v1/models lists every id the /v1 routes take in a region, each with its kind; any of them is retrieved.

Through gunicorn with the real ``openai`` SDK; the catalogue is the emulator's, read by boto3.
"""

import openai
import pytest

from swiftchat_api.emulator import catalogue

BARE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
APPLICATION = f"arn:aws:bedrock:us-west-2:{catalogue.ACCOUNT}:application-inference-profile/a1b2c3d4e5f6"


@pytest.fixture
def listed(client):
    return {model.id: model for model in client.models.list()}


def test_every_kind_of_id_is_listed_with_its_kind(listed):
    expected = {
        BARE: "chat",  # bare: the model runs on demand
        f"us.{BARE}": "chat",
        "global.anthropic.claude-sonnet-4-20250514-v1:0": "chat",
        APPLICATION: "chat",
        "amazon.titan-embed-text-v2:0": "embedding",
        "cohere.embed-english-v3": "embedding",
        "amazon.nova-2-multimodal-embeddings-v1:0": "embedding",
        "amazon.nova-canvas-v1:0": "image",
        "us.amazon.nova-canvas-v1:0": "image",
    }
    assert {model_id: listed[model_id].kind for model_id in expected if model_id in listed} == expected
    assert listed[APPLICATION].name == "team-a1b2c3d4e5f6" and listed[APPLICATION].owned_by == "anthropic"


def test_ids_bedrock_would_refuse_are_not_listed(listed):
    assert "anthropic.claude-3-7-sonnet-20250219-v1:0" not in listed  # profiles only: the bare id is refused
    assert "us.anthropic.claude-3-7-sonnet-20250219-v1:0" in listed
    assert f"{BARE}:200k" not in listed  # provisioned throughput only
    assert "mistral.mistral-large-2402-v1:0" not in listed
    assert not any(model_id.startswith("eu.") for model_id in listed)  # another geography's profiles


@pytest.mark.parametrize("model_id", [BARE, f"us.{BARE}", APPLICATION, "cohere.embed-english-v3"])
def test_any_listed_id_is_retrieved(client, listed, model_id):
    found = client.models.retrieve(model_id)
    assert (found.id, found.kind, found.owned_by) == (model_id, listed[model_id].kind, listed[model_id].owned_by)


def test_an_application_profile_of_another_page_is_retrieved_through_bedrock(client):
    other = f"arn:aws:bedrock:us-east-1:{catalogue.ACCOUNT}:application-inference-profile/q7r8s9t0u1v2"
    found = client.models.retrieve(other)  # its region is not the request's: not listed, but Bedrock knows it
    assert (found.id, found.kind) == (other, "chat")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(f"arn:aws:bedrock:us-west-2:{catalogue.ACCOUNT}:application-inference-profile/nope")


def test_every_listed_chat_and_embedding_id_is_taken_by_its_route(client, listed):
    for model_id, model in listed.items():
        if model.kind == "chat":
            answer = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content, model_id
        elif model.kind == "embedding":
            assert client.embeddings.create(model=model_id, input="hi").data, model_id
