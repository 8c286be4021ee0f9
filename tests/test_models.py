"""POST /api/models: Bedrock's catalogue filtered and named per region, end to end."""

import json

import pytest
from conftest import emulator_calls

US_TEXT = [
    ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet"),
    ("us.anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4"),
    ("us.amazon.nova-pro-v1:0", "Nova Pro"),
    ("us.amazon.nova-lite-v1:0", "Nova Lite"),
    ("us.meta.llama3-1-70b-instruct-v1:0", "Llama 3.1 70B Instruct"),
    ("us.meta.llama3-1-8b-instruct-v1:0", "Llama 3.1 8B Instruct"),
    ("us.meta.llama3-2-11b-instruct-v1:0", "Llama 3.2 11B Instruct"),
    ("us.deepseek.r1-v1:0", "DeepSeek-R1"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude Sonnet 4.5"),
    ("us.anthropic.claude-opus-4-7", "Claude Opus 4.7"),
    ("us.amazon.nova-2-lite-v1:0", "Nova 2 Lite"),
    ("openai.gpt-oss-120b-1:0", "gpt-oss-120b"),
    ("deepseek.v3-v1:0", "DeepSeek-V3.1"),
]
US_IMAGE = [
    ("amazon.titan-image-generator-v2:0", "Titan Image Generator G1 v2"),
    ("amazon.nova-canvas-v1:0", "Nova Canvas"),
    ("stability.stable-image-core-v1:1", "Stable Image Core 1.0"),
    ("stability.sd3-5-large-v1:0", "Stable Diffusion 3.5 Large"),
    ("us.stability.stable-image-ultra-v1:1", "Stable Image Ultra 1.0"),
]


def _models(server, region):
    status, headers, body = server.request("/api/models", {"region": region})
    assert status == 200 and headers["content-type"] == "application/json"
    return json.loads(body)


def _pairs(models):
    return [(m["modelId"], m["modelName"]) for m in models]


def _ids(models, kind):
    return dict((name, model_id) for model_id, name in _pairs(models[kind]))


def test_catalogue_keeps_usable_streaming_and_image_models(server):
    models = _models(server, "us-west-2")
    assert _pairs(models["textModel"]) == US_TEXT
    assert _pairs(models["imageModel"]) == US_IMAGE


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (
            "eu-central-1",
            {
                "Claude 3.5 Sonnet": "eu.anthropic.claude-3-5-sonnet-20240620-v1:0",  # on demand too: profile first
                "Claude 3 Haiku": "eu.anthropic.claude-3-haiku-20240307-v1:0",
                "Claude Sonnet 4": "eu.anthropic.claude-sonnet-4-20250514-v1:0",  # its geography before global
                "Llama 3.1 70B Instruct": "eu.meta.llama3-1-70b-instruct-v1:0",
                "Llama 3.1 8B Instruct": "meta.llama3-1-8b-instruct-v1:0",  # no eu profile, on demand: bare
                "Llama 3.2 11B Instruct": None,  # no eu profile, profile only: left out
                "DeepSeek-R1": "eu.deepseek.r1-v1:0",
            },
        ),
        (
            "ap-northeast-1",
            {
                "Claude 3.5 Sonnet": "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
                "Claude Sonnet 4": "apac.anthropic.claude-sonnet-4-20250514-v1:0",
                "Llama 3.1 70B Instruct": "apac.meta.llama3-1-70b-instruct-v1:0",
                "Nova Lite": "apac.amazon.nova-lite-v1:0",
                "DeepSeek-R1": None,
            },
        ),
        (
            "ca-central-1",  # Bedrock lists only global profiles here
            {
                "Claude Sonnet 4": "global.anthropic.claude-sonnet-4-20250514-v1:0",
                "Claude 3.5 Sonnet": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "Claude 3.7 Sonnet": None,
            },
        ),
    ],
)
def test_text_models_are_offered_under_the_regions_real_profile(server, region, expected):
    text = _ids(_models(server, region), "textModel")
    assert {name: text.get(name) for name in expected} == expected


def test_image_models_keep_their_bare_id_unless_only_a_profile_reaches_them(server):
    assert _ids(_models(server, "eu-central-1"), "imageModel") == {
        "Titan Image Generator G1 v2": "amazon.titan-image-generator-v2:0",
        "Nova Canvas": "amazon.nova-canvas-v1:0",  # an eu profile exists, but on demand is offered bare
        "Stable Image Core 1.0": "stability.stable-image-core-v1:1",
        "Stable Diffusion 3.5 Large": "stability.sd3-5-large-v1:0",
        # Stable Image Ultra has only a us profile: not offered in Europe
    }


def test_prefix_is_guessed_only_when_profiles_cannot_be_listed(server):
    models = _models(server, "eu-south-1")
    text = _ids(models, "textModel")
    assert text["DeepSeek-R1"] == "eu.deepseek.r1-v1:0"
    assert text["Claude 3.7 Sonnet"] == "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert text["Claude 3 Haiku"] == "eu.anthropic.claude-3-haiku-20240307-v1:0"
    # An image model is never offered under a guess: every id offered must draw.
    assert "Stable Image Ultra 1.0" not in _ids(models, "imageModel")


@pytest.mark.parametrize("region", ["us-west-2", "us-east-1", "eu-central-1", "ap-northeast-1", "eu-south-1"])
def test_every_offered_image_model_draws(server, emulator, region):
    offered = [model["modelId"] for model in _models(server, region)["imageModel"]]
    assert offered
    for model_id in offered:
        body = {"prompt": "A lighthouse", "modelId": model_id, "region": region, "width": "1024", "height": "1024"}
        status, _, answer = server.request("/api/image", body)
        assert status == 200
        assert "image" in json.loads(answer), (model_id, answer)
        assert emulator_calls(emulator)[-1]["modelId"] == model_id


def test_bedrock_failure_is_a_200_with_error(server):
    error = _models(server, "me-central-1")["error"]
    assert error.startswith("An error occurred (AccessDeniedException) when calling the ListFoundationModels operation")
    assert error.endswith(": The emulator denies ListFoundationModels in me-central-1.")


def test_empty_catalogue_is_an_empty_list(server):
    assert _models(server, "af-south-1") == []


def test_catalogue_is_cached_per_region(server, emulator):
    def listings(region):
        return sum(
            1 for c in emulator_calls(emulator) if c["operation"] == "ListFoundationModels" and c["region"] == region
        )

    _models(server, "sa-east-1")
    _models(server, "sa-east-1")
    _models(server, "us-east-2")
    assert listings("sa-east-1") == 1
    assert listings("us-east-2") == 1


def test_region_must_be_a_region(server):
    status, _, body = server.request("/api/models", {"region": "not a region"})
    assert status == 422
    assert json.loads(body)["detail"][0]["loc"] == ["body", "region"]
