"""The model profile on /v1, through the real openai SDK, gunicorn and the emulator with Bedrock's rules on.

What real Bedrock refuses (emulator/rules.py) the server adapts, and says so in
``x-swiftchat-adapted``; what it refuses of a model nobody listed is learnt on the first request.
"""

import json
import uuid

import openai
import pytest
from conftest import emulator_calls, stream_record

from swiftchat_api.adapt import refused_parameter
from swiftchat_api.emulator import catalogue

THINKING_CLAUDE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # thinks by budget
SONNET_45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # temperature or top_p, not both
OPUS_47 = "us.anthropic.claude-opus-4-7"  # no sampling parameters; adaptive thinking; effort up to max
CLAUDE_35 = "anthropic.claude-3-5-sonnet-20240620-v1:0"  # does not think
NOVA_2 = "us.amazon.nova-2-lite-v1:0"
GPT_OSS = "openai.gpt-oss-120b-1:0"
DEEPSEEK_V3 = "deepseek.v3-v1:0"
LLAMA = "us.meta.llama3-1-70b-instruct-v1:0"
APPLICATION_PROFILE = "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/a1b2c3d4e5f6"  # Claude 3.7
HEADER = "x-swiftchat-adapted"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def ask(text="hi", directive=""):
    """One user message with a marker of its own (to find its Bedrock calls) and an emulator directive."""
    marker = uuid.uuid4().hex[:12]
    return marker, [{"role": "user", "content": f"{text} {marker} [[emulator {directive}]]"}]


def sent(emulator, marker, operation="converse"):
    """The Converse bodies the emulator received for the request with ``marker``, oldest first (refusals too)."""
    return [
        call
        for call in emulator_calls(emulator)
        if call.get("operation") == operation and marker in json.dumps(call.get("body"))
    ]


def create(client, **body):
    """(the answer, the adapted header) of a whole chat completion."""
    raw = client.chat.completions.with_raw_response.create(**body)
    return raw.parse(), raw.headers.get(HEADER)


def streamed(client, **body):
    """(text, reasoning, thinking_blocks, tool calls, the adapted header) of a streamed chat completion."""
    with client.chat.completions.with_streaming_response.create(stream=True, **body) as response:
        text, reasoning, blocks, calls = [], [], [], {}
        for chunk in response.parse():
            for choice in chunk.choices:
                delta = choice.delta
                text.append(delta.content or "")
                reasoning.append(getattr(delta, "reasoning_content", None) or "")
                blocks.extend(getattr(delta, "thinking_blocks", None) or [])
                for call in delta.tool_calls or []:
                    found = calls.setdefault(call.index, {"id": call.id, "name": None, "arguments": ""})
                    found["name"] = found["name"] or call.function.name
                    found["arguments"] += call.function.arguments or ""
        return "".join(text), "".join(reasoning), blocks, list(calls.values()), response.headers.get(HEADER)


# --- what thinking forbids, and the sampling parameters each Claude takes --------------------------


def test_reasoning_with_temperature_set_drops_what_thinking_forbids_and_says_so(client, emulator):
    marker, messages = ask("think", 'reply="42"')
    answer, adapted = create(
        client, model=THINKING_CLAUDE, messages=messages, reasoning_effort="high", temperature=0.3, top_p=0.5
    )
    assert answer.choices[0].message.content == "42" and answer.choices[0].message.reasoning_content
    assert "temperature dropped (Claude takes only temperature 1 while thinking)" in adapted
    assert "top_p dropped" in adapted
    [call] = sent(emulator, marker)
    assert call["body"]["inferenceConfig"] == {"maxTokens": 64000}
    assert call["body"]["additionalModelRequestFields"] == {
        "reasoning_config": {"type": "enabled", "budget_tokens": 48000}
    }


