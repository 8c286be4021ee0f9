"""Image generation: the request each model family wants, and the helper model's analyses.

A small text model (the "helper") translates CJK prompts, works out what a user wants done
with one reference image, and tells which garment a virtual try-on is about.

Anything an app can send that the chosen model cannot draw (too many or unsupported
reference images, a size the model does not draw, an edit the helper cannot place) is
raised as Unfulfilled (answered ``{"error": "<readable text>"}`` with status 200), like a
Bedrock refusal: apps 2.2+ call ``.endsWith`` on the message, and 1.7–2.1 show nothing but the
status otherwise.
"""

import base64
import json
import random
import re

from botocore.exceptions import BotoCoreError, ClientError

from .. import adapt
from ..exceptions import Unfulfilled, unfulfilled
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
MAX_PROMPT = 10000  # characters; Stability's limit, the largest of the families

# Titan Image Generator draws only these sizes (width, height), per its Bedrock documentation.
TITAN_SIZES = {
    (1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384),
    (768, 1280), (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896),
    (576, 448), (768, 1408), (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704),
    (1408, 640), (704, 320), (1152, 640), (1173, 640),
}  # fmt: skip

# What each family this server drives accepts: its name for messages, reference images it
# takes (Stability uses the first and ignores the rest), their formats, prompt characters.
_FAMILIES = {
    "titan": ("Titan Image Generator", 1, ("png", "jpeg"), 512),
    "nova-canvas": ("Nova Canvas", 2, ("png", "jpeg"), 1024),
    "stability": ("This Stability AI model", None, ("png", "jpeg", "webp"), MAX_PROMPT),
}
_FAMILY_PREFIXES = (("amazon.titan-image", "titan"), ("amazon.nova-canvas", "nova-canvas"), ("stability.", "stability"))
_KNOWN_FORMATS = ("png", "jpeg", "gif", "webp", "heic", "heif", "bmp", "tiff")  # named back in messages

_MAX_ANSWER = 8192  # characters of a helper answer worth reading; its JSON is a few hundred
_MAX_DEPTH = 4  # the helper's JSON is flat; anything deeper is not an answer
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


class Undrawable(Unfulfilled):
    """A request the chosen model cannot draw; its message is shown to the user as it is."""


def helper_model(region, configured=None):
    """The helper text model for a region: configured, else Nova Lite's profile for its geography."""
    if configured:
        return configured
    geo = geography(region)
    return f"{geo}.{HELPER_MODEL}" if geo in ("us", "eu", "apac") else HELPER_MODEL


def family(model_id):
    """The image model family (titan, nova-canvas, stability) of a bare or inference-profile id, or None."""
    # A profile id is the model id behind a geography prefix: us., eu., apac., global., us-gov., ...
    for candidate in (model_id, model_id.partition(".")[2]):
        for prefix, name in _FAMILY_PREFIXES:
            if candidate.startswith(prefix):
                return name
    return None


def size_problem(kind, width, height):
    """Why a model family cannot draw width x height, or None."""
    if kind == "titan" and (width, height) not in TITAN_SIZES:
        return (
            "Titan Image Generator cannot draw this size. It draws 1024 x 1024, 512 x 512 and a few other listed "
            "sizes: choose one in Settings > Image Size."
        )
    if kind == "nova-canvas":
        if not (320 <= width <= 4096 and 320 <= height <= 4096) or width % 16 or height % 16:
            return "Nova Canvas cannot draw this size: width and height must be 320 to 4096, each a multiple of 16."
        if max(width, height) > 4 * min(width, height) or width * height > 4194304:
            return (
                "Nova Canvas cannot draw this size: it needs an aspect ratio within 1:4 and 4:1 and at most "
                "4,194,304 pixels (2048 x 2048)."
            )
    return None


def _format(reference):
    kind = reference["format"].strip().lower()
    return "jpeg" if kind == "jpg" else kind


