"""Embedding models as the emulator answers InvokeModel: Titan, Cohere and Nova, with Bedrock's checks.

Vectors are deterministic (the same text and size always give the same vector) and of unit
length, so a test can compare them; request bodies are checked the way Bedrock checks them.
"""

import hashlib
import math
import struct
from functools import partial

from .script import refusal

_invalid = partial(refusal, 400, "ValidationException")

# model id part → (the keys its body may hold, the sizes it draws, the default size); first match wins.
_TITAN = (
    ("titan-embed-text-v2", {"inputText", "dimensions", "normalize", "embeddingTypes"}, (256, 512, 1024), 1024),
    ("titan-embed-image-v1", {"inputText", "inputImage", "embeddingConfig"}, (256, 384, 1024), 1024),
    ("titan-embed", {"inputText"}, (1536,), 1536),
)
_COHERE = (
    ("cohere.embed-v4", (256, 512, 1024, 1536), 1536),
    ("cohere.embed", (1024,), 1024),
)
_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
_EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary")
_NOVA = "amazon.nova-2-multimodal-embeddings"
# Nova Multimodal Embeddings' synchronous request, as its user guide's schema gives it.
_NOVA_PURPOSES = ("GENERIC_INDEX", "GENERIC_RETRIEVAL", "TEXT_RETRIEVAL", "IMAGE_RETRIEVAL", "VIDEO_RETRIEVAL",
                  "DOCUMENT_RETRIEVAL", "AUDIO_RETRIEVAL", "CLASSIFICATION", "CLUSTERING")  # fmt: skip
_NOVA_SIZES = (256, 384, 1024, 3072)
_NOVA_MEDIA = ("text", "image", "audio", "video")
_TRUNCATION = ("START", "END", "NONE")


def handles(model_id):
    """Whether InvokeModel on this model id is an embedding call."""
    return any(family in model_id for family in ("amazon.titan-embed", "cohere.embed", _NOVA))


def vector(model_id, text, size):
    """A deterministic unit vector of ``size`` floats for a text."""
    raw = hashlib.shake_256(f"{model_id}|{text}".encode()).digest(4 * size)
    values = [number / 2**31 - 1.0 for number in struct.unpack(f"<{size}I", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 7) for v in values]


def _tokens(text):
    return len(text.split()) or 1


def _titan(model_id, body):
    keys, sizes, default = next((keys, sizes, default) for part, keys, sizes, default in _TITAN if part in model_id)
    extra = sorted(set(body) - keys)
    if extra:
        return _invalid(f"Malformed input request: extraneous key [{extra[0]}] is not permitted, please reformat.")
    text = body.get("inputText")
    if not isinstance(text, str) or not text.strip():
        return _invalid("Malformed input request: inputText must be a non-empty string.")
    config = body.get("embeddingConfig")
    size = body.get("dimensions", config.get("outputEmbeddingLength", default) if isinstance(config, dict) else default)
    if size not in sizes:
        return _invalid(f"Malformed input request: the size must be one of {list(sizes)}.")
    embedding = vector(model_id, text, size)
    answer = {"embedding": embedding, "inputTextTokenCount": _tokens(text)}
    if "titan-embed-text-v2" in model_id:
        answer["embeddingsByType"] = {"float": embedding}
    return 200, answer, []