def test_a_streamed_answer_says_what_was_adapted_in_its_headers(client, emulator):
    text, reasoning, _, _, adapted = streamed(
        client, model=THINKING_CLAUDE, messages=ask("think", 'id=profile-stream reply="42"')[1],
        reasoning_effort="low", temperature=0.2,
    )  # fmt: skip
    assert (text, bool(reasoning)) == ("42", True)
    assert adapted == "temperature dropped (Claude takes only temperature 1 while thinking)"
    assert "temperature" not in stream_record(emulator, "profile-stream")["request"]["inferenceConfig"]


def test_claude_45_keeps_temperature_of_temperature_and_top_p(client, emulator):
    marker, messages = ask()
    answer, adapted = create(client, model=SONNET_45, messages=messages, temperature=0.3, top_p=0.9)
    assert answer.choices[0].finish_reason == "stop"
    assert adapted == "top_p dropped (the model takes temperature or top_p, not both)"
    assert sent(emulator, marker)[0]["body"]["inferenceConfig"] == {"maxTokens": 64000, "temperature": 0.3}


def test_nothing_adapted_means_no_header(client):
    _, adapted = create(client, model=SONNET_45, messages=ask()[1], top_p=0.9)
    assert adapted is None


def test_the_newest_claude_takes_no_temperature_and_reasons_up_to_xhigh(client, emulator):
    marker, messages = ask("think", 'reply="42"')
    answer, adapted = create(client, model=OPUS_47, messages=messages, temperature=0.7, reasoning_effort="xhigh")
    assert answer.choices[0].message.content == "42"
    assert "temperature dropped" in adapted
    body = sent(emulator, marker)[0]["body"]
    assert "temperature" not in body["inferenceConfig"]
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
    assert body["outputConfig"] == {"effort": "xhigh"}


@pytest.mark.parametrize(
    ("model", "effort", "fields", "note"),
    [
        (THINKING_CLAUDE, "xhigh", {"reasoning_config": {"type": "enabled", "budget_tokens": 54400}}, None),
        (SONNET_45, "max", {"reasoning_config": {"type": "enabled", "budget_tokens": 57600}}, None),
        (NOVA_2, "medium", {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}, None),
        (GPT_OSS, "xhigh", {"reasoning_effort": "high"}, "reasoning_effort xhigh sent as high"),
        (DEEPSEEK_V3, "low", {"reasoning_effort": "low"}, None),
    ],
)
def test_reasoning_effort_reaches_every_familys_own_switch(client, emulator, model, effort, fields, note):
    marker, messages = ask("think", 'reply="42"')
    answer, adapted = create(client, model=model, messages=messages, reasoning_effort=effort)
    assert answer.choices[0].message.content == "42" and answer.choices[0].message.reasoning_content
    assert sent(emulator, marker)[0]["body"]["additionalModelRequestFields"] == fields
    assert (note in adapted) if note else adapted is None


def test_nova_2_at_high_effort_sets_its_own_length_and_sampling(client, emulator):
    marker, messages = ask()
    _, adapted = create(client, model=NOVA_2, messages=messages, reasoning_effort="high", max_tokens=500, top_p=0.8)
    assert "max_tokens dropped (Nova 2 takes none at high reasoning effort)" in adapted
    assert "top_p dropped (Nova 2 takes none at high reasoning effort)" in adapted
    assert "inferenceConfig" not in sent(emulator, marker)[0]["body"]


def test_reasoning_effort_for_a_model_that_does_not_reason_is_said_to_be_dropped(client, emulator):
    marker, messages = ask()
    _, adapted = create(client, model=LLAMA, messages=messages, reasoning_effort="high")
    assert adapted == "reasoning_effort high dropped (the model does not reason)"
    assert "additionalModelRequestFields" not in sent(emulator, marker)[0]["body"]


# --- what the body carries beyond OpenAI's fields (extra_body) --------------------------------------


