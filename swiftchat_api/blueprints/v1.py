"""The OpenAI-compatible API: /v1/chat/completions, /v1/models, /v1/embeddings, /v1/images/generations.

Named v1, not openai, so that no module inside the package shadows the ``openai`` SDK. Every
answer that is not a success is OpenAI's ``{"error": {"message", "type", "param", "code"}}``
with the status the SDKs turn into their exception classes (errors.py renders them).
"""

from functools import partial

from flask import Blueprint, Response, current_app, request
from marshmallow import ValidationError

from .. import adapt, auth, prompt_cache
from .. import profile as profiles
from ..exceptions import ApiError
from ..oai import chat as openai_chat
from ..oai import embeddings as openai_embeddings
from ..oai import images as openai_images
from ..oai import legacy, responses_store
from ..oai import responses as openai_responses
from ..oai.responses_schema import ResponsesRequest
from ..oai.responses_stream import ResponsesStream
from ..oai.schemas import MAX_EMBEDDING_VALUES, ChatCompletionRequest, EmbeddingsRequest, ImagesRequest
from ..oai.stream import ChunkTranslator, OpenAIStream
from ..schemas import RegionRequest
from ..services import images, listing
from ..services import v1 as calls
from ..store import response_owner
from .common import (
    admit_chat,
    body,
    body_budget,
    facts,
    large_json,
    metered,
    require_key,
    resources,
)
from .streaming import stream_response

bp = Blueprint("v1", __name__)

REGION_HEADER = "X-Bedrock-Region"
FALLBACK_REGION = "us-east-1"  # when neither the header nor the server's environment names one
_chat = ChatCompletionRequest()
_embeddings = EmbeddingsRequest()
_images = ImagesRequest()
_responses = ResponsesRequest()
_region = RegionRequest()


def _authenticate():
    """Check the caller's key and return its Identity; no key at all is a 401 too, as OpenAI answers it."""
    try:
        return require_key()
    except ApiError as error:
        if error.status == 401:
            raise ApiError(401, error.detail, code="invalid_api_key") from None
        if error.status == 403:  # no key, or not a Bearer one
            message = f"{error.detail}: send your API key as Authorization: Bearer <key>."
            raise ApiError(401, message, code="invalid_api_key") from None
        raise


def _owner():
    """Check the caller's key; the owner of its stored responses: the key's name and a hash of the key itself."""
    identity = _authenticate()
    return response_owner(identity.name, resources().store.digest(auth.presented_key(request.headers)))


def _bedrock_region():
    """The region whose Bedrock serves this request: the header's, else the server's default."""
    given = request.headers.get(REGION_HEADER)
    if given is None:
        # The clients' session was made with the configured region (aws.Clients), else boto3's own.
        return resources().clients.default_region or FALLBACK_REGION
    try:
        return _region.load({"region": given})["region"]
    except ValidationError:
        raise ApiError(400, f"{REGION_HEADER}: Not a valid AWS region name.", param=REGION_HEADER) from None


def _runtime(region, streaming=False):
    return resources().clients.get("bedrock-runtime", region, streaming=streaming)


def _record_model(model):
    """The model the access log and the per-key usage name; set before the call, so a refused one counts too."""
    facts().model = model


def _record_usage(usage):
    """Bedrock's usage of a call answered whole, for the access log and the per-key token budget."""
    facts().usage = usage


def _read_only(tokens):
    """The usage of a call that read ``tokens`` and wrote none (embeddings), as Bedrock counts it."""
    return {"inputTokens": tokens, "outputTokens": 0, "totalTokens": tokens}


@bp.post("/v1/chat/completions")
def chat_completions():
    """Answer a chat with a Bedrock model, streamed as server-sent events or whole."""
    _authenticate()
    region = _bedrock_region()
    budget = body_budget()  # the body, then the JSON in its tool calls' arguments, on one set of limits
    chat = body(_chat, budget)
    args = _cached(openai_chat.converse_args(_resolved(chat, region), budget))
    if chat["stream"]:
        return adapted(
            stream_response(_runtime(region, streaming=True), args, _chunks(chat, args), real_statuses=True), args
        )
    return adapted(_whole(_runtime(region), chat, args), args)


