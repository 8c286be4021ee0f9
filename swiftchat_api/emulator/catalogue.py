"""The emulator's model catalogue: small, but it trips every filter rule of /api/models.

Like Bedrock, it lists cross-region inference profiles per geography (``us.``, ``eu.``,
``apac.``, and ``global.`` for a few models), and InvokeModel refuses a bare id for a model
that has no on-demand throughput, or a profile id the caller's region does not list.
"""

import re

_BOTH = ("ON_DEMAND", "INFERENCE_PROFILE")
_PROFILE_ONLY = ("INFERENCE_PROFILE",)


def _model(model_id, name, provider, output="TEXT", streaming=True, inference=("ON_DEMAND",), status="ACTIVE"):
    return {
        "modelArn": f"arn:aws:bedrock:{{region}}::foundation-model/{model_id}",
        "modelId": model_id,
        "modelName": name,
        "providerName": provider,
        "inputModalities": ["TEXT"],
        "outputModalities": [output],
        "responseStreamingSupported": streaming,
        "customizationsSupported": [],
        "inferenceTypesSupported": list(inference),
        "modelLifecycle": {"status": status},
    }


def _image(model_id, name, provider, inference=("ON_DEMAND",)):
    return _model(model_id, name, provider, output="IMAGE", streaming=False, inference=inference)