@pytest.mark.parametrize(
    ("model", "fields", "inference", "note"),
    [
        (CLAUDE_35, {"top_k": 5}, {}, None),
        (NOVA_2, {"inferenceConfig": {"topK": 5}}, {}, None),
        (LLAMA, None, {}, "top_k dropped (the model takes no top_k)"),
    ],
)
def test_top_k_goes_where_the_model_takes_it(client, emulator, model, fields, inference, note):
    marker, messages = ask()
    _, adapted = create(client, model=model, messages=messages, extra_body={"top_k": 5})
    assert sent(emulator, marker)[0]["body"].get("additionalModelRequestFields") == fields
    assert adapted == note


BUDGET = {"type": "enabled", "budget_tokens": 2000}


@pytest.mark.parametrize(
    ("model", "fields", "note"),
    [
        (THINKING_CLAUDE, {"reasoning_config": BUDGET}, None),
        (
            OPUS_47,
            {"thinking": {"type": "adaptive"}},
            "thinking adaptive, not by budget (the model thinks only adaptively); "
            "thinking.budget_tokens dropped (the model thinks adaptively, by effort)",
        ),
        (
            NOVA_2,
            {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}},
            "thinking sent as reasoning effort medium (the model takes an effort, not a budget)",
        ),
    ],
)
def test_thinking_from_extra_body_is_honoured_in_the_models_own_words(client, emulator, model, fields, note):
    marker, messages = ask("think", 'reply="42"')
    answer, adapted = create(client, model=model, messages=messages, extra_body={"thinking": BUDGET})
    assert answer.choices[0].message.content == "42"
    assert sent(emulator, marker)[0]["body"]["additionalModelRequestFields"] == fields
    assert adapted == note


def test_thinking_asked_of_a_model_that_cannot_think_is_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=CLAUDE_35, messages=ask()[1], extra_body={"thinking": {"type": "enabled", "budget_tokens": 2000}}
        )
    assert raised.value.param == "thinking"


def test_whitespace_only_stop_sequences_are_dropped_and_said(client, emulator):
    marker, messages = ask()
    _, adapted = create(client, model=CLAUDE_35, messages=messages, stop=["\n\n", "END"])
    assert adapted == "stop: whitespace-only sequences dropped (Bedrock refuses them)"
    assert sent(emulator, marker)[0]["body"]["inferenceConfig"]["stopSequences"] == ["END"]


def test_a_tool_call_is_not_forced_on_a_model_that_cannot_be_forced(client, emulator):
    marker, messages = ask("weather", "tools=get_weather")
    answer, adapted = create(client, model=LLAMA, messages=messages, tools=[WEATHER], tool_choice="required")
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert adapted == "tool_choice sent as auto (the model cannot be made to call a tool)"
    assert "toolChoice" not in sent(emulator, marker)[0]["body"]["toolConfig"]


# --- interleaved thinking: the signed block goes back, and thinking stays on in a tool loop ----------


def _tool_loop(first, blocks, call):
    """The first request's messages, the assistant's tool call (with ``blocks`` when given), and its result."""
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call["id"], "type": "function", "function": {"name": "get_weather",
                                                                            "arguments": call["arguments"]}}],
    }  # fmt: skip
    if blocks is not None:
        assistant["thinking_blocks"] = blocks
    return [*first, assistant, {"role": "tool", "tool_call_id": call["id"], "content": "18 C"}]


