"""Image models and the helper text model's analyses, as the emulator answers them."""


def analysis_reply(body):
    """A Converse answer for an image-analysis prompt, or None for ordinary chat."""
    return None


def invoke(model_id, body):
    """Answer InvokeModel for an image model."""
    return 404, {"message": f"The emulator has no model {model_id}."}, ["x-amzn-ErrorType: ResourceNotFoundException"]
