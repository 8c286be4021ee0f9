"""/v1/embeddings: token arrays (LangChain's default), Cohere's input_type and Nova, with real clients.

The server decodes token arrays from the encodings it ships; the clients here (tiktoken, through
LangChain) read the same files from a cache directory, since tiktoken would otherwise download
them and this machine reaches no internet.
"""

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import openai
import pytest
import tiktoken
import tiktoken_ext.openai_public
from conftest import emulator_calls
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_openai import OpenAIEmbeddings

from swiftchat_api.emulator import embeddings as emulated
from swiftchat_api.oai import tokens

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
NOVA = "amazon.nova-2-multimodal-embeddings-v1:0"
URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"  # where tiktoken would fetch them


@pytest.fixture(scope="module", autouse=True)
def offline_tiktoken(tmp_path_factory):
    """tiktoken (the clients' tokenizer) reading the shipped encodings from its cache, never the internet."""
    cache = tmp_path_factory.mktemp("tiktoken")
    for name in tokens.ENCODINGS:
        shutil.copy(tokens.ENCODINGS[name].path, cache / hashlib.sha1(URL.format(name).encode()).hexdigest())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        yield


def vectors(answer):
    return [item.embedding for item in answer.data]


def sent_bodies(emulator, model):
    """The bodies of the emulator's latest InvokeModel calls to ``model``, oldest first."""
    return [call["body"] for call in emulator_calls(emulator) if call.get("modelId") == model]


# --- the encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(tokens.ENCODINGS))
def test_the_shipped_encodings_are_the_files_tiktoken_expects(name):
    source = Path(tiktoken_ext.openai_public.__file__).read_text()
    published = re.search(rf"{name}\.tiktoken\",\s*expected_hash=\"([0-9a-f]{{64}})\"", source).group(1)
    assert hashlib.sha256(tokens.ENCODINGS[name].path.read_bytes()).hexdigest() == published
    assert tokens.ENCODINGS[name].sha256 == published


def test_a_damaged_rank_file_is_refused():
    data = bytearray(tokens.ENCODINGS["cl100k_base"].path.read_bytes())
    data[100] ^= 1
    with pytest.raises(tokens.DamagedEncoding):
        tokens.read_ranks(bytes(data), tokens.ENCODINGS["cl100k_base"].sha256)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(max_size=200), name=st.sampled_from(sorted(tokens.ENCODINGS)))
def test_decoding_gives_back_what_tiktoken_encoded(text, name):
    # disallowed_special=(): text that spells a special token ("<|endoftext|>") is text, as clients send it
    assert tokens.decode(tiktoken.get_encoding(name).encode(text, disallowed_special=()), name) == text


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data(), name=st.sampled_from(sorted(tokens.ENCODINGS)))
def test_any_ids_decode_as_tiktoken_decodes_them(data, name):
    ids = data.draw(st.lists(st.integers(0, tokens.LARGEST[name]).filter(lambda i: tokens.known(i, name)), max_size=30))
    assert tokens.decode(ids, name) == tiktoken.get_encoding(name).decode(ids)  # split characters become U+FFFD


# --- token arrays through the server ---------------------------------------------------------


def test_token_arrays_are_embedded_as_the_text_they_encode(client, emulator):
    texts = ["hello world", "Grüße aus Köln 🌍"]
    arrays = [tiktoken.get_encoding("cl100k_base").encode(text) for text in texts]
    assert arrays[0] == [15339, 1917]
    by_text = vectors(client.embeddings.create(model=TITAN, input=texts, encoding_format="float"))
    assert vectors(client.embeddings.create(model=TITAN, input=arrays, encoding_format="float")) == by_text
    one = client.embeddings.create(model=TITAN, input=[15339, 1917], encoding_format="float")  # one array
    assert vectors(one) == by_text[:1]
    assert sent_bodies(emulator, TITAN)[-1]["inputText"] == "hello world"


def test_o200k_tokens_are_read_as_o200k(client):
    o200k = tiktoken.get_encoding("o200k_base")
    by_text = vectors(client.embeddings.create(model=TITAN, input="hello world", encoding_format="float"))
    named = client.embeddings.create(
        model=TITAN,
        input=[o200k.encode("hello world")],
        encoding_format="float",
        extra_body={"token_encoding": "o200k_base"},
    )
    assert vectors(named) == by_text
    past_cl100k = o200k.encode("hello world ✨ 你好世界")
    assert max(past_cl100k) > tokens.LARGEST["cl100k_base"]  # only o200k_base has such ids
    guessed = client.embeddings.create(model=TITAN, input=[past_cl100k], encoding_format="float")
    assert vectors(guessed) == vectors(
        client.embeddings.create(model=TITAN, input="hello world ✨ 你好世界", encoding_format="float")
    )