def test_signed_thinking_round_trips_through_a_tool_loop(client, emulator):
    _, first = ask("weather?", "tools=get_weather")
    answer, _ = create(client, model=THINKING_CLAUDE, messages=first, tools=[WEATHER], reasoning_effort="low")
    message = answer.choices[0].message
    [block] = message.thinking_blocks
    assert block["type"] == "thinking" and block["thinking"] == message.reasoning_content and block["signature"]
    call = {"id": message.tool_calls[0].id, "arguments": message.tool_calls[0].function.arguments}
    messages = _tool_loop(first, message.thinking_blocks, call)
    answer, adapted = create(client, model=THINKING_CLAUDE, messages=messages, tools=[WEATHER], reasoning_effort="low")
    assert answer.choices[0].message.content == "Tool results received: 18 C" and adapted is None
    body = [c for c in emulator_calls(emulator) if c.get("operation") == "converse"][-1]["body"]
    signed = body["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]
    assert signed == {"text": block["thinking"], "signature": block["signature"]}
    assert body["additionalModelRequestFields"]["reasoning_config"]["type"] == "enabled"  # still thinking


def test_streamed_thinking_blocks_round_trip_too(client, emulator):
    _, first = ask("weather?", "tools=get_weather")
    _, reasoning, blocks, calls, _ = streamed(
        client, model=THINKING_CLAUDE, messages=first, tools=[WEATHER], reasoning_effort="low"
    )
    assert [block["thinking"] for block in blocks] == [reasoning]
    messages = _tool_loop(first, blocks, calls[0])
    text, _, _, _, adapted = streamed(
        client, model=THINKING_CLAUDE, messages=messages, tools=[WEATHER], reasoning_effort="low"
    )
    assert text == "Tool results received: 18 C" and adapted is None


def test_a_tool_loop_without_its_thinking_goes_on_without_thinking_and_says_so(client, emulator):
    _, first = ask("weather?", "tools=get_weather")
    answer, _ = create(client, model=THINKING_CLAUDE, messages=first, tools=[WEATHER], reasoning_effort="low")
    message = answer.choices[0].message
    call = {"id": message.tool_calls[0].id, "arguments": message.tool_calls[0].function.arguments}
    answer, adapted = create(
        client, model=THINKING_CLAUDE, messages=_tool_loop(first, None, call), tools=[WEATHER], reasoning_effort="low"
    )
    assert answer.choices[0].message.content == "Tool results received: 18 C"
    assert adapted == "thinking off (the assistant's tool calls came back without their thinking_blocks)"


def test_a_thinking_block_with_another_signature_is_refused_by_bedrock(client):
    _, first = ask("weather?", "tools=get_weather")
    answer, _ = create(client, model=THINKING_CLAUDE, messages=first, tools=[WEATHER], reasoning_effort="low")
    message = answer.choices[0].message
    call = {"id": message.tool_calls[0].id, "arguments": message.tool_calls[0].function.arguments}
    forged = [{**message.thinking_blocks[0], "thinking": "Something else entirely."}]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=THINKING_CLAUDE, messages=_tool_loop(first, forged, call), tools=[WEATHER], reasoning_effort="low"
        )
    assert "Invalid `signature` in `thinking` block" in raised.value.message


# --- a model nobody listed: Bedrock's refusal is learnt ----------------------------------------------


def test_a_model_nobody_listed_that_refuses_temperature_works_from_its_first_request(client, emulator):
    model = "example.frontier-1-v1:0"
    marker, messages = ask("hello", 'reply="Hi"')
    answer, adapted = create(client, model=model, messages=messages, temperature=0.4)
    assert answer.choices[0].message.content == "Hi"
    assert adapted == "temperature dropped (Bedrock refused it for this model; remembered)"
    refused, accepted = sent(emulator, marker)
    assert refused["refused"].endswith("`temperature` is deprecated for this model.")
    assert "temperature" not in accepted["body"]["inferenceConfig"] and "refused" not in accepted

    marker, messages = ask("again", 'reply="Hi"')
    answer, adapted = create(client, model=model, messages=messages, temperature=0.4)
    [only] = sent(emulator, marker)  # no retry: the refusal was remembered
    assert "temperature" not in only["body"]["inferenceConfig"] and "refused" not in only
    assert adapted == "temperature dropped (Bedrock refused it for this model before)"


