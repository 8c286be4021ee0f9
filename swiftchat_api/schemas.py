"""The marshmallow schema of every request body. Unknown fields are ignored, never an error."""

import base64
import binascii

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

_REGION = validate.Regexp(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", error="Not a valid AWS region name.")
_MEDIA = ("image", "video", "document")


class _Body(Schema):
    class Meta:
        unknown = EXCLUDE


def _decode_media(block, where):
    """Return a content block whose image/video/document bytes are decoded from base64."""
    for kind in _MEDIA:
        source = block.get(kind, {}).get("source") if isinstance(block.get(kind), dict) else None
        if not isinstance(source, dict) or "bytes" not in source:
            continue
        data = source["bytes"]
        if not isinstance(data, str):
            raise ValidationError({kind: {"source": {"bytes": ["Must be base64 text."]}}})
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError({kind: {"source": {"bytes": [f"Invalid base64 data in the {where}."]}}}) from None
        block = {**block, kind: {**block[kind], "source": {**source, "bytes": decoded}}}
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
