"""POST /api/image end to end: every model family and branch, against the emulator."""

import base64
import json
import struct

import pytest
from conftest import emulator_calls

from swiftchat_api.emulator.images import png

PICTURE = base64.b64encode(png(64, 64, "reference")).decode()
PERSON = base64.b64encode(png(64, 96, "person")).decode()
GIF = base64.b64encode(b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00;").decode()
WEBP = base64.b64encode(
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88"
).decode()
NOVA = "amazon.nova-canvas-v1:0"
TITAN = "amazon.titan-image-generator-v2:0"
STABILITY = "stability.sd3-5-large-v1:0"
OPERATIONS = ("BACKGROUND_REMOVAL", "TEXT_IMAGE", "COLOR_GUIDED_GENERATION", "IMAGE_VARIATION", "INPAINTING")


def _image(prompt, model=NOVA, refs=None, width=1024, height=1024, region="us-west-2", formats=None):
    body = {"prompt": prompt, "modelId": model, "region": region, "width": str(width), "height": str(height)}
    if refs is not None:
        kinds = formats or ["png"] * len(refs)
        body["refImages"] = [
            {"format": kind, "source": {"bytes": data}} for kind, data in zip(kinds, refs, strict=True)
        ]
    return body


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _last(emulator, operation):
    return [call for call in emulator_calls(emulator) if call["operation"] == operation][-1]


def _drawn(server, body):
    """The image bytes of a request that must succeed."""
    status, headers, answer = server.request("/api/image", body)
    assert status == 200 and headers["content-type"] == "application/json"
    return base64.b64decode(json.loads(answer)["image"])


def _refused(server, emulator, body, calls=("converse", "invoke")):
    """The readable error of a request the apps must be able to show; no Bedrock call of the given kinds."""
    before = len(emulator_calls(emulator))
    status, headers, answer = server.request("/api/image", body)
    assert status == 200 and headers["content-type"] == "application/json"
    error = json.loads(answer)
    assert list(error) == ["error"]
    # Apps 2.2+ call .endsWith on it; every app replaces a message holding "http" with "Unable to resolve host".
    assert isinstance(error["error"], str) and error["error"] and "http" not in error["error"]
    made = [call["operation"] for call in emulator_calls(emulator)[before:]]
    assert not set(made) & set(calls), made
    return error["error"]


@pytest.mark.parametrize(("model", "width", "height"), [(NOVA, 1280, 720), (NOVA, 2048, 2048), (TITAN, 768, 1152)])
def test_amazon_text_to_image_returns_the_image(server, emulator, model, width, height):
    assert _png_size(_drawn(server, _image("A lighthouse at dawn", model, width=width, height=height))) == (
        width,
        height,
    )
    sent = _last(emulator, "invoke")
    assert sent["modelId"] == model
    config = sent["body"]["imageGenerationConfig"]
    assert 0 <= config.pop("seed") <= 2147483647
    assert config == {"numberOfImages": 1, "quality": "standard", "cfgScale": 8.0, "height": height, "width": width}
    assert sent["body"]["taskType"] == "TEXT_IMAGE"
    assert sent["body"]["textToImageParams"] == {"text": "A lighthouse at dawn"}


def test_cjk_prompt_is_translated_first(server, emulator):
    assert _drawn(server, _image("一只猫在山上"))
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
    assert _png_size(_drawn(server, _image(prompt, refs=[PICTURE])))
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
    assert _drawn(server, _image("Remove the background [[emulator analysis=fenced]]", refs=[PICTURE]))
    assert _last(emulator, "invoke")["body"]["taskType"] == "BACKGROUND_REMOVAL"


@pytest.mark.parametrize(
    "prompt",
    [
        "Make it sing a song",  # the helper says NONE
        "[[emulator analysis=garbage]]",  # prose
        "Remove the background [[emulator analysis=deep]]",  # JSON nested 1,100 deep
        "Remove the background [[emulator analysis=list]]",  # a JSON list, not an object
        "Remove the background [[emulator analysis=wrong-types]]",  # a number for operation, ...
        "Remove the background [[emulator analysis=huge]]",  # the JSON after 1.4 MB of prose
        "Remove the background [[emulator analysis=empty]]",  # no content blocks at all
    ],
)
def test_unusable_analysis_is_a_readable_error_naming_the_operations(server, emulator, prompt):
    error = _refused(server, emulator, _image(prompt, refs=[PICTURE]), calls=("invoke",))
    assert error.startswith("The image request ")
    assert all(operation in error for operation in OPERATIONS)


def test_colour_edit_without_usable_colours_is_a_readable_error(server, emulator):
    error = _refused(
        server, emulator, _image("Use the palette [[emulator analysis=colors-number]]", refs=[PICTURE]), ("invoke",)
    )
    assert "COLOR_GUIDED_GENERATION needs one to four hex colours" in error


def test_a_wordy_helper_is_cut_to_what_the_model_takes(server, emulator):
    assert _drawn(server, _image("Make a variation of this [[emulator analysis=long-prompt]]", refs=[PICTURE]))
    text = _last(emulator, "invoke")["body"]["imageVariationParams"]["text"]
    assert len(text) == 1024 and text.startswith("a castle on a hill")


def test_titan_size_is_not_checked_for_an_edit_that_keeps_the_images_size(server, emulator):
    assert _png_size(_drawn(server, _image("Replace the dog with a cat", TITAN, [PICTURE], 2048, 2048))) == (64, 64)
    assert _last(emulator, "invoke")["body"]["taskType"] == "INPAINTING"


@pytest.mark.parametrize(
    ("prompt", "garment"),
    [
        ("Try these sneakers on me", "FOOTWEAR"),
        ("Wear this shirt", "UPPER_BODY"),
        ("[[emulator analysis=garbage]]", "FULL_BODY"),
        ("Wear this shirt [[emulator analysis=deep]]", "FULL_BODY"),
        ("Wear this shirt [[emulator analysis=wrong-types]]", "FULL_BODY"),
        ("Wear this shirt [[emulator analysis=list]]", "FULL_BODY"),
        ("Wear this shirt [[emulator analysis=empty]]", "FULL_BODY"),
    ],
)
def test_two_reference_images_are_a_virtual_try_on(server, emulator, prompt, garment):
    assert _drawn(server, _image(prompt, refs=[PERSON, PICTURE]))
    sent = _last(emulator, "invoke")["body"]
    assert sent["taskType"] == "VIRTUAL_TRY_ON"
    assert sent["virtualTryOnParams"] == {
        "sourceImage": PERSON,
        "referenceImage": PICTURE,
        "maskType": "GARMENT",
        "garmentBasedMask": {"garmentClass": garment},
    }


def test_an_empty_translation_keeps_the_users_prompt(server, emulator):
    assert _drawn(server, _image("一只猫 [[emulator analysis=empty]]"))
    assert _last(emulator, "invoke")["body"]["textToImageParams"]["text"] == "一只猫 [[emulator analysis=empty]]"


def test_stability_text_to_image(server, emulator):
    image = _drawn(server, _image("日落", model="stability.stable-image-core-v1:1"))
    assert image[:2] == b"\xff\xd8" and image[-2:] == b"\xff\xd9"
    assert _last(emulator, "invoke")["body"] == {
        "prompt": "An image of sunset",
        "output_format": "jpeg",
        "mode": "text-to-image",
        "aspect_ratio": "1:1",
    }


@pytest.mark.parametrize(
    ("refs", "formats"),
    [([PICTURE], ["png"]), ([PICTURE, PERSON], ["png", "png"]), ([PICTURE, GIF], ["png", "gif"]), ([WEBP], ["webp"])],
    ids=["one photo", "two photos", "a gif after the first", "webp"],
)
def test_stability_draws_from_the_first_reference_image(server, emulator, refs, formats):
    assert _drawn(server, _image("Make it snowy", STABILITY, refs, 2048, 2048, formats=formats))
    assert _last(emulator, "invoke")["body"] == {
        "prompt": "Make it snowy",
        "output_format": "jpeg",
        "mode": "image-to-image",
        "image": refs[0],
        "strength": 0.5,
    }


@pytest.mark.parametrize(
    ("model", "refs", "formats", "expected"),
    [
        (NOVA, [GIF], ["gif"], "Nova Canvas takes PNG or JPEG reference images, not GIF ones."),
        (NOVA, [PICTURE, WEBP], ["png", "webp"], "Nova Canvas takes PNG or JPEG reference images, not WEBP ones."),
        (TITAN, [PICTURE], ["heic"], "Titan Image Generator takes PNG or JPEG reference images, not HEIC ones."),
        (STABILITY, [GIF, PICTURE], ["gif", "png"], "This Stability AI model takes PNG, JPEG or WEBP reference"),
        (NOVA, [PICTURE], ["x" * 30], "not other ones"),
    ],
)
def test_a_reference_format_the_model_does_not_take_is_a_readable_error(
    server, emulator, model, refs, formats, expected
):
    body = _image("Make it snowy", model, refs, formats=formats)
    assert expected in _refused(server, emulator, body)


def test_jpg_and_capitals_are_jpeg(server, emulator):
    assert _drawn(server, _image("Remove the background", refs=[PICTURE], formats=["JPG"]))
    assert _last(emulator, "converse")["body"]["messages"][0]["content"][1]["image"]["format"] == "jpeg"


@pytest.mark.parametrize(
    ("model", "refs", "expected"),
    [
        (NOVA, [PICTURE] * 3, "Nova Canvas takes at most 2 reference images"),
        (TITAN, [PERSON, PICTURE], "Titan Image Generator takes one reference image"),
    ],
)
def test_more_reference_images_than_the_model_takes_is_a_readable_error(server, emulator, model, refs, expected):
    assert expected in _refused(server, emulator, _image("Wear this shirt", model, refs))


@pytest.mark.parametrize(
    ("model", "width", "height", "expected"),
    [
        (TITAN, 2048, 2048, "Titan Image Generator cannot draw this size."),
        (TITAN, 1000, 1000, "Settings > Image Size"),
        ("us.amazon.nova-canvas-v1:0", 1000, 1000, "multiple of 16"),
        (NOVA, 4096, 512, "aspect ratio"),
        (NOVA, 0, 1024, "Nova Canvas cannot draw this size"),
    ],
)
def test_a_size_the_model_does_not_draw_is_a_readable_error(server, emulator, model, width, height, expected):
    error = _refused(server, emulator, _image("一只猫", model, width=width, height=height))
    assert expected in error
    assert f"{width} x {height}" not in error and f"{width}x{height}" not in error


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"modelId": "anthropic.claude-3-haiku-20240307-v1:0"}, "cannot draw with the chosen image model"),
        ({"modelId": "us.amazon.nova-reel-v1:0"}, "cannot draw with the chosen image model"),
        ({"prompt": ""}, "Please describe the image you want."),
        ({"prompt": "   "}, "Please describe the image you want."),
        ({"prompt": "a" * 10001}, "at most 10,000 characters"),
        ({"prompt": "a" * 1025}, "Nova Canvas takes descriptions of at most 1,024 characters."),
    ],
)
def test_other_requests_that_cannot_be_drawn_are_readable_errors(server, emulator, change, expected):
    assert expected in _refused(server, emulator, {**_image("A cat"), **change})


