"""POST /api/models: Bedrock's catalogue filtered and named per region, end to end."""

import json

from conftest import emulator_calls

US_TEXT = [
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet"),
    ("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4"),
    ("amazon.nova-pro-v1:0", "Nova Pro"),
    ("amazon.nova-lite-v1:0", "Nova Lite"),
    ("us.meta.llama3-1-70b-instruct-v1:0", "Llama 3.1 70B Instruct"),
    ("us.deepseek.r1-v1:0", "DeepSeek-R1"),
]
IMAGE = [
    ("amazon.titan-image-generator-v2:0", "Titan Image Generator G1 v2"),
    ("amazon.nova-canvas-v1:0", "Nova Canvas"),
    ("stability.stable-image-core-v1:1", "Stable Image Core 1.0"),
    ("stability.sd3-5-large-v1:0", "Stable Diffusion 3.5 Large"),
]


def _models(server, region):
    status, headers, body = server.request("/api/models", {"region": region})
    assert status == 200 and headers["content-type"] == "application/json"
    return json.loads(body)


def _pairs(models):
    return [(m["modelId"], m["modelName"]) for m in models]


def test_catalogue_keeps_usable_streaming_and_image_models(server):
    models = _models(server, "us-west-2")
    assert _pairs(models["textModel"]) == US_TEXT
    assert _pairs(models["imageModel"]) == IMAGE


def test_models_that_need_a_profile_get_the_regions_real_profile(server):
    text = dict(_pairs(_models(server, "ap-northeast-1")["textModel"]))
    assert "apac.anthropic.claude-sonnet-4-20250514-v1:0" in text
    assert "apac.meta.llama3-1-70b-instruct-v1:0" in text
    # Bedrock lists no DeepSeek-R1 profile in Asia Pacific, so it is not offered there.
    assert "DeepSeek-R1" not in text.values()


def test_prefix_is_guessed_only_when_profiles_cannot_be_listed(server):
    text = _pairs(_models(server, "eu-south-1")["textModel"])
    assert ("eu.deepseek.r1-v1:0", "DeepSeek-R1") in text
    assert ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet") in text


def test_bedrock_failure_is_a_200_with_error(server):
    assert _models(server, "me-central-1") == {
        "error": "An error occurred (AccessDeniedException) when calling the ListFoundationModels operation: "
        "The emulator denies ListFoundationModels in me-central-1."
    }


def test_empty_catalogue_is_an_empty_list(server):
    assert _models(server, "af-south-1") == []


def test_catalogue_is_cached_per_region(server, emulator):
    def listings(region):
        return sum(
            1 for c in emulator_calls(emulator) if c["operation"] == "ListFoundationModels" and c["region"] == region
        )

    _models(server, "ca-central-1")
    _models(server, "ca-central-1")
    _models(server, "sa-east-1")
    assert listings("ca-central-1") == 1
    assert listings("sa-east-1") == 1


def test_region_must_be_a_region(server):
    status, _, body = server.request("/api/models", {"region": "not a region"})
    assert status == 422
    assert json.loads(body)["detail"][0]["loc"] == ["body", "region"]