def _cohere(model_id, body):
    sizes, default = next((sizes, default) for part, sizes, default in _COHERE if part in model_id)
    texts = body.get("texts")
    if not isinstance(texts, list) or not 1 <= len(texts) <= 96 or not all(isinstance(t, str) for t in texts):
        return _invalid("Malformed input request: texts must be a list of 1 to 96 strings.")
    if body.get("input_type") not in _INPUT_TYPES:
        return _invalid(f"Malformed input request: input_type must be one of {list(_INPUT_TYPES)}.")
    types = body.get("embedding_types")
    if types is not None and (not isinstance(types, list) or not set(types) <= set(_EMBEDDING_TYPES)):
        return _invalid(f"Malformed input request: embedding_types must list some of {list(_EMBEDDING_TYPES)}.")
    size = body.get("output_dimension", default)
    if size not in sizes:
        return _invalid(f"Malformed input request: output_dimension must be one of {list(sizes)}.")
    vectors = [vector(model_id, text, size) for text in texts]
    tokens = sum(_tokens(text) for text in texts)
    answer = {"id": hashlib.sha256(repr(texts).encode()).hexdigest()[:32], "texts": texts}
    if types is None:
        answer.update(embeddings=vectors, response_type="embeddings_floats")
    else:
        by_type = {kind: vectors if kind == "float" else [[round(v * 127) for v in row] for row in vectors]
                   for kind in types}  # fmt: skip
        answer.update(embeddings=by_type, response_type="embeddings_by_type")
    # Bedrock counts a call's input tokens in a header for every model; Cohere's body has no count.
    return 200, answer, [f"X-Amzn-Bedrock-Input-Token-Count: {tokens}"]


def _extraneous(given, allowed):
    extra = sorted(set(given) - set(allowed))
    return _invalid(f"Malformed input request: extraneous key [{extra[0]}] is not permitted, please reformat.")


def _nova(model_id, body):
    if set(body) - {"schemaVersion", "taskType", "singleEmbeddingParams"}:
        return _extraneous(body, {"schemaVersion", "taskType", "singleEmbeddingParams"})
    if body.get("schemaVersion", "nova-multimodal-embed-v1") != "nova-multimodal-embed-v1":
        return _invalid("Malformed input request: schemaVersion must be nova-multimodal-embed-v1.")
    if body.get("taskType") != "SINGLE_EMBEDDING":
        return _invalid("Malformed input request: taskType must be SINGLE_EMBEDDING for InvokeModel.")
    params = body.get("singleEmbeddingParams")
    if not isinstance(params, dict):
        return _invalid("Malformed input request: required key [singleEmbeddingParams] not found.")
    if set(params) - {"embeddingPurpose", "embeddingDimension", *_NOVA_MEDIA}:
        return _extraneous(params, {"embeddingPurpose", "embeddingDimension", *_NOVA_MEDIA})
    if params.get("embeddingPurpose") not in _NOVA_PURPOSES:
        return _invalid(f"Malformed input request: embeddingPurpose must be one of {list(_NOVA_PURPOSES)}.")
    size = params.get("embeddingDimension", 3072)
    if size not in _NOVA_SIZES:
        return _invalid(f"Malformed input request: embeddingDimension must be one of {list(_NOVA_SIZES)}.")
    media = [kind for kind in _NOVA_MEDIA if kind in params]
    if media != ["text"]:  # the emulator embeds text only; Bedrock wants exactly one medium
        return _invalid("Malformed input request: exactly one of text, image, audio or video is required.")
    text = params["text"]
    if not isinstance(text, dict) or text.get("truncationMode") not in _TRUNCATION:
        return _invalid(f"Malformed input request: text.truncationMode must be one of {list(_TRUNCATION)}.")
    value = text.get("value")
    if not isinstance(value, str) or not value.strip():
        return _invalid("Malformed input request: text.value must be a non-empty string.")
    answer = {"embeddings": [{"embeddingType": "TEXT", "embedding": vector(model_id, value, size)}]}
    # Nova's body has no count; Bedrock's header has it.
    return 200, answer, [f"X-Amzn-Bedrock-Input-Token-Count: {_tokens(value)}"]


def invoke(model_id, body):
    """Answer InvokeModel for an embedding model: (status, body, extra headers)."""
    if not isinstance(body, dict):
        return _invalid("Malformed input request: the body must be a JSON object.")
    if _NOVA in model_id:
        return _nova(model_id, body)
    return _titan(model_id, body) if "amazon.titan-embed" in model_id else _cohere(model_id, body)