@pytest.mark.parametrize(
    "model", ["us.stability.stable-image-ultra-v1:1", "us.amazon.nova-canvas-v1:0", "global.stability.sd3-5-large-v1:0"]
)
def _bedrock_refusal(answer, message):
    """Whether an answer is Bedrock's refusal with this message, as botocore words it."""
    error = json.loads(answer)["error"]
    return error.startswith("An error occurred (ValidationException) when calling the InvokeModel operation") and (
        error.endswith(f": {message}")
    )


@pytest.mark.parametrize(
    "model", ["us.stability.stable-image-ultra-v1:1", "us.amazon.nova-canvas-v1:0", "global.stability.sd3-5-large-v1:0"]
)
def test_inference_profile_ids_are_accepted(server, emulator, model):
    status, _, answer = server.request("/api/image", _image("A cat", model))
    assert status == 200
    assert _last(emulator, "invoke")["modelId"] == model
    if model.startswith("global."):  # the region lists no such profile: Bedrock's own refusal, still readable
        assert _bedrock_refusal(answer, "The provided model identifier is invalid.")
    else:
        assert "image" in json.loads(answer)


def test_a_profile_only_model_called_by_its_bare_id_is_bedrocks_readable_refusal(server):
    status, _, answer = server.request("/api/image", _image("A cat", "stability.stable-image-ultra-v1:1"))
    assert status == 200
    assert "with on-demand throughput isn't supported" in json.loads(answer)["error"]


