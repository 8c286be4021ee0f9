"""Images/generations ⇄ the image service (``services.images``), which knows each model family."""

from ..services.images import family as image_family
from ..services.images import size_problem
from .errors import refuse


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
    """OpenAI's images answer from ``generate``'s ``{"image"}`` (an image not drawn is raised as Unfulfilled)."""
    return {"created": created, "data": [{"b64_json": result["image"]}]}
