"""The emulator's model catalogue: small, but it trips every filter rule of /api/models."""


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


_MODELS = [
    _model("anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet", "Anthropic"),
    _model(
        "anthropic.claude-3-5-sonnet-20240620-v1:0:200k", "Claude 3.5 Sonnet", "Anthropic", inference=("PROVISIONED",)
    ),
    _model("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "Anthropic"),
    _model("anthropic.claude-3-haiku-20240307-v1:0:48k", "Claude 3 Haiku 48k", "Anthropic"),
    _model(
        "anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet", "Anthropic", inference=("INFERENCE_PROFILE",)
    ),
    _model("anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4", "Anthropic", inference=("INFERENCE_PROFILE",)),
    _model("anthropic.claude-v2", "Claude", "Anthropic", status="LEGACY"),
    _model("amazon.nova-pro-v1:0", "Nova Pro", "Amazon", inference=("ON_DEMAND", "INFERENCE_PROFILE")),
    _model("amazon.nova-lite-v1:0", "Nova Lite", "Amazon", inference=("ON_DEMAND", "INFERENCE_PROFILE")),
    _model("amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2", "Amazon", output="EMBEDDING", streaming=False),
    _model("meta.llama3-1-70b-instruct-v1:0", "Llama 3.1 70B Instruct", "Meta", inference=("INFERENCE_PROFILE",)),
    _model("meta.llama3-1-70b-instruct-v1:1", "Llama 3.1 70B Instruct", "Meta", inference=("INFERENCE_PROFILE",)),
    _model("deepseek.r1-v1:0", "DeepSeek-R1", "DeepSeek", inference=("INFERENCE_PROFILE",)),
    _model("cohere.command-r-v1:0", "Command R", "Cohere", streaming=False),
    _model("mistral.mistral-large-2402-v1:0", "Mistral Large", "Mistral AI", inference=("PROVISIONED",)),
    _model(
        "amazon.titan-image-generator-v2:0", "Titan Image Generator G1 v2", "Amazon", output="IMAGE", streaming=False
    ),
    _model("amazon.nova-canvas-v1:0", "Nova Canvas", "Amazon", output="IMAGE", streaming=False),
    _model(
        "stability.stable-image-core-v1:1", "Stable Image Core 1.0", "Stability AI", output="IMAGE", streaming=False
    ),
    _model("stability.sd3-5-large-v1:0", "Stable Diffusion 3.5 Large", "Stability AI", output="IMAGE", streaming=False),
]

# Models that have a system-defined cross-region inference profile in every geography.
_PROFILED = [
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-lite-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "deepseek.r1-v1:0",
]


# Regions where the emulator answers differently on purpose, so every branch of /api/models runs.
DENIED_REGIONS = "me-"  # ListFoundationModels is refused (AccessDeniedException)
NO_PROFILE_REGIONS = "eu-south-"  # ListInferenceProfiles is refused
EMPTY_REGIONS = "af-"  # no models at all


def geography(region):
    """The inference-profile prefix Bedrock uses for a region."""
    if region.startswith("ap-"):
        return "apac"
    return region.split("-", 1)[0]


def foundation_models(region):
    """ListFoundationModels summaries for a region."""
    if region.startswith(EMPTY_REGIONS):
        return []
    return [dict(m, modelArn=m["modelArn"].format(region=region)) for m in _MODELS]


def inference_profiles(region):
    """ListInferenceProfiles summaries (system-defined) for a region."""
    prefix = geography(region)
    return [
        {
            "inferenceProfileName": f"{prefix.upper()} {model_id}",
            "inferenceProfileArn": f"arn:aws:bedrock:{region}::inference-profile/{prefix}.{model_id}",
            "inferenceProfileId": f"{prefix}.{model_id}",
            "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}"}],
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }
        for model_id in _PROFILED
        if not (prefix == "apac" and model_id.startswith("deepseek"))
    ]
