"""The model catalogue the apps offer: Bedrock's foundation models, filtered and named per region."""

from botocore.exceptions import BotoCoreError, ClientError

_USABLE = {"ON_DEMAND", "INFERENCE_PROFILE"}


def geography(region):
    """The inference-profile prefix of a region's geography (us, eu, apac, ...)."""
    return "apac" if region.startswith("ap-") else region.split("-", 1)[0]


def _profiles(bedrock):
    """model id → [profile ids], or None when the profiles cannot be listed."""
    found = {}
    try:
        for page in bedrock.get_paginator("list_inference_profiles").paginate(typeEquals="SYSTEM_DEFINED"):
            for profile in page.get("inferenceProfileSummaries", []):
                for model in profile.get("models", []):
                    model_id = model.get("modelArn", "").rsplit("/", 1)[-1]
                    found.setdefault(model_id, []).append(profile["inferenceProfileId"])
    except (ClientError, BotoCoreError):
        return None
    return found


def _offered_id(summary, profiles, region):
    """The id an app should call the model by, or None when it cannot be called in this region."""
    model_id = summary["modelId"]
    if "ON_DEMAND" in summary.get("inferenceTypesSupported", []):
        return model_id
    geo = geography(region)
    if profiles is None:
        return f"{geo}.{model_id}" if geo in ("us", "eu", "apac") else None
    candidates = profiles.get(model_id, [])
    preferred = [p for p in candidates if p.startswith(f"{geo}.")] or [p for p in candidates if "." in p]
    return preferred[0] if preferred else None


def catalogue(bedrock, region):
    """``{"textModel": [...], "imageModel": [...]}`` for a region; ``[]`` when nothing is offered."""
    summaries = bedrock.list_foundation_models().get("modelSummaries", [])
    profiles = _profiles(bedrock)
    text, image, names = [], [], set()
    for summary in summaries:
        if summary.get("modelLifecycle", {}).get("status") != "ACTIVE":
            continue
        if not _USABLE.intersection(summary.get("inferenceTypesSupported", [])) or summary["modelId"].endswith("k"):
            continue
        outputs = summary.get("outputModalities", [])
        if "TEXT" in outputs and summary.get("responseStreamingSupported"):
            kind = text
        elif "IMAGE" in outputs:
            kind = image
        else:
            continue
        offered = _offered_id(summary, profiles, region)
        if offered is None or summary.get("modelName") in names:
            continue
        names.add(summary.get("modelName"))
        kind.append({"modelId": offered, "modelName": summary.get("modelName")})
    return {"textModel": text, "imageModel": image} if text or image else []
