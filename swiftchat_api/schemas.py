"""The marshmallow schema of every request body. Unknown fields are ignored, never an error."""

import base64
import binascii

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .services.images import size_problem

_REGION = validate.Regexp(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", error="Not a valid AWS region name.")
_MEDIA = ("image", "video", "document")


class _Body(Schema):
    class Meta:
        unknown = EXCLUDE


def _decode_media(block, where):
    """Return a content block whose image/video/document bytes are decoded from base64."""
    for kind in _MEDIA:
        media = block.get(kind)
        source = media.get("source") if isinstance(media, dict) else None
        if not isinstance(source, dict) or "bytes" not in source:
            continue
        data = source["bytes"]
        if not isinstance(data, str):
            raise ValidationError({kind: {"source": {"bytes": ["Must be base64 text."]}}})
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError({kind: {"source": {"bytes": [f"Invalid base64 data in the {where}."]}}}) from None
        block = {**block, kind: {**media, "source": {**source, "bytes": decoded}}}
    return block


class ContentBlock(fields.Field):
    """A Converse content block, passed through untouched except for base64 media."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("Each content block must be an object.")
        block = _decode_media(value, f"{next(iter(value), 'content')} block")
        result = block.get("toolResult")
        if isinstance(result, dict) and isinstance(result.get("content"), list):
            parts = []
            for position, part in enumerate(result["content"]):
                try:
                    parts.append(_decode_media(part, "tool result") if isinstance(part, dict) else part)
                except ValidationError as error:
                    raise ValidationError({"toolResult": {"content": {position: error.messages}}}) from None
            block = {**block, "toolResult": {**result, "content": parts}}
        return block


class Message(_Body):
    role = fields.String(required=True, validate=validate.OneOf(["user", "assistant"]))
    content = fields.List(ContentBlock(), required=True)


class ConverseRequest(_Body):
    messages = fields.List(fields.Nested(Message), load_default=list)
    modelId = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    region = fields.String(required=True, validate=_REGION)
    enableThinking = fields.Boolean(load_default=None, allow_none=True)
    system = fields.List(fields.Dict(), load_default=None, allow_none=True)


class Base64Text(fields.String):
    """Base64 text, checked but kept as text (image models take base64 in their JSON)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Invalid base64 data.") from None
        if not text:
            raise ValidationError("Image data is empty.")
        return text


class ImageSource(_Body):
    bytes = Base64Text(required=True)


class ReferenceImage(_Body):
    format = fields.String(required=True, validate=validate.OneOf(["png", "jpeg", "jpg", "webp"]))
    source = fields.Nested(ImageSource, required=True)


class ImageRequest(_Body):
    prompt = fields.String(required=True, validate=validate.Length(min=1, max=10000))
    refImages = fields.List(fields.Nested(ReferenceImage), load_default=None, allow_none=True)
    modelId = fields.String(required=True)
    region = fields.String(required=True, validate=_REGION)
    width = fields.Integer(required=True, validate=validate.Range(min=1, max=4096))
    height = fields.Integer(required=True, validate=validate.Range(min=1, max=4096))

    @validates_schema(skip_on_field_errors=True)
    def _fits_the_model(self, data, **kwargs):
        model, references = data["modelId"], data.get("refImages") or []
        if not model.startswith(("amazon.", "stability.")):
            raise ValidationError("Not an image model this server drives (amazon.* or stability.*).", "modelId")
        most = 1 if model.startswith("stability.") else 2
        if len(references) > most:
            raise ValidationError(f"{model} takes at most {most} reference image(s).", "refImages")
        problem = size_problem(model, data["width"], data["height"])
        if problem:
            raise ValidationError(problem, "width")


class RegionRequest(_Body):
    region = fields.String(required=True, validate=_REGION)


class UpgradeRequest(_Body):
    os = fields.String(required=True, validate=validate.Length(max=64))
    version = fields.String(required=True, validate=validate.Length(max=64))
