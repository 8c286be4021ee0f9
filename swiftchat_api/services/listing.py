"""Every model id the OpenAI-compatible API takes in a region: chat, embedding and image models.

A model is listed under each id Bedrock accepts for it: its bare id where it runs on demand,
each cross-region inference profile the region lists (``us.``, ``eu.``, ``apac.``, ``global.``
...), and each application inference profile of the account (by its ARN, as Converse takes it).
Each entry says which route serves it: ``chat``, ``embedding`` or ``image``.
"""

import re

from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import upstream
from ..profile import resolve

# outputModalities → kind, first match: a multimodal embedding model outputs EMBEDDING only.
KINDS = (("EMBEDDING", "embedding"), ("IMAGE", "image"), ("TEXT", "chat"))
_CALLABLE = {"ACTIVE", "LEGACY"}  # a legacy model still answers until its end of life
_CONTEXT_VARIANT = re.compile(r":\d+k$")  # anthropic....-v1:0:200k: provisioned throughput only
_MAX_PAGES = 20  # a listing that never ends must not hold the request for ever


def kind(summary):
    """The route a foundation model serves (``chat``, ``embedding``, ``image``), or None."""
    outputs = summary.get("outputModalities") or []
    return next((name for modality, name in KINDS if modality in outputs), None)


def _profiles(bedrock, profile_type):
    """The region's inference profiles of a type; [] when Bedrock will not list them."""
    found = []
    try:
        pages = bedrock.get_paginator("list_inference_profiles").paginate(typeEquals=profile_type)
        for page, _ in zip(pages, range(_MAX_PAGES), strict=False):
            found.extend(page.get("inferenceProfileSummaries") or [])
    except (ClientError, BotoCoreError):
        return []
    return found


def _entry(model_id, summary, name=None):
    return {
        "id": model_id,
        "kind": kind(summary),
        "owned_by": summary["modelId"].split(".", 1)[0],
        "name": name or summary.get("modelName") or summary["modelId"],
    }


def _foundation(bedrock):
    """The region's callable foundation models of a kind this API serves, by id; UpstreamError if refused."""
    try:
        summaries = bedrock.list_foundation_models().get("modelSummaries") or []
    except (ClientError, BotoCoreError) as error:
        raise upstream(error) from None
    return {
        summary["modelId"]: summary
        for summary in summaries
        if kind(summary)
        and (summary.get("modelLifecycle") or {}).get("status") in _CALLABLE
        and not _CONTEXT_VARIANT.search(summary["modelId"])
    }


def offered(bedrock, region):
    """``[{"id", "kind", "owned_by", "name"}]``: every id of the region, bare ids first.

    UpstreamError when Bedrock will not list the region's models; profiles it will not list are left out.
    """
    models = _foundation(bedrock)
    listed = [_entry(model_id, summary) for model_id, summary in models.items()
              if "ON_DEMAND" in (summary.get("inferenceTypesSupported") or [])]  # fmt: skip
    for profile_type in ("SYSTEM_DEFINED", "APPLICATION"):
        for profile in _profiles(bedrock, profile_type):
            arns = [model.get("modelArn") or "" for model in profile.get("models") or []]
            summary = models.get(arns[0].rsplit("/", 1)[-1]) if arns else None
            if summary is None or profile.get("status", "ACTIVE") != "ACTIVE":
                continue
            if profile_type == "APPLICATION":
                listed.append(_entry(profile["inferenceProfileArn"], summary, profile.get("inferenceProfileName")))
            else:
                listed.append(_entry(profile["inferenceProfileId"], summary))
    return listed


def behind(model_id, bedrock):
    """The entry for an id the listing does not hold: an application profile Bedrock resolves, or None."""
    base = resolve(model_id, bedrock)
    if base == model_id:
        return None
    summary = _foundation(bedrock).get(base)
    return _entry(model_id, summary) if summary else None
