"""Embeddings ⇄ InvokeModel: Titan and Nova embed one text a call, Cohere up to 96.

``input_type`` (Cohere's word for what a vector is for; an extra body field for OpenAI's
clients, ``extra_body={"input_type": "search_query"}``) goes to Cohere as it is, and to Nova as
the ``embeddingPurpose`` it stands for; Titan has no such setting, so it is refused there.
Without it, texts are embedded as documents (``search_document``, Nova's ``GENERIC_INDEX``).
"""

import base64
import json
import struct
from array import array

from ..exceptions import ApiError
from .errors import refuse

COHERE_BATCH = 96  # texts Cohere embeds in one call

# model id part → (the request field that sets the vector size, the sizes it takes); first match
# wins, and a model with no field has one fixed size.
EMBEDDING_SIZES = (
    ("titan-embed-text-v2", "dimensions", (256, 512, 1024)),
    ("titan-embed-image-v1", "embeddingConfig", (256, 384, 1024)),
    ("cohere.embed-v4", "output_dimension", (256, 512, 1024, 1536)),
    ("nova-2-multimodal-embeddings", "embeddingDimension", (256, 384, 1024, 3072)),
    ("", None, ()),
)
TITAN, COHERE, NOVA = "amazon.titan-embed", "cohere.embed", "amazon.nova-2-multimodal-embeddings"
DEFAULT_INPUT_TYPE = "search_document"
# input_type → Nova's embeddingPurpose; a query searches texts (TEXT_RETRIEVAL), as an OpenAI client's do.
NOVA_PURPOSES = {
    "search_document": "GENERIC_INDEX",
    "search_query": "TEXT_RETRIEVAL",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}


def _invoke(model, payload):
    return {"modelId": model, "body": json.dumps(payload), "contentType": "application/json", "accept": "*/*"}


def embedding_calls(body):
    """The boto3 ``invoke_model`` keyword arguments for a validated embeddings body, in input order.

    Titan and Nova embed one text per call, Cohere up to 96.
    """
    model, texts, dimensions = body["model"], body["input"], body.get("dimensions")
    if not any(family in model for family in (TITAN, COHERE, NOVA)):
        refuse(
            "Not an embedding model this server drives: amazon.titan-embed-*, cohere.embed-* or "
            "amazon.nova-2-multimodal-embeddings-*.",
            "model",
        )
    input_type = body.get("input_type")
    if input_type is not None and TITAN in model:
        refuse("input_type is taken by Cohere and Nova embedding models; Titan has no such setting.", "input_type")
    field, sizes = next((field, sizes) for part, field, sizes in EMBEDDING_SIZES if part in model)
    if dimensions is not None and dimensions not in sizes:
        allowed = f"one of {', '.join(map(str, sizes))}" if sizes else "fixed, not settable"
        refuse(f"dimensions for this model: {allowed}.", "dimensions")
    size = {}
    if dimensions is not None:
        size = {field: {"outputEmbeddingLength": dimensions} if field == "embeddingConfig" else dimensions}
    input_type = input_type or DEFAULT_INPUT_TYPE
    if COHERE in model:
        return [
            _invoke(model, {"texts": texts[start : start + COHERE_BATCH], "input_type": input_type,
                            "embedding_types": ["float"], **size})
            for start in range(0, len(texts), COHERE_BATCH)
        ]  # fmt: skip
    if NOVA in model:
        return [_invoke(model, _nova(text, NOVA_PURPOSES[input_type], size)) for text in texts]
    # OpenAI's embeddings are unit length (clients compare them by dot product); Titan v2 can say so.
    unit = {"normalize": True} if "titan-embed-text-v2" in model else {}
    return [_invoke(model, {"inputText": text, **size, **unit}) for text in texts]


def _nova(text, purpose, size):
    """Nova's body for one text; a text past the model's limit is refused, not cut short (truncationMode NONE)."""
    params = {"embeddingPurpose": purpose, **size, "text": {"truncationMode": "NONE", "value": text}}
    return {
        "schemaVersion": "nova-multimodal-embed-v1",
        "taskType": "SINGLE_EMBEDDING",
        "singleEmbeddingParams": params,
    }


def _vectors(answer):
    """The float vectors in one InvokeModel answer (Titan and Nova: one, Cohere: one per text)."""
    if "embedding" in answer:
        return [answer["embedding"]]
    found = answer.get("embeddings")
    if isinstance(found, dict):
        found = found.get("float")
    if isinstance(found, list) and found and all(isinstance(item, dict) for item in found):  # Nova's
        found = [item.get("embedding") for item in found]
    if not isinstance(found, list) or not all(isinstance(vector, (list, array)) for vector in found):
        raise ApiError(502, "Bedrock's embedding answer holds no float vectors.")
    return found


def _encoded(vector, encoding):
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings(body, answers, token_counts=None):
    """OpenAI's embeddings answer from the parsed InvokeModel answers of ``embedding_calls(body)``.

    ``token_counts`` (one per answer, from the ``x-amzn-bedrock-input-token-count`` header) is
    used where the answer does not count its tokens itself (Cohere).
    """
    vectors, tokens = [], 0
    for position, answer in enumerate(answers):
        vectors.extend(_vectors(answer))
        counted = answer.get("inputTextTokenCount")
        if counted is None and token_counts:
            counted = token_counts[position]
        tokens += int(counted or 0)
    if len(vectors) != len(body["input"]):
        raise ApiError(502, "Bedrock answered with a different number of embeddings than inputs.")
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, body["encoding_format"])}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
