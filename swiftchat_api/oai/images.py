"""Images/generations ⇄ the image service (``services.images``), which knows each model family."""

import re

from ..exceptions import BEDROCK_STATUS
from ..services.images import family as image_family
from ..services.images import size_problem
from .errors import ERROR_CODES, OpenAIError, refuse

_BEDROCK_CODE = re.compile(r"An error occurred \((\w+)\)")


def image_request(body):
    """The request ``services.images.generate`` takes, for a validated images/generations body."""
    model = body["model"]
    kind = image_family(model)
    if kind is None:
        refuse("Not an image model this server drives: Titan Image Generator, Nova Canvas or Stability AI.", "model")
    size = body.get("size") or "auto"
    width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
    problem = size_problem(kind, width, height)
    if problem:
        refuse(problem, "size")
    return {"prompt": body["prompt"], "modelId": model, "refImages": None, "width": width, "height": height}


def image_answer(result, created):
    """OpenAI's images answer from ``generate``'s ``{"image"}``; OpenAIError from its ``{"error"}``."""
    if "image" in result:
        return {"created": created, "data": [{"b64_json": result["image"]}]}
    message = str(result.get("error") or "The model returned no image.")
    refused = _BEDROCK_CODE.search(message)
    if refused is None:
        # Not a refusal of the call: the model declined this prompt (a content filter).
        raise OpenAIError(400, message)
    code = refused.group(1)
    raise OpenAIError(BEDROCK_STATUS.get(code, 502), message, code=ERROR_CODES.get(code))
