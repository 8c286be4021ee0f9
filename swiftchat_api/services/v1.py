"""The Bedrock calls behind the /v1 routes that answer whole (no stream): Converse and embeddings."""

import json
from array import array

from botocore.exceptions import BotoCoreError, ClientError
from gevent.pool import Pool

from .. import adapt
from ..exceptions import ApiError, upstream

EMBEDDING_CONCURRENCY = 8  # InvokeModel calls one embeddings request has in flight at once
_TOKEN_COUNT = "x-amzn-bedrock-input-token-count"


def converse(client, args):
    """Bedrock's whole Converse answer for the given boto3 arguments; UpstreamError if Bedrock fails it."""
    try:
        return adapt.call(client.converse, args)  # a parameter Bedrock refuses by name: learnt, and once more
    except (ClientError, BotoCoreError) as error:
        raise upstream(error) from None


def _compact(value):
    """A JSON object's lists of numbers (vectors) as arrays of doubles, as the parser makes each object.

    2,048 vectors of 1,536 numbers are 3 million float objects of 24 bytes (and the lists that
    hold them), which Python's allocator keeps in its arenas long after they are freed: the
    worker stayed 100 MB larger after a few such requests. As arrays they are 8 bytes a number
    in blocks the C library gives back, and only one batch's floats ever exist at once.
    """
    for key, item in value.items():
        if type(item) is list and item:
            try:
                if type(item[0]) is list:
                    value[key] = [array("d", vector) for vector in item]
                else:
                    value[key] = array("d", item)
            except TypeError:  # not numbers: left as it came
                pass
    return value


def _invoke(client, call):
    try:
        answer = client.invoke_model(**call)
        raw = answer["body"].read()
    except (ClientError, BotoCoreError) as error:
        raise upstream(error) from None
    try:
        parsed = json.loads(raw, object_hook=_compact)
    except (ValueError, RecursionError):
        raise ApiError(502, "Bedrock's embedding answer is not JSON.") from None
    if not isinstance(parsed, dict):
        raise ApiError(502, "Bedrock's embedding answer is not a JSON object.")
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    count = headers.get(_TOKEN_COUNT)
    return parsed, int(count) if count and count.isdigit() else None


def embed(client, calls):
    """(parsed answers, input token counts) of the InvokeModel calls, in order; a few at a time.

    Titan embeds one text per call, so a request with many inputs makes many calls; they run
    side by side, bounded, and the first failure stops the rest.
    """
    pool = Pool(EMBEDDING_CONCURRENCY)
    try:
        results = list(pool.imap(lambda call: _invoke(client, call), calls))
    finally:
        pool.kill()
    return [answer for answer, _ in results], [count for _, count in results]