_MODELS = [
    _model("anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet", "Anthropic", inference=_BOTH),
    _model(
        "anthropic.claude-3-5-sonnet-20240620-v1:0:200k", "Claude 3.5 Sonnet", "Anthropic", inference=("PROVISIONED",)
    ),
    _model("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "Anthropic", inference=_BOTH),
    _model("anthropic.claude-3-haiku-20240307-v1:0:48k", "Claude 3 Haiku 48k", "Anthropic"),
    _model("anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet", "Anthropic", inference=_PROFILE_ONLY),
    _model("anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4", "Anthropic", inference=_PROFILE_ONLY),
    _model("anthropic.claude-v2", "Claude", "Anthropic", status="LEGACY"),
    _model("amazon.nova-pro-v1:0", "Nova Pro", "Amazon", inference=_BOTH),
    _model("amazon.nova-lite-v1:0", "Nova Lite", "Amazon", inference=_BOTH),
    _model("amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2", "Amazon", output="EMBEDDING", streaming=False),
    _model("cohere.embed-english-v3", "Embed English", "Cohere", output="EMBEDDING", streaming=False),
    _model("cohere.embed-v4:0", "Embed v4", "Cohere", output="EMBEDDING", streaming=False),
    _model(
        "amazon.nova-2-multimodal-embeddings-v1:0", "Nova Embeddings", "Amazon", output="EMBEDDING", streaming=False
    ),
    _model("meta.llama3-1-70b-instruct-v1:0", "Llama 3.1 70B Instruct", "Meta", inference=_BOTH),
    _model("meta.llama3-1-70b-instruct-v1:1", "Llama 3.1 70B Instruct", "Meta", inference=_BOTH),
    _model("meta.llama3-1-8b-instruct-v1:0", "Llama 3.1 8B Instruct", "Meta", inference=_BOTH),
    _model("meta.llama3-2-11b-instruct-v1:0", "Llama 3.2 11B Instruct", "Meta", inference=_PROFILE_ONLY),
    _model("deepseek.r1-v1:0", "DeepSeek-R1", "DeepSeek", inference=_PROFILE_ONLY),
    _model("anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude Sonnet 4.5", "Anthropic", inference=_PROFILE_ONLY),
    _model("anthropic.claude-opus-4-7", "Claude Opus 4.7", "Anthropic", inference=_PROFILE_ONLY),
    _model("amazon.nova-2-lite-v1:0", "Nova 2 Lite", "Amazon", inference=_PROFILE_ONLY),
    _model("openai.gpt-oss-120b-1:0", "gpt-oss-120b", "OpenAI"),
    _model("deepseek.v3-v1:0", "DeepSeek-V3.1", "DeepSeek"),
    _model("cohere.command-r-v1:0", "Command R", "Cohere", streaming=False),
    _model("mistral.mistral-large-2402-v1:0", "Mistral Large", "Mistral AI", inference=("PROVISIONED",)),
    _image("amazon.titan-image-generator-v2:0", "Titan Image Generator G1 v2", "Amazon"),
    _image("amazon.nova-canvas-v1:0", "Nova Canvas", "Amazon", inference=_BOTH),
    _image("stability.stable-image-core-v1:1", "Stable Image Core 1.0", "Stability AI"),
    _image("stability.sd3-5-large-v1:0", "Stable Diffusion 3.5 Large", "Stability AI"),
    _image("stability.stable-image-ultra-v1:1", "Stable Image Ultra 1.0", "Stability AI", inference=_PROFILE_ONLY),
]
_BY_ID = {model["modelId"]: model for model in _MODELS}

# A chat model the emulator serves but does not list, which the server's profile has never heard
# of: it refuses temperature (rules.py), as models newer than any list do.
UNLISTED_MODEL = "example.frontier-1-v1:0"

ACCOUNT = "123456789012"
# Application inference profiles (id → the system profile or model they were made from). Their
# ARNs hold the caller's region: arn:aws:bedrock:<region>:123456789012:application-inference-profile/<id>.
APPLICATION_PROFILES = {
    "a1b2c3d4e5f6": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "q7r8s9t0u1v2": "anthropic.claude-sonnet-4-5-20250929-v1:0",
}

_EVERYWHERE = ("us", "eu", "apac")
# The geographies in which each model has a system-defined cross-region inference profile.
_PROFILES = {
    "anthropic.claude-3-5-sonnet-20240620-v1:0": _EVERYWHERE,
    "anthropic.claude-3-haiku-20240307-v1:0": _EVERYWHERE,
    "anthropic.claude-3-7-sonnet-20250219-v1:0": _EVERYWHERE,
    "anthropic.claude-sonnet-4-20250514-v1:0": (*_EVERYWHERE, "global"),
    "amazon.nova-pro-v1:0": _EVERYWHERE,
    "amazon.nova-lite-v1:0": _EVERYWHERE,
    "meta.llama3-1-70b-instruct-v1:0": _EVERYWHERE,
    "meta.llama3-1-8b-instruct-v1:0": ("us",),
    "meta.llama3-2-11b-instruct-v1:0": ("us",),
    "deepseek.r1-v1:0": ("us", "eu"),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": (*_EVERYWHERE, "global"),
    "anthropic.claude-opus-4-7": ("us", "eu", "global"),
    "amazon.nova-2-lite-v1:0": ("us", "eu", "global"),
    "amazon.nova-canvas-v1:0": _EVERYWHERE,
    "stability.stable-image-ultra-v1:1": ("us",),
}
# The regions each geography's profiles route to (what a profile's "models" list names).
_ROUTES = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-southeast-1", "ap-southeast-2"),
    "global": ("us-east-1", "eu-west-1", "ap-northeast-1"),
}

# Regions where the emulator answers differently on purpose, so every branch of /api/models runs.
DENIED_REGIONS = "me-"  # ListFoundationModels is refused (AccessDeniedException)
NO_PROFILE_REGIONS = "eu-south-"  # ListInferenceProfiles is refused (the profiles still work)
EMPTY_REGIONS = "af-"  # no models at all
_GEOGRAPHY = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")  # a cross-region profile id's prefix


def geography(region):
    """The inference-profile prefix Bedrock uses for a region."""
    if region.startswith("ap-"):
        return "apac"
    return region.split("-", 1)[0]


def without_geography(model_id):
    """The model id behind a cross-region inference profile's id (its geography prefix dropped)."""
    return _GEOGRAPHY.sub("", model_id, count=1)


def foundation_models(region):
    """ListFoundationModels summaries for a region."""
    if region.startswith(EMPTY_REGIONS):
        return []
    return [dict(m, modelArn=m["modelArn"].format(region=region)) for m in _MODELS]