def test_bedrock_refusal_is_a_200_with_error(server):
    status, _, answer = server.request("/api/image", _image("A riot [[emulator error=validation]]"))
    assert status == 200
    assert _bedrock_refusal(answer, "This request has been blocked by our content filters.")


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"width": "wide"}, "width"),
        ({"height": [1024]}, "height"),
        ({"prompt": 7}, "prompt"),
        ({"modelId": None}, "modelId"),
        ({"region": "moon"}, "region"),
        ({"refImages": "a picture"}, "refImages"),
        ({"refImages": [{"format": "png", "source": {"bytes": "%%%"}}]}, "refImages"),
        ({"refImages": [{"format": 5, "source": {"bytes": PICTURE}}]}, "refImages"),
        ({"refImages": [{"format": "png"}]}, "refImages"),
        ({"refImages": [{"format": "png", "source": {"bytes": PICTURE}}] * 9}, "refImages"),
    ],
)
def test_bodies_that_are_not_the_apps_shape_are_a_422(server, change, loc):
    status, _, body = server.request("/api/image", {**_image("A cat"), **change})
    assert status == 422
    assert json.loads(body)["detail"][0]["loc"][:2] == ["body", loc]
    assert PICTURE.encode() not in body


@pytest.mark.parametrize("missing", ["prompt", "modelId", "region", "width"])
def test_a_missing_field_is_a_422(server, missing):
    body = _image("A cat")
    del body[missing]
    status, _, answer = server.request("/api/image", body)
    assert status == 422
    detail = json.loads(answer)["detail"]
    assert [(item["loc"], item["type"]) for item in detail] == [(["body", missing], "missing")]


def test_a_body_that_is_not_json_is_a_422(server):
    status, _, answer = server.request("/api/image", raw=b"prompt=a cat")
    assert status == 422
    assert isinstance(json.loads(answer)["detail"], list)