def _check(kind, request):
    """Raise Undrawable for what the model family cannot take, before any Bedrock call."""
    if kind is None:
        raise Undrawable(
            "This server cannot draw with the chosen image model. Choose a Titan Image Generator, Nova Canvas "
            "or Stability AI model in Settings."
        )
    name, most, formats, _ = _FAMILIES[kind]
    prompt, references = request["prompt"], request["refImages"] or []
    if not prompt.strip():
        raise Undrawable("Please describe the image you want.")
    if len(prompt) > MAX_PROMPT:
        raise Undrawable(f"The image description is too long: at most {MAX_PROMPT:,} characters.")
    if most is not None and len(references) > most:
        count = "one reference image" if most == 1 else f"at most {most} reference images"
        raise Undrawable(f"{name} takes {count}; please attach fewer images.")
    for reference in references[:1] if most is None else references:
        if _format(reference) not in formats:
            found = _format(reference).upper() if _format(reference) in _KNOWN_FORMATS else "other"
            accepted = ", ".join(f.upper() for f in formats[:-1]) + f" or {formats[-1].upper()}"
            raise Undrawable(f"{name} takes {accepted} reference images, not {found} ones. Please attach another.")


def _ask(client, model, system, content):
    """The helper model's text answer to one user turn, at most _MAX_ANSWER characters of it."""
    # Fitted to the helper model's profile (newer Claude takes no temperature), a refusal learnt.
    args = adapt.Adapted(modelId=model, system=[{"text": system}], messages=[{"role": "user", "content": content}])
    answer = adapt.call(client.converse, adapt.apply(args, adapt.Wants(max_tokens=512, temperature=0)))
    message = (answer.get("output") or {}).get("message") or {}
    blocks = message.get("content") if isinstance(message.get("content"), list) else []
    texts = [block["text"] for block in blocks if isinstance(block, dict) and isinstance(block.get("text"), str)]
    return "".join(texts)[:_MAX_ANSWER]


def _depth(text):
    """The deepest nesting of objects and arrays in JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}]":
            depth -= 1
    return deepest


def _json_answer(text):
    """The JSON object in a helper answer (tolerating a code fence around it), or None."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start or _depth(text[start : end + 1]) > _MAX_DEPTH:
        return None
    try:
        value = json.loads(text[start : end + 1])
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _text(plan, key):
    """A string member of the helper's plan, or "" when it is missing or of another type."""
    value = plan.get(key)
    return value.strip() if isinstance(value, str) else ""


def _image_block(reference):
    return {
        "image": {"format": _format(reference), "source": {"bytes": base64.b64decode(reference["source"]["bytes"])}}
    }


def _generation_config(kind, size=None):
    """imageGenerationConfig, with the requested (width, height) when the task draws at a size."""
    config = {"numberOfImages": 1, "quality": "standard", "cfgScale": 8.0}
    if size is not None:
        problem = size_problem(kind, *size)
        if problem:
            raise Undrawable(problem)
        config.update(height=size[1], width=size[0])
    config["seed"] = random.randint(0, MAX_SEED)
    return config


def _unsupported(detail):
    supported = ", ".join(OPERATIONS)
    return Undrawable(f"{detail} With one reference image this server can do: {supported}.")


def _one_reference(client, helper, kind, request):
    reference, size = request["refImages"][0], (request["width"], request["height"])
    limit = _FAMILIES[kind][3]
    answer = _ask(client, helper, INTENT_PROMPT, [{"text": request["prompt"]}, _image_block(reference)])
    plan = _json_answer(answer)
    if plan is None:
        raise _unsupported("The image request could not be analysed.")
    operation = _text(plan, "operation").upper()
    if operation not in OPERATIONS:
        raise _unsupported("The image request matches no image operation.")
    image = reference["source"]["bytes"]
    # The helper's words are cut to what the model takes: a wordy helper is no fault of the user.
    text = (_text(plan, "prompt") or request["prompt"])[:limit]
    mask = _text(plan, "maskPrompt")[:limit]
    if operation in ("INPAINTING", "OUTPAINTING") and not mask:
        part = "change" if operation == "INPAINTING" else "keep"
        raise _unsupported(f"{operation} needs to know which part of the image to {part}.")
    if operation == "BACKGROUND_REMOVAL":
        return {"taskType": operation, "backgroundRemovalParams": {"image": image}}
    if operation == "TEXT_IMAGE":
        params = {"text": text, "conditionImage": image, "controlMode": "CANNY_EDGE"}
        return {
            "taskType": operation,
            "textToImageParams": params,
            "imageGenerationConfig": _generation_config(kind, size),
        }
    if operation == "COLOR_GUIDED_GENERATION":
        listed = plan.get("colors")
        listed = listed[:16] if isinstance(listed, list) else []
        colours = [c for c in listed if isinstance(c, str) and _HEX_COLOUR.fullmatch(c)][:4]
        if not colours:
            raise _unsupported("COLOR_GUIDED_GENERATION needs one to four hex colours, such as #FF8800.")
        params = {"text": text, "colors": colours, "referenceImage": image}
        return {
            "taskType": operation,
            "colorGuidedGenerationParams": params,
            "imageGenerationConfig": _generation_config(kind, size),
        }
    if operation == "IMAGE_VARIATION":
        params = {"text": text, "images": [image], "similarityStrength": 0.7}
        return {
            "taskType": operation,
            "imageVariationParams": params,
            "imageGenerationConfig": _generation_config(kind, size),
        }
    if operation == "INPAINTING":
        params = {"image": image, "text": text, "maskPrompt": mask}
        return {"taskType": operation, "inPaintingParams": params, "imageGenerationConfig": _generation_config(kind)}
    params = {"image": image, "text": text, "maskPrompt": mask, "outPaintingMode": "DEFAULT"}
    return {"taskType": operation, "outPaintingParams": params, "imageGenerationConfig": _generation_config(kind)}


