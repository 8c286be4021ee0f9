"""Image generation: the request each model family wants, and the helper model's analyses.

A small text model (the "helper") translates CJK prompts, works out what a user wants done
with one reference image, and tells which garment a virtual try-on is about.
"""

import base64
import json
import random
import re

from botocore.exceptions import BotoCoreError, ClientError

from .. import telemetry
from ..errors import ApiError
from .catalogue import geography

HELPER_MODEL = "amazon.nova-lite-v1:0"
OPERATIONS = (
    "BACKGROUND_REMOVAL",
    "TEXT_IMAGE",
    "COLOR_GUIDED_GENERATION",
    "IMAGE_VARIATION",
    "INPAINTING",
    "OUTPAINTING",
)
GARMENTS = ("UPPER_BODY", "LOWER_BODY", "FULL_BODY", "FOOTWEAR")
MAX_SEED = 2147483646  # Bedrock's image models accept seeds up to this

# Titan Image Generator only draws these sizes (width, height).
TITAN_SIZES = {
    (1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384),
    (768, 1280), (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896),
    (576, 448), (768, 1408), (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704),
    (1408, 640), (704, 320), (1152, 640), (1173, 640),
}  # fmt: skip

_CJK = re.compile(r"[\u4e00-\u9fff]")
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")

TRANSLATE_PROMPT = (
    "You translate image descriptions for an image generation model. Translate the user's text into one "
    "concise English prompt that keeps every visual detail. Reply with the English prompt only."
)
INTENT_PROMPT = (
    "You plan an image edit. The user gives one reference image and a request. Reply with a single JSON "
    'object and nothing else, with the keys "operation", "prompt", "maskPrompt" and "colors".\n'
    '"operation" is one of:\n'
    "- BACKGROUND_REMOVAL: cut the subject out of its background;\n"
    "- TEXT_IMAGE: draw something new that follows the layout and shapes of the reference image;\n"
    "- COLOR_GUIDED_GENERATION: draw something in a given colour palette;\n"
    "- IMAGE_VARIATION: a similar image, or the same image in another style;\n"
    "- INPAINTING: change, add or remove something inside the image;\n"
    "- OUTPAINTING: keep a subject and replace or extend everything around it;\n"
    "- NONE: the request is none of these.\n"
    '"prompt" is an English description of the image to produce. "maskPrompt" names, in English, the '
    "part of the image to change (INPAINTING) or to keep (OUTPAINTING), and is empty otherwise. "
    '"colors" lists 1 to 4 hex colours such as "#FF8800" for COLOR_GUIDED_GENERATION and is empty otherwise.'
)
GARMENT_PROMPT = (
    "The user's words come with two images: the first shows a person, the second an item to be worn. "
    'Reply with a single JSON object and nothing else: {"garmentClass": X}, where X is UPPER_BODY, '
    "LOWER_BODY, FULL_BODY or FOOTWEAR, the part of the body the item in the second image is worn on."
)


def helper_model(region, configured=None):
    """The helper text model for a region: configured, else Nova Lite's profile for its geography."""
    if configured:
        return configured
    geo = geography(region)
    return f"{geo}.{HELPER_MODEL}" if geo in ("us", "eu", "apac") else HELPER_MODEL


def size_problem(model_id, width, height):
    """Why a model family cannot draw width x height, or None."""
    if model_id.startswith("amazon.titan-image") and (width, height) not in TITAN_SIZES:
        return f"Titan Image Generator draws only its listed sizes (e.g. 1024x1024, 768x1152); not {width}x{height}."
    if model_id.startswith("amazon.nova-canvas"):
        if not (320 <= width <= 4096 and 320 <= height <= 4096) or width % 16 or height % 16:
            return "Nova Canvas needs width and height from 320 to 4096, each a multiple of 16."
        if max(width, height) > 4 * min(width, height) or width * height > 4194304:
            return "Nova Canvas needs an aspect ratio within 1:4 and 4:1 and at most 4,194,304 pixels."
    return None


def _ask(client, model, system, content):
    """The helper model's text answer to one user turn."""
    answer = client.converse(
        modelId=model,
        system=[{"text": system}],
        messages=[{"role": "user", "content": content}],
        inferenceConfig={"maxTokens": 512, "temperature": 0},
    )
    return "".join(block.get("text", "") for block in answer["output"]["message"]["content"])


def _json_answer(text):
    """The JSON object in a model's answer (tolerating a code fence around it), or None."""
    start, end = text.find("{"), text.rfind("}")
    try:
        value = json.loads(text[start : end + 1]) if start >= 0 else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _image_block(reference):
    kind = reference["format"].lower().replace("jpg", "jpeg")
    return {"image": {"format": kind, "source": {"bytes": base64.b64decode(reference["source"]["bytes"])}}}


def _generation_config(width=None, height=None):
    config = {"numberOfImages": 1, "quality": "standard", "cfgScale": 8.0}
    if width and height:
        config.update(height=height, width=width)
    config["seed"] = random.randint(0, MAX_SEED)
    return config


