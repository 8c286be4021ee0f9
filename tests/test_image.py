"""POST /api/image end to end: every model family and branch, against the emulator."""

import base64
import json
import struct

import pytest
from conftest import emulator_calls

from swiftchat_api.emulator.images import png

PICTURE = base64.b64encode(png(64, 64, "reference")).decode()
PERSON = base64.b64encode(png(64, 96, "person")).decode()
NOVA = "amazon.nova-canvas-v1:0"


def _image(prompt, model=NOVA, refs=None, width=1024, height=1024, region="us-west-2"):
    body = {"prompt": prompt, "modelId": model, "region": region, "width": str(width), "height": str(height)}
    if refs is not None:
        body["refImages"] = [{"format": "png", "source": {"bytes": data}} for data in refs]
    return body


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _last(emulator, operation):
    return [call for call in emulator_calls(emulator) if call["operation"] == operation][-1]


@pytest.mark.parametrize(
    ("model", "width", "height"), [(NOVA, 1280, 720), ("amazon.titan-image-generator-v2:0", 768, 1152)]
)
def test_amazon_text_to_image_returns_the_image(server, emulator, model, width, height):
    status, _, body = server.request("/api/image", _image("A lighthouse at dawn", model, width=width, height=height))
    assert status == 200
    assert _png_size(base64.b64decode(json.loads(body)["image"])) == (width, height)
    sent = _last(emulator, "invoke")
    assert sent["modelId"] == model
    config = sent["body"]["imageGenerationConfig"]
    assert 0 <= config.pop("seed") <= 2147483647
    assert config == {"numberOfImages": 1, "quality": "standard", "cfgScale": 8.0, "height": height, "width": width}
    assert sent["body"]["taskType"] == "TEXT_IMAGE"
    assert sent["body"]["textToImageParams"] == {"text": "A lighthouse at dawn"}


def test_cjk_prompt_is_translated_first(server, emulator):
    status, _, body = server.request("/api/image", _image("一只猫在山上"))
    assert status == 200 and "image" in json.loads(body)
    helper = _last(emulator, "converse")
    assert helper["modelId"] == "us.amazon.nova-lite-v1:0"
    assert helper["body"]["messages"][0]["content"] == [{"text": "一只猫在山上"}]
    assert (
        _last(emulator, "invoke")["body"]["textToImageParams"]["text"]
        == "An image of something something cat something mountain something"
    )


def test_helper_model_follows_the_callers_geography(server, emulator):
    server.request("/api/image", _image("海", region="eu-central-1"))
    helper = _last(emulator, "converse")
    assert (helper["modelId"], helper["region"]) == ("eu.amazon.nova-lite-v1:0", "eu-central-1")


@pytest.mark.parametrize(
    ("prompt", "task", "params"),
    [
        ("Remove the background please", "BACKGROUND_REMOVAL", "backgroundRemovalParams"),
        ("Redraw it in the palette #112233 and #AABBCC", "COLOR_GUIDED_GENERATION", "colorGuidedGenerationParams"),
        ("Make a variation of this", "IMAGE_VARIATION", "imageVariationParams"),
        ("Replace the dog with a cat", "INPAINTING", "inPaintingParams"),
        ("Extend the scenery around it", "OUTPAINTING", "outPaintingParams"),
        ("Draw a castle following this sketch", "TEXT_IMAGE", "textToImageParams"),
    ],
)
def test_one_reference_image_runs_the_analysed_operation(server, emulator, prompt, task, params):
    status, _, body = server.request("/api/image", _image(prompt, refs=[PICTURE]))
    assert status == 200
    assert _png_size(base64.b64decode(json.loads(body)["image"]))
    analysis = _last(emulator, "converse")["body"]
    assert analysis["messages"][0]["content"][0] == {"text": prompt}
    assert analysis["messages"][0]["content"][1]["image"]["source"]["bytes"] == PICTURE
    sent = _last(emulator, "invoke")["body"]
    assert sent["taskType"] == task
    carried = sent[params]
    assert PICTURE in (
        carried.get("image"),
        carried.get("conditionImage"),
        carried.get("referenceImage"),
        *carried.get("images", []),
    )
    if task == "COLOR_GUIDED_GENERATION":
        assert carried["colors"] == ["#112233", "#AABBCC"]
    if task in ("INPAINTING", "OUTPAINTING"):
        assert carried["maskPrompt"] == "the main subject"