def _virtual_try_on(client, helper, kind, prompt, person, garment):
    content = [{"text": prompt}, _image_block(person), _image_block(garment)]
    answer = _json_answer(_ask(client, helper, GARMENT_PROMPT, content)) or {}
    garment_class = _text(answer, "garmentClass").upper()
    params = {
        "sourceImage": person["source"]["bytes"],
        "referenceImage": garment["source"]["bytes"],
        "maskType": "GARMENT",
        "garmentBasedMask": {"garmentClass": garment_class if garment_class in GARMENTS else "FULL_BODY"},
    }
    return {
        "taskType": "VIRTUAL_TRY_ON",
        "virtualTryOnParams": params,
        "imageGenerationConfig": _generation_config(kind),
    }


def _english(client, helper, kind, prompt):
    """The prompt in English (the helper translates CJK), within what the family takes."""
    limit = _FAMILIES[kind][3]
    if _CJK.search(prompt):
        return _ask(client, helper, TRANSLATE_PROMPT, [{"text": prompt}]).strip()[:limit] or prompt[:limit]
    if len(prompt) > limit:
        raise Undrawable(f"{_FAMILIES[kind][0]} takes descriptions of at most {limit:,} characters.")
    return prompt


def model_request(client, helper, request):
    """The InvokeModel body for an image request (may consult the helper model); raises Undrawable."""
    kind = family(request["modelId"])
    _check(kind, request)
    prompt, references = request["prompt"], request["refImages"] or []
    if kind == "stability":
        body = {"prompt": _english(client, helper, kind, prompt), "output_format": "jpeg"}
        if references:
            return {**body, "mode": "image-to-image", "image": references[0]["source"]["bytes"], "strength": 0.5}
        return {**body, "mode": "text-to-image", "aspect_ratio": "1:1"}
    if len(references) == 2:
        return _virtual_try_on(client, helper, kind, prompt, *references)
    if len(references) == 1:
        return _one_reference(client, helper, kind, request)
    config = _generation_config(kind, (request["width"], request["height"]))  # before any helper call
    return {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": _english(client, helper, kind, prompt)},
        "imageGenerationConfig": config,
    }


def generate(client, helper, request):
    """``{"image": base64}``; Unfulfilled when the request cannot be drawn or Bedrock refused it."""
    try:
        body = model_request(client, helper, request)
        answer = client.invoke_model(
            modelId=request["modelId"], body=json.dumps(body), contentType="application/json", accept="application/json"
        )
        result = json.loads(answer["body"].read())
    except (ClientError, BotoCoreError) as error:
        raise unfulfilled(error) from None
    except (ValueError, RecursionError):
        raise Unfulfilled("The image model answered with something that is not JSON.") from None
    if not isinstance(result, dict):
        raise Unfulfilled("The image model answered in an unexpected shape.")
    if result.get("error"):
        raise Unfulfilled(str(result["error"])[:1000])
    listed = result.get("finish_reasons")
    reasons = [reason for reason in listed if reason] if isinstance(listed, list) else []
    if reasons:
        raise Unfulfilled(f"The model did not finish the image: {str(reasons[0])[:200]}")
    images = result.get("images") or []
    image = images[0] if isinstance(images, list) and images else None
    if not isinstance(image, str):
        raise Unfulfilled("The model returned no image.")
    return {"image": image}