def inference_profiles(region):
    """ListInferenceProfiles summaries (system-defined) for a region: its geography's, then global ones."""
    if region.startswith(EMPTY_REGIONS):
        return []
    listed = []
    for prefix in (geography(region), "global"):
        for model_id, geographies in _PROFILES.items():
            if prefix not in geographies:
                continue
            listed.append(
                {
                    "inferenceProfileName": f"{prefix.upper()} {_BY_ID[model_id]['modelName']}",
                    "inferenceProfileArn": f"arn:aws:bedrock:{region}::inference-profile/{prefix}.{model_id}",
                    "inferenceProfileId": f"{prefix}.{model_id}",
                    "models": [
                        {"modelArn": f"arn:aws:bedrock:{routed}::foundation-model/{model_id}"}
                        for routed in _ROUTES[prefix]
                    ],
                    "status": "ACTIVE",
                    "type": "SYSTEM_DEFINED",
                }
            )
    return listed


def invocable(model_id, region):
    """``(foundation model id, None)`` for an id InvokeModel takes in a region, else ``(None, Bedrock's message)``."""
    for profile in inference_profiles(region):
        if profile["inferenceProfileId"] == model_id:
            return profile["models"][0]["modelArn"].rsplit("/", 1)[-1], None
    model = _BY_ID.get(model_id) if not region.startswith(EMPTY_REGIONS) else None
    if model is None:
        return None, "The provided model identifier is invalid."
    if "ON_DEMAND" not in model["inferenceTypesSupported"]:
        return None, (
            f"Invocation of model ID {model_id} with on-demand throughput isn't supported. Retry your request "
            "with the ID or ARN of an inference profile that contains this model."
        )
    return model_id, None


def application_profiles(region):
    """ListInferenceProfiles summaries of the account's application profiles (typeEquals=APPLICATION)."""
    return [] if region.startswith(EMPTY_REGIONS) else [inference_profile(id_, region) for id_ in APPLICATION_PROFILES]


def _application_id(identifier):
    """The id of an application profile named by its id or ARN, or None."""
    found = re.fullmatch(rf"arn:aws:bedrock:[a-z0-9-]+:{ACCOUNT}:application-inference-profile/([a-z0-9]+)", identifier)
    profile_id = found.group(1) if found else identifier
    return profile_id if profile_id in APPLICATION_PROFILES else None


def application_profile_model(identifier):
    """The foundation-model id behind an application profile's ARN or id, or None."""
    profile_id = _application_id(identifier)
    if profile_id is None:
        return None
    source = APPLICATION_PROFILES[profile_id]
    return source.split(".", 1)[1] if source.split(".", 1)[0] in _ROUTES else source


def inference_profile(identifier, region):
    """GetInferenceProfile's answer for a profile id or ARN (application or system-defined), or None."""
    profile_id = _application_id(identifier)
    if profile_id is None:
        listed = inference_profiles(region)
        return next((p for p in listed if identifier in (p["inferenceProfileId"], p["inferenceProfileArn"])), None)
    source = APPLICATION_PROFILES[profile_id]
    geography, _, model_id = source.partition(".")
    routed = _ROUTES[geography] if model_id and geography in _ROUTES else (region,)
    model_id = model_id if geography in _ROUTES else source
    return {
        "inferenceProfileName": f"team-{profile_id}",
        "description": f"An application profile for {_BY_ID[model_id]['modelName']}.",
        "createdAt": "2026-01-15T09:30:00Z",
        "updatedAt": "2026-01-15T09:30:00Z",
        "inferenceProfileArn": f"arn:aws:bedrock:{region}:{ACCOUNT}:application-inference-profile/{profile_id}",
        "models": [{"modelArn": f"arn:aws:bedrock:{each}::foundation-model/{model_id}"} for each in routed],
        "inferenceProfileId": profile_id,
        "status": "ACTIVE",
        "type": "APPLICATION",
    }
