"""The model catalogue the apps offer: Bedrock's foundation models, filtered and named per region."""

from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import upstream

_USABLE = {"ON_DEMAND", "INFERENCE_PROFILE"}
_GUESSABLE = ("us", "eu", "apac")  # geographies whose profile prefix is safe to guess
_MAX_PROFILE_PAGES = 20  # a listing that never ends must not hold the request for ever


def geography(region):
    """The inference-profile prefix of a region's geography (us, eu, apac, ...)."""
    return "apac" if region.startswith("ap-") else region.split("-", 1)[0]


def _profiles(bedrock):
    """model id → [profile ids], or None when the profiles cannot be listed."""
    found = {}
    try:
        pages = bedrock.get_paginator("list_inference_profiles").paginate(typeEquals="SYSTEM_DEFINED")
        for page, _ in zip(pages, range(_MAX_PROFILE_PAGES), strict=False):
            for profile in page.get("inferenceProfileSummaries", []):
                for model in profile.get("models", []):
                    model_id = model.get("modelArn", "").rsplit("/", 1)[-1]
                    ids = found.setdefault(model_id, [])
                    if profile["inferenceProfileId"] not in ids:
                        ids.append(profile["inferenceProfileId"])
    except (ClientError, BotoCoreError):
        return None
    return found


def _regional_profile(model_id, profiles, region):
    """The profile the region lists for a model, its own geography's first, or None."""
    candidates = profiles.get(model_id, [])
    geo = geography(region)
    ranked = [p for p in candidates if p.startswith(f"{geo}.")] + [p for p in candidates if p.startswith("global.")]
    ranked += [p for p in candidates if p not in ranked]
    return ranked[0] if ranked else None


def _text_id(summary, profiles, region):
    """A text model's id: its profile whenever it has one (as the original server did), else the bare id."""
    model_id, kinds = summary["modelId"], summary.get("inferenceTypesSupported", [])
    if "INFERENCE_PROFILE" in kinds:
        if profiles is not None:
            profile = _regional_profile(model_id, profiles, region)
            if profile:
                return profile
        elif geography(region) in _GUESSABLE:
            return f"{geography(region)}.{model_id}"
    return model_id if "ON_DEMAND" in kinds else None


def _image_id(summary, profiles, region):
    """An image model's id: bare when callable on demand, else the region's listed profile (never guessed)."""
    model_id, kinds = summary["modelId"], summary.get("inferenceTypesSupported", [])
    if "ON_DEMAND" in kinds:
        return model_id
    if "INFERENCE_PROFILE" in kinds and profiles is not None:
        return _regional_profile(model_id, profiles, region)
    return None


def catalogue(bedrock, region):
    """``{"textModel": [...], "imageModel": [...]}`` for a region; ``[]`` when nothing is offered.

    UpstreamError when Bedrock will not list the region's models.
    """
    try:
        summaries = bedrock.list_foundation_models().get("modelSummaries", [])
    except (ClientError, BotoCoreError) as error:
        raise upstream(error) from None
    profiles = _profiles(bedrock)
    text, image, names = [], [], set()
    for summary in summaries:
        if summary.get("modelLifecycle", {}).get("status") != "ACTIVE":
            continue
        if not _USABLE.intersection(summary.get("inferenceTypesSupported", [])) or summary["modelId"].endswith("k"):
            continue
        outputs = summary.get("outputModalities", [])
        if "TEXT" in outputs and summary.get("responseStreamingSupported"):
            kind, offered = text, _text_id(summary, profiles, region)
        elif "IMAGE" in outputs:
            kind, offered = image, _image_id(summary, profiles, region)
        else:
            continue
        if offered is None or summary.get("modelName") in names:
            continue
        names.add(summary.get("modelName"))
        kind.append({"modelId": offered, "modelName": summary.get("modelName")})
    return {"textModel": text, "imageModel": image} if text or image else []