def _resolved(chat, region):
    """The chat, its model's profile known: an application profile's model asked of Bedrock once per process."""
    if profiles.is_application_profile(chat["model"]):
        profiles.resolve(chat["model"], resources().clients.get("bedrock", region))
    return chat


def _cached(args):
    """The Converse arguments with the caller's cache points fitted to the model, and the server's own if asked."""
    prompt_cache.adapt(args)
    if resources().config.prompt_cache == "auto":
        prompt_cache.place(args)
    return args


def adapted(answer, args):
    """The answer with ``x-swiftchat-adapted`` saying what the request lost or changed to fit its model, if anything."""
    response = current_app.make_response(answer)
    value = adapt.header_value(args)
    if value:
        response.headers[adapt.ADAPTED_HEADER] = value
    return response


def _chunks(chat, args):
    """The /v1 stream dialect for one answer, whose chunks share an id and a time."""
    usage_chunk = openai_chat.include_usage(chat)
    translator = ChunkTranslator(
        chat["model"], openai_chat.new_id(), openai_chat.now(), usage_chunk, openai_chat.answer_tool(chat, args)
    )
    if chat.get("functions"):  # asked in the legacy functions API: answered in it
        translator = legacy.FunctionCallChunks(translator)
    return OpenAIStream(translator)


def _converse(client, model, args):
    """Bedrock's whole Converse answer, the call admitted against the key's limits and its usage recorded."""
    _record_model(model)
    admit_chat(args)
    answer = calls.converse(client, args)
    _record_usage(answer.get("usage"))
    return answer


def _whole(client, chat, args):
    """A chat answered whole: one Converse call, its ``chat.completion``."""
    answer_id, created = openai_chat.new_id(), openai_chat.now()
    answer = _converse(client, chat["model"], args)
    completion = openai_chat.completion(answer, chat["model"], answer_id, created, openai_chat.answer_tool(chat, args))
    return legacy.function_call_answer(completion) if chat.get("functions") else completion


@bp.post("/v1/responses")
def create_response():
    """Answer as OpenAI's Responses API does, streamed as server-sent events or whole; stored unless told not to."""
    owner = _owner()
    region = _bedrock_region()
    budget = body_budget()
    wanted = _resolved(body(_responses, budget), region)
    turn = _turn(owner, wanted, budget)
    if wanted["stream"]:
        dialect = ResponsesStream(turn.draft, turn.answer_tool, _keeper(owner, turn))
        streamed = stream_response(_runtime(region, streaming=True), turn.args, dialect, real_statuses=True)
        return adapted(streamed, turn.args)
    return adapted(_whole_response(_runtime(region), owner, turn), turn.args)


def _turn(owner, wanted, budget):
    """The request translated, after the stored conversation it continues (read before Bedrock is called)."""
    stored = resources().responses
    history = stored.history(owner, wanted["previous_response_id"])
    turn = openai_responses.Turn(wanted, history, responses_store.new_id(), budget, stored.enabled)
    _cached(turn.args)
    return turn


def _keeper(owner, turn):
    """What stores ``turn``'s final response for ``owner``, or None; it runs in the stream, outside the request."""
    if not turn.store:
        return None
    keep = resources().responses.keep
    return partial(keep, owner, input_items=turn.input, previous_response_id=turn.previous)


def _whole_response(client, owner, turn):
    """A response answered whole: one Converse call, its ``response`` object, stored before it is answered."""
    final = turn.response(_converse(client, turn.args["modelId"], turn.args))
    if turn.store and final["status"] != "failed":
        unstored = resources().responses.keep(owner, final, turn.input, turn.previous)
        if unstored:
            turn.args.note(unstored)
    return final


