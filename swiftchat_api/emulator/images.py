"""Image models and the helper text model's analyses, as the emulator answers them.

Amazon models get a real PNG of the requested size, coloured by the prompt; Stability models a
real (tiny) JPEG. Request bodies are checked the way Bedrock checks them, so a malformed request
from the server fails here too. The helper model "reads" the instructions it is given: the
system prompt says which analysis is wanted, the user's words decide the answer.
"""

import base64
import binascii
import hashlib
import json
import re
import struct
import zlib
from functools import partial

from .catalogue import invocable
from .script import refusal

# A 16x16 JPEG: Stability models answer in JPEG and the emulator has no encoder for it.
TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1R"
    "V19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2P/wAARCAAQABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
    "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
    "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
    "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
    "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
    "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCSiiivGPWP/9k="
)

# Words the emulator's "translator" knows; anything else CJK becomes "something".
_GLOSSARY = {"猫": "cat", "狗": "dog", "山": "mountain", "海": "sea", "花": "flower", "雪": "snow", "日落": "sunset"}
_CJK = re.compile(r"[\u4e00-\u9fff]+")
_HEX = re.compile(r"#[0-9A-Fa-f]{6}")

# (keywords in the request, the operation the emulator's analyst picks), first match wins.
_INTENTS = (
    (("background",), "BACKGROUND_REMOVAL"),
    (("colour", "color", "palette"), "COLOR_GUIDED_GENERATION"),
    (("extend", "outpaint", "surround", "scenery around"), "OUTPAINTING"),
    (("replace", "remove the", "add a", "change the", "inpaint"), "INPAINTING"),
    (("variation", "similar", "style of"), "IMAGE_VARIATION"),
    (("sketch", "layout", "draw"), "TEXT_IMAGE"),
)
_GARMENTS = (
    (("shoe", "sneaker", "boot"), "FOOTWEAR"),
    (("pants", "trousers", "skirt", "jeans"), "LOWER_BODY"),
    (("shirt", "jacket", "sweater", "top"), "UPPER_BODY"),
)


def png(width, height, seed_text):
    """A solid-colour RGB PNG whose colour depends on seed_text."""
    r, g, b = hashlib.sha256(seed_text.encode()).digest()[:3]
    row = b"\x00" + bytes((r, g, b)) * width
    raw = zlib.compress(row * height, 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _user_text(body):
    messages = body.get("messages") or []
    return " ".join(b.get("text", "") for m in messages if m.get("role") == "user" for b in m.get("content", []))


def _converse_answer(text):
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
        "metrics": {"latencyMs": 42},
    }


_ANALYSIS = re.compile(r"analysis=([a-z-]+)")


def _odd_answer(kind, said, normal):
    """The helper's answer text when the request asks for an odd one (``analysis=<kind>``), else None."""
    if kind == "garbage":
        return "Sure! I would love to help you with that picture."
    if kind == "fenced":
        return "```json\n" + normal + "\n```"
    if kind == "deep":
        return '{"operation": "INPAINTING", "prompt": ' + "[" * 1100 + "]" * 1100 + "}"
    if kind == "list":
        return '["BACKGROUND_REMOVAL", "#FF0000"]'
    if kind == "wrong-types":
        return json.dumps(
            {"operation": 7, "prompt": {"a": 1}, "maskPrompt": [1], "colors": "#FF0000", "garmentClass": 3}
        )
    if kind == "colors-number":
        return json.dumps({"operation": "COLOR_GUIDED_GENERATION", "prompt": said, "maskPrompt": "", "colors": 5})
    if kind == "huge":
        return "Let me think. " * 100_000 + normal
    if kind == "long-prompt":
        long = "a castle on a hill " * 300  # past what a model takes, within what the server reads
        return json.dumps({**json.loads(normal), "prompt": long}) if normal.startswith("{") else long
    return None


def analysis_reply(body):
    """A Converse answer for an image-analysis prompt, or None for ordinary chat."""
    system = " ".join(block.get("text", "") for block in body.get("system") or []).lower()
    said = _user_text(body)
    lowered = said.lower()
    if "translate" in system and "image" in system:
        english = _CJK.sub(lambda m: " ".join(_GLOSSARY.get(ch, "something") for ch in _split(m.group())), said)
        normal = " ".join(f"An image of {english.strip()}".split())
    elif "garmentclass" in system:
        garment = next((cls for words, cls in _GARMENTS if any(w in lowered for w in words)), "FULL_BODY")
        normal = json.dumps({"garmentClass": garment})
    elif "operation" in system and "maskprompt" in system:
        operation = next((op for words, op in _INTENTS if any(w in lowered for w in words)), "NONE")
        answer = {"operation": operation, "prompt": said.strip(), "maskPrompt": "", "colors": []}
        if operation in ("INPAINTING", "OUTPAINTING"):
            answer["maskPrompt"] = "the main subject"
        if operation == "COLOR_GUIDED_GENERATION":
            answer["colors"] = _HEX.findall(said)[:4] or ["#FF8800"]
        normal = json.dumps(answer)
    else:
        return None
    kind = match.group(1) if (match := _ANALYSIS.search(said)) else ""
    if kind == "empty":
        return {**_converse_answer(""), "output": {"message": {"role": "assistant", "content": []}}}
    return _converse_answer(_odd_answer(kind, said, normal) or normal)


