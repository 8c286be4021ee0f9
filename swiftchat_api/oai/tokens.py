"""Token ids back to text, in OpenAI's cl100k_base and o200k_base encodings, for embedding inputs.

OpenAI's embeddings API takes token arrays, and LangChain's ``OpenAIEmbeddings()`` sends nothing
else: it cuts every text into cl100k_base tokens first (the encoding of OpenAI's embedding
models, and its fallback for a model tiktoken does not know, which every Bedrock id is).

The encodings' rank files ship in ``encodings/``, byte for byte the files tiktoken downloads at
run time (and this server could not: it reaches no internet), each checked against the SHA-256
tiktoken itself expects before it is used. Decoding needs no tokenizer: a token is its bytes in
the rank file (or a special token's text), and a text is its tokens' bytes put together. Only
that table is kept, a few MB per encoding, where tiktoken's own encoder holds 40–80 MB.
"""

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent / "encodings"


@dataclass(frozen=True)
class Encoding:
    """One of OpenAI's BPE encodings: its rank file, that file's SHA-256 and its special tokens."""

    name: str
    sha256: str
    special: dict  # id → text

    @property
    def path(self):
        return HERE / f"{self.name}.tiktoken"


ENCODINGS = {
    "cl100k_base": Encoding(
        "cl100k_base",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        {100257: "<|endoftext|>", 100258: "<|fim_prefix|>", 100259: "<|fim_middle|>", 100260: "<|fim_suffix|>",
         100276: "<|endofprompt|>"},
    ),
    "o200k_base": Encoding(
        "o200k_base",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        {199999: "<|endoftext|>", 200018: "<|endofprompt|>"},
    ),
}  # fmt: skip
DEFAULT = "cl100k_base"
LARGEST = {name: max(encoding.special) for name, encoding in ENCODINGS.items()}  # every id is at most this


class DamagedEncoding(RuntimeError):
    """A shipped rank file is not the one OpenAI published."""


def read_ranks(data, expected_sha256):
    """A rank file's tokens as a list of bytes indexed by id; DamagedEncoding unless its hash is the expected one."""
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise DamagedEncoding(f"the rank file's SHA-256 is not {expected_sha256}")
    tokens = []
    for line in data.splitlines():
        token, rank = line.split()
        if int(rank) != len(tokens):  # OpenAI's files list every rank once, in order
            raise DamagedEncoding("the rank file skips or repeats a rank")
        tokens.append(base64.b64decode(token))
    return tokens


@cache
def table(name):
    """The encoding's tokens (bytes by id), read and checked once per process."""
    encoding = ENCODINGS[name]
    tokens = read_ranks(encoding.path.read_bytes(), encoding.sha256)
    for token_id, text in encoding.special.items():
        tokens.extend([None] * (token_id + 1 - len(tokens)))
        tokens[token_id] = text.encode()
    return tokens


def known(token_id, name):
    """Whether an id stands for a token of the encoding (ids between its ranks and specials do not)."""
    tokens = table(name)
    return 0 <= token_id < len(tokens) and tokens[token_id] is not None


def decode(ids, name):
    """The text of a token array (every id known); bytes that are no UTF-8 become U+FFFD, as tiktoken does."""
    tokens = table(name)
    return b"".join(tokens[token_id] for token_id in ids).decode("utf-8", "replace")


def fitting(arrays):
    """The encoding token arrays are in: cl100k_base, unless an id lies past its last (only o200k_base has it)."""
    largest = max((max(array) for array in arrays if array), default=0)
    return DEFAULT if largest <= LARGEST[DEFAULT] else "o200k_base"
