"""The newest Claude models on /v1 (Opus 4.8, Fable 5, Mythos Preview), as users reported real Bedrock's answers.

Opus 4.8 and Fable 5 refuse ``temperature`` as Opus 4.7 does (anything-llm#5821,
opensearch-build#6330, pr-agent#2456); Mythos Preview takes effort up to ``max`` but not
``xhigh`` (Anthropic, "Effort"). The emulator refuses what Bedrock refuses, so a request the
profile got wrong would show a refused call and a learnt note here.
"""

import json
import uuid

import pytest
from conftest import emulator_calls

from swiftchat_api.adapt import refused_parameter

HEADER = "x-swiftchat-adapted"


def create(client, emulator, model, **body):
    """(the answer, the adapted header, the Converse calls the emulator received for this request)."""
    marker = uuid.uuid4().hex[:12]
    messages = [{"role": "user", "content": f'hi {marker} [[emulator reply="42"]]'}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, **body)
    calls = [c for c in emulator_calls(emulator) if marker in json.dumps(c.get("body"))]
    return raw.parse(), raw.headers.get(HEADER), calls


@pytest.mark.parametrize("model", ["us.anthropic.claude-opus-4-8", "global.anthropic.claude-fable-5"])
def test_opus_48_and_fable_5_are_sent_no_sampling_parameters_from_the_first_request(client, emulator, model):
    answer, adapted, calls = create(client, emulator, model, temperature=0.3, top_p=0.9)
    assert answer.choices[0].message.content == "42"
    assert adapted == (
        "temperature dropped (the model takes no sampling parameters); top_p dropped (the model takes no sampling "
        "parameters)"
    )
    [only] = calls  # known to the profile: no refusal to learn from
    assert "refused" not in only and set(only["body"]["inferenceConfig"]) == {"maxTokens"}


def test_the_emulator_refuses_temperature_on_opus_48_in_bedrocks_words(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException, match="`temperature` is deprecated for this model"):
        bedrock.converse(
            modelId="us.anthropic.claude-opus-4-8",
            messages=[{"role": "user", "content": [{"text": "hi"}]}],
            inferenceConfig={"temperature": 0.3},
        )


def test_mythos_preview_reasons_up_to_max_and_is_not_sent_xhigh(client, emulator):
    answer, adapted, [call] = create(client, emulator, "us.anthropic.claude-mythos-preview", reasoning_effort="xhigh")
    assert answer.choices[0].message.reasoning_content
    assert call["body"]["outputConfig"] == {"effort": "high"}
    assert call["body"]["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
    assert adapted == "reasoning_effort xhigh sent as high (the most the model takes)"
    _, adapted, [call] = create(client, emulator, "us.anthropic.claude-mythos-preview", reasoning_effort="max")
    assert call["body"]["outputConfig"] == {"effort": "max"} and adapted is None


def test_bedrocks_refusal_quoting_anthropics_error_object_is_read_too():
    # Opus 4.7 on Bedrock, as tinovyatkin/amazon-bedrock-copilot-chat#546 quotes it.
    message = (
        'The model returned the following errors: {"type":"error","request_id":"req_x","error":'
        '{"type":"invalid_request_error","message":"temperature is deprecated for this model."}}'
    )
    assert refused_parameter(message) == "temperature"