def _unsupported(detail):
    supported = ", ".join(OPERATIONS)
    return ApiError(400, f"Error: {detail} With one reference image this server supports: {supported}.")


def _one_reference(client, helper, prompt, reference, width, height):
    plan = _json_answer(_ask(client, helper, INTENT_PROMPT, [{"text": prompt}, _image_block(reference)]))
    if plan is None:
        raise _unsupported("The request could not be analysed.")
    operation = str(plan.get("operation", "")).upper()
    if operation not in OPERATIONS:
        raise _unsupported("The request matches no image operation.")
    image = reference["source"]["bytes"]
    text = str(plan.get("prompt") or prompt)
    mask = str(plan.get("maskPrompt") or "")
    if operation in ("INPAINTING", "OUTPAINTING") and not mask:
        raise _unsupported(
            f"{operation} needs to know which part of the image to {'change' if operation == 'INPAINTING' else 'keep'}."
        )
    if operation == "BACKGROUND_REMOVAL":
        return {"taskType": operation, "backgroundRemovalParams": {"image": image}}
    if operation == "TEXT_IMAGE":
        params = {"text": text, "conditionImage": image, "controlMode": "CANNY_EDGE"}
        return {
            "taskType": operation,
            "textToImageParams": params,
            "imageGenerationConfig": _generation_config(width, height),
        }
    if operation == "COLOR_GUIDED_GENERATION":
        colours = [c for c in plan.get("colors") or [] if isinstance(c, str) and _HEX_COLOUR.fullmatch(c)][:4]
        if not colours:
            raise _unsupported("COLOR_GUIDED_GENERATION needs one to four hex colours.")
        params = {"text": text, "colors": colours, "referenceImage": image}
        return {
            "taskType": operation,
            "colorGuidedGenerationParams": params,
            "imageGenerationConfig": _generation_config(width, height),
        }
    if operation == "IMAGE_VARIATION":
        params = {"text": text, "images": [image], "similarityStrength": 0.7}
        return {
            "taskType": operation,
            "imageVariationParams": params,
            "imageGenerationConfig": _generation_config(width, height),
        }
    if operation == "INPAINTING":
        params = {"image": image, "text": text, "maskPrompt": mask}
        return {"taskType": operation, "inPaintingParams": params, "imageGenerationConfig": _generation_config()}
    params = {"image": image, "text": text, "maskPrompt": mask, "outPaintingMode": "DEFAULT"}
    return {"taskType": operation, "outPaintingParams": params, "imageGenerationConfig": _generation_config()}


def _virtual_try_on(client, helper, prompt, person, garment):
    content = [{"text": prompt}, _image_block(person), _image_block(garment)]
    answer = _json_answer(_ask(client, helper, GARMENT_PROMPT, content))
    garment_class = str((answer or {}).get("garmentClass", "")).upper()
    params = {
        "sourceImage": person["source"]["bytes"],
        "referenceImage": garment["source"]["bytes"],
        "maskType": "GARMENT",
        "garmentBasedMask": {"garmentClass": garment_class if garment_class in GARMENTS else "FULL_BODY"},
    }
    return {"taskType": "VIRTUAL_TRY_ON", "virtualTryOnParams": params, "imageGenerationConfig": _generation_config()}


def _english(client, helper, prompt):
    return _ask(client, helper, TRANSLATE_PROMPT, [{"text": prompt}]).strip() if _CJK.search(prompt) else prompt


def model_request(client, helper, request):
    """The InvokeModel body for an image request (may consult the helper model)."""
    model, prompt, references = request["modelId"], request["prompt"], request["refImages"] or []
    width, height = request["width"], request["height"]
    if model.startswith("stability."):
        body = {"prompt": _english(client, helper, prompt), "output_format": "jpeg"}
        if references:
            return {**body, "mode": "image-to-image", "image": references[0]["source"]["bytes"], "strength": 0.5}
        return {**body, "mode": "text-to-image", "aspect_ratio": "1:1"}
    if len(references) == 2:
        return _virtual_try_on(client, helper, prompt, *references)
    if len(references) == 1:
        return _one_reference(client, helper, prompt, references[0], width, height)
    params = {"text": _english(client, helper, prompt)}
    return {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": params,
        "imageGenerationConfig": _generation_config(width, height),
    }


def generate(client, helper, request):
    """``{"image": base64}``, or ``{"error": message}`` when Bedrock refused or failed."""
    try:
        body = model_request(client, helper, request)
        answer = client.invoke_model(
            modelId=request["modelId"], body=json.dumps(body), contentType="application/json", accept="application/json"
        )
        result = json.loads(answer["body"].read())
    except (ClientError, BotoCoreError) as error:
        telemetry.upstream_error(error)
        return {"error": str(error)}
    if result.get("error"):
        return {"error": str(result["error"])}
    reasons = [reason for reason in result.get("finish_reasons") or [] if reason]
    if reasons:
        return {"error": f"The model did not finish the image: {reasons[0]}"}
    images = result.get("images") or []
    return {"image": images[0]} if images else {"error": "The model returned no image."}
