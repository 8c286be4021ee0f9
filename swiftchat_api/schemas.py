"""The marshmallow schema of every request body. Unknown fields are ignored, never an error."""

import base64
import binascii
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

# \A...\Z: "$" would also match before a trailing newline, which then reaches an HTTP header.
_REGION_NAME = re.compile(r"\A[a-z]{2}(-[a-z]+){1,3}-[0-9]{1,2}\Z")


def _valid_region(value):
    if len(value) > 32 or not _REGION_NAME.match(value):
        raise ValidationError("Not a valid AWS region name.")


_MEDIA = ("image", "video", "document")


class _Body(Schema):
    class Meta:
        unknown = EXCLUDE


class Unusable(str):
    """A problem with content the apps do send (invalid base64 in an attachment), not with the body's shape."""


class UnusableContent(ValidationError):
    """A chat body in the apps' shape whose content cannot be used: every problem in it is ``Unusable``.

    ``text`` says what in words, once each; the chat routes answer it as text, which every app
    generation shows, where a 422 list would reach the chat screen as raw JSON.
    """

    status = 422

    def __init__(self, messages, problems):
        super().__init__(messages)
        self.text = " ".join(dict.fromkeys(problems))


def _problems(messages):
    """Every message in a marshmallow error's nested messages."""
    if isinstance(messages, dict):
        for value in messages.values():
            yield from _problems(value)
    elif isinstance(messages, list):
        for value in messages:
            yield from _problems(value)
    else:
        yield messages


def _decode_media(block, within=""):
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
            problem = Unusable(f"Invalid base64 data in the {kind} block{within}.")
            raise ValidationError({kind: {"source": {"bytes": [problem]}}}) from None
        block = {**block, kind: {**media, "source": {**source, "bytes": decoded}}}
    return block


def _content_block(value):
    """A content block as Bedrock gets it: untouched except for base64 media, in it or in its tool result."""
    if not isinstance(value, dict):
        raise ValidationError("Each content block must be an object.")
    block = _decode_media(value)
    result = block.get("toolResult")
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        parts = []
        for position, part in enumerate(result["content"]):
            try:
                parts.append(_decode_media(part, " of the tool result") if isinstance(part, dict) else part)
            except ValidationError as error:
                raise ValidationError({"toolResult": {"content": {position: error.messages}}}) from None
        block = {**block, "toolResult": {**result, "content": parts}}
    return block


class ContentBlock(fields.Field):
    """A Converse content block, passed through untouched except for base64 media."""

    def _deserialize(self, value, attr, data, **kwargs):
        return _content_block(value)


_ROLES = ("user", "assistant")


class Message(_Body):
    role = fields.String(required=True, validate=validate.OneOf(_ROLES))
    content = fields.List(ContentBlock(), required=True)


def _plain_message(value):
    """``value`` loaded as Message loads it, if it is plainly well formed; None for anything else."""
    if type(value) is not dict:
        return None
    role, content = value.get("role"), value.get("content")
    if type(role) is not str or role not in _ROLES or type(content) is not list:
        return None
    try:
        return {"role": role, "content": [_content_block(block) for block in content]}
    except ValidationError:
        return None


class PlainFirst(fields.Nested):
    """A nested ``schema``, read first by ``plain``: the value as the schema loads it, or None.

    The apps (and OpenAI's clients) send a chat's whole history with every message, and
    marshmallow's nested load took 6–8 µs a message, a tenth of a long chat's request. ``plain``
    reads the common, well-formed messages in plain Python with the same result; any other
    message is loaded by the schema, so that every error is marshmallow's own. (With ``partial``,
    ``only`` or ``exclude``, which change what the schema loads, it always is.)
    """

    def __init__(self, schema, plain, **kwargs):
        super().__init__(schema, **kwargs)
        self.plain = plain

    def _deserialize(self, value, attr, data, partial=None, **kwargs):
        if partial is None and self.only is None and not self.exclude:
            loaded = self.plain(value)
            if loaded is not None:
                return loaded
        return super()._deserialize(value, attr, data, partial=partial, **kwargs)


class ConverseRequest(_Body):
    messages = fields.List(PlainFirst(Message, _plain_message), load_default=list)
    modelId = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    region = fields.String(required=True, validate=_valid_region)
    enableThinking = fields.Boolean(load_default=None, allow_none=True)
    system = fields.List(fields.Dict(), load_default=None, allow_none=True)

    def handle_error(self, error, data, **kwargs):
        """A body whose only problems are Unusable content is UnusableContent; any other stays a ValidationError."""
        problems = list(_problems(error.messages))
        if problems and all(isinstance(problem, Unusable) for problem in problems):
            raise UnusableContent(error.messages, problems)


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
    # Which formats a model takes is the image service's answer (200 {"error"}), not a 422.
    format = fields.String(required=True, validate=validate.Length(min=1, max=32))
    source = fields.Nested(ImageSource, required=True)


class ImageRequest(_Body):
    """The apps' image body. What the chosen model cannot draw (reference count or format, size, an empty
    or over-long prompt) is the image service's readable 200 answer; only other shapes are a 422."""

    _MOST_REFERENCES = 8  # apps send at most two; a longer list is refused before its entries are read

    prompt = fields.String(required=True)
    refImages = fields.List(
        fields.Nested(ReferenceImage),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=_MOST_REFERENCES),  # documents the limit; _few_references enforces it early
    )
    modelId = fields.String(required=True, validate=validate.Length(min=1, max=256))
    region = fields.String(required=True, validate=_valid_region)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)

    @pre_load
    def _few_references(self, data, **kwargs):
        references = data.get("refImages") if isinstance(data, dict) else None
        if isinstance(references, list) and len(references) > self._MOST_REFERENCES:
            raise ValidationError(f"At most {self._MOST_REFERENCES} reference images.", "refImages")
        return data


class RegionRequest(_Body):
    region = fields.String(required=True, validate=_valid_region)


class UpgradeRequest(_Body):
    os = fields.String(required=True, validate=validate.Length(max=64))
    version = fields.String(required=True, validate=validate.Length(max=64))