def test_analysis_wrapped_in_a_code_fence_is_understood(server, emulator):
    status, _, body = server.request(
        "/api/image", _image("Remove the background [[emulator analysis=fenced]]", refs=[PICTURE])
    )
    assert status == 200 and "image" in json.loads(body)
    assert _last(emulator, "invoke")["body"]["taskType"] == "BACKGROUND_REMOVAL"


@pytest.mark.parametrize("prompt", ["Make it sing a song", "[[emulator analysis=garbage]]"])
def test_unusable_analysis_is_a_400_naming_the_operations(server, prompt):
    status, _, body = server.request("/api/image", _image(prompt, refs=[PICTURE]))
    assert status == 400
    detail = json.loads(body)["detail"]
    assert detail.startswith("Error: ")
    assert all(op in detail for op in ("BACKGROUND_REMOVAL", "INPAINTING", "OUTPAINTING", "IMAGE_VARIATION"))


@pytest.mark.parametrize(
    ("prompt", "garment"),
    [
        ("Try these sneakers on me", "FOOTWEAR"),
        ("Wear this shirt", "UPPER_BODY"),
        ("[[emulator analysis=garbage]]", "FULL_BODY"),
    ],
)
def test_two_reference_images_are_a_virtual_try_on(server, emulator, prompt, garment):
    status, _, body = server.request("/api/image", _image(prompt, refs=[PERSON, PICTURE]))
    assert status == 200 and "image" in json.loads(body)
    sent = _last(emulator, "invoke")["body"]
    assert sent["taskType"] == "VIRTUAL_TRY_ON"
    assert sent["virtualTryOnParams"] == {
        "sourceImage": PERSON,
        "referenceImage": PICTURE,
        "maskType": "GARMENT",
        "garmentBasedMask": {"garmentClass": garment},
    }


def test_stability_text_to_image(server, emulator):
    status, _, body = server.request("/api/image", _image("日落", model="stability.stable-image-core-v1:1"))
    assert status == 200
    image = base64.b64decode(json.loads(body)["image"])
    assert image[:2] == b"\xff\xd8" and image[-2:] == b"\xff\xd9"
    assert _last(emulator, "invoke")["body"] == {
        "prompt": "An image of sunset",
        "output_format": "jpeg",
        "mode": "text-to-image",
        "aspect_ratio": "1:1",
    }


def test_stability_image_to_image(server, emulator):
    status, _, body = server.request(
        "/api/image", _image("Make it snowy", "stability.sd3-5-large-v1:0", refs=[PICTURE])
    )
    assert status == 200 and "image" in json.loads(body)
    assert _last(emulator, "invoke")["body"] == {
        "prompt": "Make it snowy",
        "output_format": "jpeg",
        "mode": "image-to-image",
        "image": PICTURE,
        "strength": 0.5,
    }


def test_bedrock_refusal_is_a_200_with_error(server):
    status, _, body = server.request("/api/image", _image("A riot [[emulator error=validation]]"))
    assert status == 200
    assert json.loads(body) == {
        "error": "An error occurred (ValidationException) when calling the InvokeModel operation: "
        "This request has been blocked by our content filters."
    }


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"width": "1000", "height": "1000"}, "width"),
        ({"width": "4096", "height": "512"}, "width"),
        ({"modelId": "amazon.titan-image-generator-v2:0", "width": "1000"}, "width"),
        ({"width": "wide"}, "width"),
        ({"modelId": "anthropic.claude-3-haiku-20240307-v1:0"}, "modelId"),
        ({"refImages": [{"format": "png", "source": {"bytes": "%%%"}}]}, "refImages"),
        ({"refImages": [{"format": "png", "source": {"bytes": PICTURE}}] * 3}, "refImages"),
        (
            {
                "modelId": "stability.sd3-5-large-v1:0",
                "refImages": [{"format": "png", "source": {"bytes": PICTURE}}] * 2,
            },
            "refImages",
        ),
        ({"refImages": [{"format": "tiff", "source": {"bytes": PICTURE}}]}, "refImages"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_invalid_image_requests_are_a_422(server, change, loc):
    status, _, body = server.request("/api/image", {**_image("A cat"), **change})
    assert status == 422
    assert json.loads(body)["detail"][0]["loc"][:2] == ["body", loc]
    assert PICTURE.encode() not in body