@pytest.mark.parametrize(
    ("given_input", "param"),
    [
        ([[15339, 100256]], "input[0][1]"),  # no token of cl100k_base
        ([[15339, -1]], "input[0]"),
        ([[15339, 1.5]], "input[0]"),
        ([[15339, 200019]], "input[0]"),  # past every encoding
        ([[]], "input[0]"),
        ([[1] * 8193], "input[0]"),
        ([[15339]] * 2048 + [[15339]], "input"),
        ([[[15339]]], "input[0]"),
        ([[220, 220]], "input[0]"),  # blank text
        (["hello", [15339]], "input"),
    ],
)
def test_token_arrays_that_cannot_be_read_are_refused_by_position(client, given_input, param):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=TITAN, input=given_input)
    assert refused.value.body["param"] == param


def test_as_many_tokens_as_openai_takes_in_one_request_and_no_more(client):
    answer = client.embeddings.create(model=TITAN, input=[[15339] * 8000] * 37)  # 296,000 ids, as LangChain sends
    assert len(answer.data) == 37
    with pytest.raises(openai.BadRequestError, match="300000 tokens"):
        client.embeddings.create(model=TITAN, input=[[15339] * 7501] * 40)  # 300,040


def test_langchain_openai_embeddings_with_its_defaults(server, client, emulator):
    """LangChain's OpenAIEmbeddings() cuts texts into cl100k_base tokens and sends those; base64 by default."""
    lang = OpenAIEmbeddings(model=TITAN, base_url=f"http://127.0.0.1:{server.port}/v1", api_key="test-key-0123456789")
    texts = ["hello world", "The quick brown fox jumps over the lazy dog. " * 40]
    found = lang.embed_documents(texts)
    assert sorted(body["inputText"] for body in sent_bodies(emulator, TITAN)[-2:]) == sorted(texts)  # decoded
    expected = vectors(client.embeddings.create(model=TITAN, input=texts, encoding_format="float"))
    for got, want in zip(found, expected, strict=True):
        assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(got, want, strict=True))
    query = lang.embed_query("hello world")
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(query, expected[0], strict=True))


# --- Cohere's input_type ---------------------------------------------------------------------


def test_cohere_gets_the_input_type_the_client_names(client, emulator):
    client.embeddings.create(
        model=COHERE, input="what is the capital of France?", extra_body={"input_type": "search_query"}
    )
    assert sent_bodies(emulator, COHERE)[-1]["input_type"] == "search_query"
    client.embeddings.create(model=COHERE, input="Paris is the capital of France.")
    assert sent_bodies(emulator, COHERE)[-1]["input_type"] == "search_document"  # as before: documents


@pytest.mark.parametrize(("model", "input_type"), [(COHERE, "image"), (COHERE, "query"), (TITAN, "search_query")])
def test_an_input_type_the_model_cannot_take_is_refused(client, model, input_type):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=model, input="hi", extra_body={"input_type": input_type})
    assert refused.value.body["param"] == "input_type"


# --- Nova Multimodal Embeddings --------------------------------------------------------------


def test_nova_embeds_each_text_with_its_size_and_purpose(client, emulator):
    answer = client.embeddings.create(
        model=NOVA, input=["a question", "another"], dimensions=1024, encoding_format="float",
        extra_body={"input_type": "search_query"},
    )  # fmt: skip
    assert [len(vector) for vector in vectors(answer)] == [1024, 1024]
    assert vectors(answer)[0] == emulated.vector(NOVA, "a question", 1024)
    assert answer.usage.prompt_tokens == 3  # from Bedrock's token-count header
    sent = [body["singleEmbeddingParams"] for body in sent_bodies(emulator, NOVA)[-2:]]  # made side by side
    assert sorted(sent, key=lambda params: params["text"]["value"]) == [
        {
            "embeddingPurpose": "TEXT_RETRIEVAL",
            "embeddingDimension": 1024,
            "text": {"truncationMode": "NONE", "value": text},
        }
        for text in ("a question", "another")
    ]
    default = client.embeddings.create(model=NOVA, input="a document", encoding_format="float")
    assert len(vectors(default)[0]) == 3072
    assert sent_bodies(emulator, NOVA)[-1]["singleEmbeddingParams"]["embeddingPurpose"] == "GENERIC_INDEX"


def test_nova_sizes_it_does_not_draw_are_refused(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=NOVA, input="hi", dimensions=512)
    assert refused.value.body["param"] == "dimensions"


def _nova_body(**params):
    text = {"truncationMode": "END", "value": "hello"}
    return {
        "taskType": "SINGLE_EMBEDDING",
        "singleEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX", "text": text, **params},
    }


@pytest.mark.parametrize(
    "body",
    [
        {**_nova_body(), "taskType": "SEGMENTED_EMBEDDING"},
        {**_nova_body(), "schemaVersion": "v2"},
        {**_nova_body(), "inputText": "hello"},
        _nova_body(embeddingPurpose="SEARCH"),
        _nova_body(embeddingDimension=512),
        _nova_body(text={"value": "hello"}),
        _nova_body(text={"truncationMode": "END", "value": " "}),
        _nova_body(image={"format": "png", "source": {"bytes": "AA=="}}),
        {"taskType": "SINGLE_EMBEDDING"},
    ],
)
def test_the_emulator_refuses_nova_bodies_bedrock_refuses(body):
    status, answer, _ = emulated.invoke(NOVA, json.loads(json.dumps(body)))
    assert status == 400 and answer["message"].startswith("Malformed input request")
