"""The Bedrock calls behind the /v1 routes that answer whole (no stream): Converse and embeddings."""

import json

from gevent.pool import Pool

from ..openai_compat import OpenAIError

EMBEDDING_CONCURRENCY = 8  # InvokeModel calls one embeddings request has in flight at once
_TOKEN_COUNT = "x-amzn-bedrock-input-token-count"


def converse(client, args):
    """Bedrock's whole Converse answer for the given boto3 arguments."""
    return client.converse(**args)


def _invoke(client, call):
    answer = client.invoke_model(**call)
    try:
        parsed = json.loads(answer["body"].read())
    except (ValueError, RecursionError):
        raise OpenAIError(502, "Bedrock's embedding answer is not JSON.") from None
    if not isinstance(parsed, dict):
        raise OpenAIError(502, "Bedrock's embedding answer is not a JSON object.")
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