def test_a_streamed_request_learns_at_the_call_before_any_event(client, emulator):
    model = "example.frontier-2-v1:0"
    marker, messages = ask("hello", 'reply="Hi there"')
    text, _, _, _, adapted = streamed(client, model=model, messages=messages, temperature=0.4)
    assert text == "Hi there"
    assert adapted == "temperature dropped (Bedrock refused it for this model; remembered)"
    assert len(sent(emulator, marker, "converse-stream")) == 1  # the refused call; the second went through

    marker, messages = ask("again", 'reply="Hi there"')
    text, _, _, _, _ = streamed(client, model=model, messages=messages, temperature=0.4)
    assert text == "Hi there" and sent(emulator, marker, "converse-stream") == []


def test_a_refusal_that_names_no_parameter_the_request_carries_is_passed_on(client, emulator):
    marker, messages = ask("hello", "error=validation")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="example.frontier-3-v1:0", messages=messages)
    assert len(sent(emulator, marker)) == 1


@pytest.mark.parametrize(
    ("message", "learnt"),
    [
        # Bedrock's own words, as users reported them.
        ("The model returned the following errors: `temperature` and `top_p` cannot both be specified for this "
         "model. Please use only one.", "top_p|temperature"),
        ("The model returned the following errors: `temperature` is deprecated for this model.", "temperature"),
        ("The model returned the following errors: temperature may only be set to 1 when thinking is enabled.",
         "temperature|thinking"),
        ("The model returned the following errors: top_p must be unset when thinking is enabled.", "top_p|thinking"),
        ("Malformed input request: #: extraneous key [top_k] is not permitted, please reformat your input and try "
         "again.", "top_k"),
        ("The model returned the following errors: output_config.effort: Extra inputs are not permitted", "effort"),
        ("This model doesn't support the outputConfig.effort field. Remove outputConfig.effort and try again.",
         "effort"),
        # Structured output and tool use change what the answer is: never dropped to make a call pass.
        ("The model returned the following errors: output_config.format: Extra inputs are not permitted", None),
        ("This model doesn't support tool use.", None),
        ("The provided model identifier is invalid.", None),
    ],
)  # fmt: skip
def test_refusals_are_read_for_the_parameter_they_name(message, learnt):
    assert refused_parameter(message) == learnt


# --- application inference profiles ------------------------------------------------------------------


def test_an_application_profile_gets_its_models_rules(client, emulator):
    marker, messages = ask("think", 'reply="42"')
    answer, _ = create(client, model=APPLICATION_PROFILE, messages=messages, reasoning_effort="high")
    assert answer.model == APPLICATION_PROFILE and answer.choices[0].message.reasoning_content
    body = sent(emulator, marker)[0]["body"]
    assert body["inferenceConfig"] == {"maxTokens": 64000}  # Claude 3.7's, not the default 4,096
    assert body["additionalModelRequestFields"] == {"reasoning_config": {"type": "enabled", "budget_tokens": 48000}}

    create(client, model=APPLICATION_PROFILE, messages=ask()[1], reasoning_effort="low")
    asked = [c for c in emulator_calls(emulator) if c.get("operation") == "GetInferenceProfile"]
    assert [c["identifier"] for c in asked].count(APPLICATION_PROFILE) == 1  # resolved once, then remembered


def test_the_emulator_answers_get_inference_profile_as_bedrock_does(bedrock, emulator):
    import boto3

    control = boto3.client("bedrock", region_name="us-west-2", endpoint_url=emulator)
    found = control.get_inference_profile(inferenceProfileIdentifier=APPLICATION_PROFILE)
    assert found["type"] == "APPLICATION" and found["inferenceProfileArn"] == APPLICATION_PROFILE
    assert {m["modelArn"].rsplit("/", 1)[1] for m in found["models"]} == {"anthropic.claude-3-7-sonnet-20250219-v1:0"}
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_inference_profile(inferenceProfileIdentifier=APPLICATION_PROFILE[:-1] + "0")
    assert catalogue.application_profile_model(APPLICATION_PROFILE) == "anthropic.claude-3-7-sonnet-20250219-v1:0"
    control.close()