def _offered(region):
    """Every model id of the region as OpenAI lists models, with its kind; cached as /api/models is."""
    shared = resources()
    bedrock = shared.clients.get("bedrock", region)
    found = shared.models_cache.get(("v1", region), lambda: listing.offered(bedrock, region))
    return [_model(entry) for entry in found]


def _model(entry):
    """An OpenAI model object; ``kind`` says which route serves it (``chat``, ``embedding``, ``image``)."""
    return {
        "id": entry["id"],
        "object": "model",
        "created": openai_chat.now(),  # Bedrock does not say when a model came out
        "owned_by": entry["owned_by"],
        "name": entry["name"],  # shown by Open WebUI and others in place of the id
        "kind": entry["kind"],
    }


def _application_profile(model_id, region):
    """An application profile's ARN the listing does not hold (another page, a newer one), or None."""
    if not profiles.is_application_profile(model_id):
        return None
    found = listing.behind(model_id, resources().clients.get("bedrock", region))
    return _model(found) if found else None


@bp.get("/v1/models")
def list_models():
    """List every model id of the region: chat, embedding and image models, bare and through inference profiles."""
    _authenticate()
    return {"object": "list", "data": _offered(_bedrock_region())}


@bp.get("/v1/models/<path:model_id>")
def retrieve_model(model_id):
    """Describe one model id of the region, an application inference profile's ARN included."""
    _authenticate()
    region = _bedrock_region()
    found = next((model for model in _offered(region) if model["id"] == model_id), None)
    if found is None and (found := _application_profile(model_id, region)) is None:
        raise ApiError(404, "This region offers no model with that id.", param="model", code="model_not_found")
    return found


@bp.post("/v1/embeddings")
def create_embeddings():
    """Embed texts (or token arrays) with a Titan, Cohere or Nova embedding model."""
    _authenticate()
    region = _bedrock_region()
    # LangChain sends up to 300,000 token ids at once: more values than other bodies may hold.
    wanted = body(_embeddings, body_budget(MAX_EMBEDDING_VALUES))
    model_calls = openai_embeddings.embedding_calls(wanted)
    _record_model(wanted["model"])
    answer = openai_embeddings.embeddings(wanted, *calls.embed(_runtime(region), model_calls))
    _record_usage(_read_only(answer["usage"]["prompt_tokens"]))
    return large_json(answer)


@bp.post("/v1/images/generations")
def generate_image():
    """Draw an image with a Titan, Nova Canvas or Stability model."""
    _authenticate()
    region = _bedrock_region()
    wanted = openai_images.image_request(body(_images))
    _record_model(wanted["modelId"])
    helper = images.helper_model(region, resources().config.image_helper_model_id)
    drawn = images.generate(metered(_runtime(region)), helper, wanted)  # the helper's tokens count toward the budget
    return openai_images.image_answer(drawn, openai_chat.now())


_retrieve_query = responses_store.RetrieveQuery()
_input_items_query = responses_store.InputItemsQuery()
_no_query = responses_store.NoQuery()


@bp.get("/v1/responses/<response_id>")
def retrieve_response(response_id):
    """Answer a stored response, to the key that made it only."""
    owner = _owner()
    responses_store.query(_retrieve_query, request.args)
    stored = resources().responses.retrieve(owner, response_id)
    return Response(stored, mimetype="application/json")


@bp.delete("/v1/responses/<response_id>")
def delete_response(response_id):
    """Delete a stored response of the key that made it."""
    owner = _owner()
    responses_store.query(_no_query, request.args)
    return resources().responses.delete(owner, response_id)


@bp.get("/v1/responses/<response_id>/input_items")
def list_input_items(response_id):
    """List the input items of a stored response, a page at a time."""
    owner = _owner()
    page = responses_store.query(_input_items_query, request.args)
    return resources().responses.input_items(owner, response_id, **page)