def _split(run):
    """Split a CJK run into glossary words (longest first), one character otherwise."""
    words, i = [], 0
    while i < len(run):
        if run[i : i + 2] in _GLOSSARY:
            words.append(run[i : i + 2])
            i += 2
        else:
            words.append(run[i])
            i += 1
    return words


_invalid = partial(refusal, 400, "ValidationException")


def _is_base64(value):
    try:
        base64.b64decode(value, validate=True)
        return isinstance(value, str) and bool(value)
    except (binascii.Error, ValueError, TypeError):
        return False


_TASKS = {
    "TEXT_IMAGE": ("textToImageParams", ("text",)),
    "COLOR_GUIDED_GENERATION": ("colorGuidedGenerationParams", ("text", "colors")),
    "IMAGE_VARIATION": ("imageVariationParams", ("images",)),
    "INPAINTING": ("inPaintingParams", ("image",)),
    "OUTPAINTING": ("outPaintingParams", ("image",)),
    "BACKGROUND_REMOVAL": ("backgroundRemovalParams", ("image",)),
    "VIRTUAL_TRY_ON": ("virtualTryOnParams", ("sourceImage", "referenceImage", "maskType")),
}


# The leading bytes of each image format the emulator recognises in base64-decoded input.
_SIGNATURES = {"png": (b"\x89PNG\r\n\x1a\n",), "jpeg": (b"\xff\xd8\xff",), "gif": (b"GIF87a", b"GIF89a")}


def _image_format(value):
    head = base64.b64decode(value[:24], validate=False)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((kind for kind, signs in _SIGNATURES.items() if head.startswith(signs)), "unknown")


def _amazon(model_id, body):
    task = body.get("taskType")
    if task not in _TASKS or (task == "VIRTUAL_TRY_ON" and "nova-canvas" not in model_id):
        return _invalid(f"taskType {task!r} is not supported by {model_id}.")
    params_name, required = _TASKS[task]
    params = body.get(params_name)
    if not isinstance(params, dict) or any(key not in params for key in required):
        return _invalid(f"{params_name} must hold {', '.join(required)}.")
    for key in ("image", "conditionImage", "sourceImage", "referenceImage"):
        if key in params and not _is_base64(params[key]):
            return _invalid(f"{params_name}.{key} is not base64 image data.")
        if key in params and _image_format(params[key]) not in ("png", "jpeg"):
            return _invalid(f"{params_name}.{key}: the image must be in PNG or JPEG format.")
    most = 512 if "titan" in model_id else 1024
    for key in ("text", "maskPrompt"):
        if len(params.get(key) or "") > most:
            return _invalid(f"{params_name}.{key} must be at most {most} characters.")
    if "[[emulator error=" in params.get("text", ""):
        return _invalid("This request has been blocked by our content filters.")
    config = body.get("imageGenerationConfig") or {}
    width, height = config.get("width", 64), config.get("height", 64)
    if not (isinstance(width, int) and isinstance(height, int) and 64 <= width <= 4096 and 64 <= height <= 4096):
        return _invalid("imageGenerationConfig width and height must be integers.")
    seed_text = json.dumps(params, sort_keys=True)[:2000]
    return 200, {"images": [base64.b64encode(png(width, height, seed_text)).decode()], "error": None}, []


def _stability(model_id, body):
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return _invalid("prompt is required.")
    mode = body.get("mode", "text-to-image")
    if mode == "image-to-image" and not (_is_base64(body.get("image")) and "strength" in body):
        return _invalid("image-to-image needs image and strength.")
    if mode == "image-to-image" and _image_format(body["image"]) not in ("png", "jpeg", "webp"):
        return _invalid("image: supported formats are jpeg, png and webp.")
    if mode == "image-to-image" and "aspect_ratio" in body:
        return _invalid("aspect_ratio is not allowed with image-to-image.")
    return 200, {"seeds": [42], "finish_reasons": [None], "images": [base64.b64encode(TINY_JPEG).decode()]}, []


def invoke(model_id, body, region="us-east-1"):
    """Answer InvokeModel for an image model, called by a bare id or an inference-profile id."""
    model, problem = invocable(model_id, region)
    if problem:
        return _invalid(problem)
    if model.startswith(("amazon.titan-image", "amazon.nova-canvas")):
        return _amazon(model, body)
    if model.startswith("stability."):
        return _stability(model, body)
    return _invalid(f"{model} does not generate images.")
