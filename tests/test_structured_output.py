"""Structured output on /v1: native where the model has it, else a forced answer tool whose input is the content.

The mapping rule by rule first, then the emulator's answers, then real clients (the openai SDK's
``parse`` and ``stream``, langchain-openai, litellm) through gunicorn and the emulator.
"""

import json
import uuid
from enum import StrEnum

import botocore.session
import jsonschema
import openai
import pytest
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters
from conftest import TEST_KEY, emulator_calls, stream_record
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from pydantic import BaseModel, Field

from swiftchat_api.adapt import header_value
from swiftchat_api.emulator.examples import example
from swiftchat_api.exceptions import ApiError
from swiftchat_api.oai.chat import JSON_INSTRUCTION, JSON_OBJECT_TOOL, answer_tool, completion, converse_args
from swiftchat_api.oai.errors import invalid_body
from swiftchat_api.oai.schemas import ChatCompletionRequest
from swiftchat_api.oai.stream import ChunkTranslator
from swiftchat_api.profile import profile

BY_TOOL = "anthropic.claude-3-5-sonnet-20240620-v1:0"  # no structured output on Bedrock: by tool
NATIVE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # outputConfig.textFormat
GPT_OSS = "openai.gpt-oss-120b-1:0"  # structured output, and no rules about the schema
THINKING = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # thinks, no structured output
NO_TOOLS = "us.deepseek.r1-v1:0"  # neither tools nor structured output
UNFORCEABLE = "meta.llama3-1-70b-instruct-v1:0"  # tools, but no toolChoice any/tool

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Role(StrEnum):
    ENGINEER = "engineer"
    POET = "poet"


class Address(BaseModel):
    city: str
    zip_code: str | None = None


class Person(BaseModel):  # within what Claude's structured output takes: no bounds, no recursion
    name: str
    age: int
    role: Role
    addresses: list[Address]


ADA = Person(name="Ada", age=36, role=Role.ENGINEER, addresses=[Address(city="London")])
ADA_TEXT = json.dumps(ADA.model_dump(mode="json"))  # spaced: a streamed reply comes in several pieces
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "Person", "description": "A person.", "schema": Person.model_json_schema()},
}


def load(model=BY_TOOL, messages=None, **body):
    return ChatCompletionRequest().load(
        {"model": model, "messages": messages or [{"role": "user", "content": "x"}], **body}
    )


def args(model=BY_TOOL, **body):
    return converse_args(load(model, **body))


def refusal(model=BY_TOOL, **body):
    with pytest.raises((ApiError, ValidationError)) as caught:
        args(model, **body)
    error = caught.value
    return invalid_body(error) if isinstance(error, ValidationError) else error


def answer_spec(sent, name="Person"):
    return next(tool["toolSpec"] for tool in sent["toolConfig"]["tools"] if tool["toolSpec"]["name"] == name)


# --- the mapping ------------------------------------------------------------------------------


def test_a_model_with_structured_output_gets_the_schema_as_output_config():
    sent = args(GPT_OSS, response_format=PERSON_FORMAT)
    schema = sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert json.loads(schema["schema"]) == Person.model_json_schema()
    assert (schema["name"], schema["description"]) == ("Person", "A person.")
    assert "toolConfig" not in sent and header_value(sent) is None


def test_claude_gets_the_schema_with_every_object_closed_and_is_told():
    sent = args(NATIVE, response_format=PERSON_FORMAT)
    schema = json.loads(sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])
    original = Person.model_json_schema()
    assert schema["additionalProperties"] is False and schema["$defs"]["Address"]["additionalProperties"] is False
    assert schema["properties"] == original["properties"] and schema["required"] == original["required"]
    assert "every object closed" in header_value(sent)
    strict = {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}
    closed = args(NATIVE, response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": strict}})
    assert header_value(closed) is None  # nothing to change, nothing said


class Tree(BaseModel):
    label: str
    children: list["Tree"] = []


class Bounded(BaseModel):
    tiny: int = Field(gt=10, lt=12)
    share: float = Field(ge=0.25, le=0.5)
    code: str = Field(min_length=12, max_length=14)
    tags: list[str] = Field(min_length=2, max_length=2)
    when: str = Field(json_schema_extra={"format": "date-time"})
    kind: str = Field(json_schema_extra={"enum": ["b", "c"]})


class Listed(BaseModel):
    names: list[str] = Field(max_length=3)


class Loose(BaseModel, extra="allow"):
    name: str


@pytest.mark.parametrize(
    ("model", "why"),
    [(Bounded, "exclusiveMinimum"), (Tree, "a recursive schema"), (Listed, "maxItems"),
     (Loose, "additionalProperties other than false")],
)  # fmt: skip
def test_a_schema_claude_cannot_take_natively_goes_by_the_answer_tool_and_says_why(model, why):
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": model.model_json_schema()}}
    sent = args(NATIVE, response_format=response_format)
    assert "outputConfig" not in sent
    assert answer_spec(sent, "r")["inputSchema"]["json"] == {**model.model_json_schema(), "type": "object"}
    assert f"response_format by a tool (its schema has {why}" in header_value(sent)


def test_a_model_without_it_is_forced_to_call_an_answer_tool_with_the_schema():
    sent = args(BY_TOOL, response_format=PERSON_FORMAT)
    assert "outputConfig" not in sent
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "Person"}}
    spec = answer_spec(sent)
    assert spec["inputSchema"]["json"] == Person.model_json_schema()
    assert spec["description"].startswith("A person. ")
    assert "system" not in sent  # the tool asks for the answer; no instruction beside it


def test_json_object_goes_by_an_answer_tool_with_an_open_object_schema_even_where_json_schema_is_native():
    for model in (BY_TOOL, NATIVE):
        sent = args(model, response_format={"type": "json_object"})
        assert sent["toolConfig"] == {
            "tools": [{"toolSpec": answer_spec(sent, JSON_OBJECT_TOOL)}],
            "toolChoice": {"tool": {"name": JSON_OBJECT_TOOL}},
        }
        assert answer_spec(sent, JSON_OBJECT_TOOL)["inputSchema"]["json"] == {"type": "object"}
        assert "outputConfig" not in sent and "system" not in sent


def test_a_model_without_tools_is_asked_for_json_in_the_system_prompt_and_refuses_a_schema():
    sent = args(NO_TOOLS, response_format={"type": "json_object"})
    assert sent["system"] == [{"text": JSON_INSTRUCTION}] and "toolConfig" not in sent
    error = refusal(NO_TOOLS, response_format=PERSON_FORMAT)
    assert (error.status, error.param) == (400, "response_format")
    assert "json_object" in error.detail


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, {"any": {}}),
        ("auto", {"any": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
    ],
)
def test_the_callers_tools_stay_callable_beside_the_answer_tool(tool_choice, expected):
    sent = args(BY_TOOL, response_format=PERSON_FORMAT, tools=[WEATHER], tool_choice=tool_choice)
    assert [tool["toolSpec"]["name"] for tool in sent["toolConfig"]["tools"]] == ["get_weather", "Person"]
    assert sent["toolConfig"]["toolChoice"] == expected


def test_tool_choice_none_leaves_only_the_answer_tool():
    sent = args(BY_TOOL, response_format=PERSON_FORMAT, tools=[WEATHER], tool_choice="none")
    assert sent["toolConfig"] == {
        "tools": [{"toolSpec": answer_spec(sent)}],
        "toolChoice": {"tool": {"name": "Person"}},
    }


def test_a_tool_named_like_the_answer_tool_is_refused():
    clash = {"type": "function", "function": {"name": "Person", "parameters": {"type": "object"}}}
    error = refusal(BY_TOOL, response_format=PERSON_FORMAT, tools=[clash])
    assert (error.status, error.param) == (400, "response_format")
    # a native model needs no answer tool, so nothing clashes
    assert "outputConfig" in args(NATIVE, response_format=PERSON_FORMAT, tools=[clash])


def test_a_schema_that_is_not_an_object_is_refused_where_a_tool_must_carry_it():
    listing = {"type": "json_schema", "json_schema": {"name": "names", "schema": {"type": "array"}}}
    error = refusal(BY_TOOL, response_format=listing)
    assert (error.status, error.param) == (400, "response_format.json_schema.schema")
    assert "outputConfig" in args(NATIVE, response_format=listing)


def test_a_schema_without_its_type_gets_it_spelt_out():
    loose = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"properties": {"n": {"type": "integer"}}}}}
    assert answer_spec(args(BY_TOOL, response_format=loose), "n")["inputSchema"]["json"]["type"] == "object"


def test_a_model_that_cannot_be_made_to_call_a_tool_is_asked_to_call_the_answer_tool():
    body = load(UNFORCEABLE, response_format=PERSON_FORMAT)
    sent = converse_args(body)
    assert [tool["toolSpec"]["name"] for tool in sent["toolConfig"]["tools"]] == ["Person"]
    assert "toolChoice" not in sent["toolConfig"]
    assert sent["system"] == [{"text": "Give your final answer by calling the tool Person."}]
    assert answer_tool(body, sent).forced is False  # so text it writes instead stays the content


def test_a_forced_answer_tool_goes_without_thinking_and_a_native_answer_thinks():
    assert "additionalModelRequestFields" not in args(THINKING, response_format=PERSON_FORMAT, reasoning_effort="high")
    sent = args(NATIVE, response_format=PERSON_FORMAT, reasoning_effort="high")
    assert sent["additionalModelRequestFields"]["reasoning_config"]["type"] == "enabled"


def test_the_answer_tool_arguments_are_ones_boto3_accepts():
    sent = args(BY_TOOL, response_format=PERSON_FORMAT, tools=[WEATHER], temperature=0.2)
    operation = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")
    validate_parameters(sent, operation.input_shape)


# --- the answer -------------------------------------------------------------------------------


def _converse_answer(*blocks, stop="tool_use"):
    return {"output": {"message": {"role": "assistant", "content": list(blocks)}}, "stopReason": stop, "usage": {}}


def _call(name, value, tool_id="tooluse_1"):
    return {"toolUse": {"toolUseId": tool_id, "name": name, "input": value}}


def test_the_answer_tools_input_is_the_content_and_no_tool_call():
    body = load(BY_TOOL, response_format=PERSON_FORMAT)
    found = answer_tool(body, converse_args(body))
    answer = completion(_converse_answer(_call("Person", ADA.model_dump(mode="json"))), BY_TOOL, "c", 1, found)
    message = answer["choices"][0]["message"]
    assert Person.model_validate_json(message["content"]) == ADA
    assert "tool_calls" not in message and answer["choices"][0]["finish_reason"] == "stop"


def test_text_beside_a_forced_answer_is_reasoning_and_beside_the_callers_tools_is_content():
    forced_body = load(BY_TOOL, response_format=PERSON_FORMAT)
    forced = answer_tool(forced_body, converse_args(forced_body))
    blocks = ({"text": "Let me fill it in."}, _call("Person", {"name": "Ada"}))
    message = completion(_converse_answer(*blocks), BY_TOOL, "c", 1, forced)["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ('{"name": "Ada"}', "Let me fill it in.")

    open_body = load(BY_TOOL, response_format=PERSON_FORMAT, tools=[WEATHER])
    beside = answer_tool(open_body, converse_args(open_body))
    blocks = ({"text": "Checking."}, _call("get_weather", {"city": "Oslo"}))
    answer = completion(_converse_answer(*blocks), BY_TOOL, "c", 1, beside)
    message = answer["choices"][0]["message"]
    assert message["content"] == "Checking." and message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert answer["choices"][0]["finish_reason"] == "tool_calls"


def test_no_answer_tool_where_structured_output_is_native_or_absent():
    for body in (load(NATIVE, response_format=PERSON_FORMAT), load(BY_TOOL)):
        assert answer_tool(body, converse_args(body)) is None


def test_the_streamed_answer_tool_input_arrives_as_content_deltas():
    body = load(BY_TOOL, response_format=PERSON_FORMAT)
    translator = ChunkTranslator(BY_TOOL, "c", 1, answer=answer_tool(body, converse_args(body)))
    events = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hmm."}}},
        {"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "Person"}}}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"name": '}}}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Ada"}'}}}},
        {"messageStop": {"stopReason": "tool_use"}},
    ]
    deltas = [chunk["choices"][0] for event in events for chunk in translator.chunks(event)]
    assert "".join(choice["delta"].get("content") or "" for choice in deltas) == '{"name": "Ada"}'
    assert "".join(choice["delta"].get("reasoning_content") or "" for choice in deltas) == "Hmm."
    assert not any("tool_calls" in choice["delta"] for choice in deltas)
    assert deltas[-1]["finish_reason"] == "stop"


# --- the emulator's answers -------------------------------------------------------------------


SCHEMAS = {
    "nested models, enums, optional": Person.model_json_schema(),
    "recursive": Tree.model_json_schema(),
    "bounds, lengths, formats": Bounded.model_json_schema(),
    "all of": {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}], "type": "object"},
    "nullable type list": {"type": "object", "properties": {"n": {"type": ["null", "number"]}}, "required": ["n"]},
    "const and closed": {
        "type": "object",
        "properties": {"v": {"const": 3}},
        "required": ["v"],
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_emulators_example_is_accepted_by_its_schema(name):
    for position in range(3):
        jsonschema.validate(example(SCHEMAS[name], position), SCHEMAS[name])


def test_the_emulator_answers_a_wide_recursive_schema_within_bounds():
    node = {"type": "object", "properties": {f"p{i}": {"$ref": "#/$defs/N"} for i in range(10)}}
    wide = {"$defs": {"N": {**node, "required": list(node["properties"])}}, "$ref": "#/$defs/N"}
    assert len(json.dumps(example(wide))) < 1_000_000


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    ["type", "properties", "required", "items", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
     "minimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "format"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.recursive(st.dictionaries(_KEYS, _JSON, max_size=4), lambda inner: st.dictionaries(_KEYS, inner | _JSON)))
def test_the_emulator_makes_an_example_of_any_schema_shaped_value_without_failing(schema):
    json.dumps(example(schema))  # whatever the schema, an answer (the emulator never drops the connection)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(_KEYS, _JSON, max_size=4))
def test_any_json_schema_body_gets_converse_arguments_or_a_clear_refusal(schema):
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    for model in (BY_TOOL, NATIVE):
        try:
            sent = args(model, response_format=response_format)
        except ApiError as error:
            assert (error.status, error.param) == (400, "response_format.json_schema.schema")
            continue
        if "outputConfig" in sent:  # Claude takes it natively: its objects closed
            assert model == NATIVE and "toolConfig" not in sent
        else:
            assert answer_spec(sent, "r")["inputSchema"]["json"]["type"] == "object"


def test_the_emulator_answers_a_forced_tool_with_input_its_schema_accepts(bedrock):
    schema = Person.model_json_schema()
    answer = bedrock.converse(
        modelId=BY_TOOL,
        messages=[{"role": "user", "content": [{"text": "Who?"}]}],
        toolConfig={
            "tools": [{"toolSpec": {"name": "Person", "inputSchema": {"json": schema}}}],
            "toolChoice": {"tool": {"name": "Person"}},
        },
    )
    (block,) = answer["output"]["message"]["content"]
    jsonschema.validate(block["toolUse"]["input"], schema)


def _output_config(schema):
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}}


def test_the_emulator_answers_an_output_config_with_text_its_schema_accepts(bedrock):
    schema = Person.model_json_schema()
    answer = bedrock.converse(
        modelId=GPT_OSS, messages=[{"role": "user", "content": [{"text": "Who?"}]}], outputConfig=_output_config(schema)
    )
    (block,) = answer["output"]["message"]["content"]
    jsonschema.validate(json.loads(block["text"]), schema)


ADDRESS = {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}


@pytest.mark.parametrize(
    ("schema", "refusal"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}},
         "For 'object' type, 'additionalProperties' must be explicitly set to false"),
        ({**ADDRESS, "additionalProperties": True},
         "For 'object' type, 'additionalProperties: true' is not supported. "
         "Please set 'additionalProperties' to false"),
        ({**ADDRESS, "properties": {"n": {"type": "integer", "minimum": 0}}},
         "For 'integer' type, property 'minimum' is not supported"),
        ({**ADDRESS, "properties": {"a": {"type": "array", "items": ADDRESS, "maxItems": 2}}},
         "For 'array' type, property 'maxItems' is not supported"),
        ({**ADDRESS, "properties": {"a": {"type": "array", "minItems": 2}}},
         "For 'array' type, 'minItems' values other than 0 or 1 are not supported"),
        ({**ADDRESS, "properties": {"next": {"$ref": "#"}}}, "Recursive schemas are not supported"),
    ],
)  # fmt: skip
def test_the_emulator_refuses_a_schema_claudes_structured_output_does_not_take(bedrock, schema, refusal):
    with pytest.raises(ClientError) as caught:
        bedrock.converse(
            modelId=NATIVE, messages=[{"role": "user", "content": [{"text": "x"}]}], outputConfig=_output_config(schema)
        )
    assert caught.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The model returned the following errors: output_config.format.schema: " + refusal,
    }


def test_the_emulator_answers_claude_a_closed_schema(bedrock):
    schema = {**ADDRESS, "properties": {"home": ADDRESS, "tags": {"type": "array", "items": {"type": "string"}}}}
    answer = bedrock.converse(
        modelId=NATIVE, messages=[{"role": "user", "content": [{"text": "x"}]}], outputConfig=_output_config(schema)
    )
    jsonschema.validate(json.loads(answer["output"]["message"]["content"][0]["text"]), schema)


def test_the_emulator_refuses_a_tool_schema_that_is_not_an_object_as_bedrock_does(bedrock):
    tools = [
        {"toolSpec": {"name": "ok", "inputSchema": {"json": {"type": "object"}}}},
        {"toolSpec": {"name": "names", "inputSchema": {"json": {"type": "array"}}}},
    ]
    with pytest.raises(ClientError) as caught:
        bedrock.converse(
            modelId=BY_TOOL, messages=[{"role": "user", "content": [{"text": "x"}]}], toolConfig={"tools": tools}
        )
    assert caught.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The value at toolConfig.tools.1.toolSpec.inputSchema.json.type must be one of the following: "
        "object.",
    }


# --- through gunicorn and the emulator, with real clients --------------------------------------


def ask(directive="", marker=None):
    """One user message with a marker to find its call among the emulator's, and an optional directive."""
    marker = marker or uuid.uuid4().hex
    text = f"Who is {marker}?" + (f" [[emulator {directive}]]" if directive else "")
    return [{"role": "user", "content": text}], marker


def sent_for(emulator, marker):
    """The Converse request body the emulator received for the message holding ``marker``."""
    for call in reversed(emulator_calls(emulator)):
        if marker in json.dumps(call.get("body")):
            return call["body"]
    raise AssertionError("the emulator received no such call")


def assert_carried(sent, model):
    """The client sent response_format (no tool of its own): our answer tool, or outputConfig, carried it."""
    if model == NATIVE:
        assert (
            "toolConfig" not in sent
            and json.loads(sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])["properties"].keys()
            == Person.model_fields.keys()
        )
    else:
        assert "outputConfig" not in sent
        assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "Person"}}
        assert [tool["toolSpec"]["name"] for tool in sent["toolConfig"]["tools"]] == ["Person"]


def ada_args():
    return "args=" + json.dumps(ADA_TEXT)


def test_sdk_parse_on_a_model_without_structured_output(client, emulator):
    messages, marker = ask(ada_args())
    answer = client.chat.completions.parse(model=BY_TOOL, messages=messages, response_format=Person)
    message = answer.choices[0].message
    assert message.parsed == ADA
    assert message.tool_calls in (None, []) and answer.choices[0].finish_reason == "stop"
    sent = sent_for(emulator, marker)
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "Person"}} and "outputConfig" not in sent


@pytest.mark.parametrize(
    "model",
    [
        NATIVE,
        "mistral.mistral-large-3-675b-instruct",
        "deepseek.v3-v1:0",
        "openai.gpt-oss-120b-1:0",
        "qwen.qwen3-32b-v1:0",
    ],
)
def test_sdk_parse_goes_natively_to_every_model_the_profile_says_has_structured_output(client, emulator, model):
    assert profile(model).structured_output
    messages, marker = ask()
    answer = client.chat.completions.parse(model=model, messages=messages, response_format=Person)
    assert isinstance(answer.choices[0].message.parsed, Person)  # the emulator's answer to the schema, validated
    sent = sent_for(emulator, marker)
    assert "outputConfig" in sent and "toolConfig" not in sent


def test_sdk_parse_of_the_emulators_own_answer_conforms(client):
    messages, _ = ask()
    answer = client.chat.completions.parse(model=BY_TOOL, messages=messages, response_format=Person)
    parsed = answer.choices[0].message.parsed
    assert isinstance(parsed, Person)  # the SDK validated it against the model: it conforms
    assert json.loads(answer.choices[0].message.content) == parsed.model_dump(mode="json")


def test_sdk_parse_on_a_model_with_structured_output(client, emulator):
    messages, marker = ask("reply=" + json.dumps(ADA_TEXT))
    answer = client.chat.completions.parse(model=NATIVE, messages=messages, response_format=Person)
    assert answer.choices[0].message.parsed == ADA
    sent = sent_for(emulator, marker)
    assert "toolConfig" not in sent
    schema = json.loads(sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])
    assert schema["required"] == ["name", "age", "role", "addresses"]  # the SDK's strict form of Person


def test_sdk_parse_of_a_native_answer_from_the_schema(client):
    messages, _ = ask()
    answer = client.chat.completions.parse(model=NATIVE, messages=messages, response_format=Person)
    assert isinstance(answer.choices[0].message.parsed, Person)


class Scored(BaseModel):
    score: int = Field(ge=1, le=10)


def test_sdk_parse_on_claude_of_a_schema_its_structured_output_refuses(client, emulator):
    messages, marker = ask("args='{\"score\": 7}'")
    raw = client.chat.completions.with_raw_response.parse(model=NATIVE, messages=messages, response_format=Scored)
    assert raw.parse().choices[0].message.parsed == Scored(score=7)
    assert "response_format by a tool (its schema has minimum" in raw.headers["x-swiftchat-adapted"]
    assert "outputConfig" not in sent_for(emulator, marker)


@pytest.mark.parametrize("model", [BY_TOOL, NATIVE])
def test_sdk_stream_with_a_response_format(client, emulator, model):
    tag = uuid.uuid4().hex
    directive = ada_args() if model == BY_TOOL else "reply=" + json.dumps(ADA_TEXT)
    messages, _ = ask(f"{directive} arg_chunk=7 id={tag}")
    with client.chat.completions.stream(model=model, messages=messages, response_format=Person) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == ADA
    assert final.choices[0].message.tool_calls in (None, []) and final.choices[0].finish_reason == "stop"
    pieces = [event.delta for event in events if event.type == "content.delta"]
    assert len(pieces) > 3 and "".join(pieces) == final.choices[0].message.content  # it came in pieces
    assert not [event for event in events if event.type.startswith("tool_calls")]
    request = stream_record(emulator, tag)["request"]
    assert ("toolConfig" in request) == (model == BY_TOOL) and ("outputConfig" in request) == (model == NATIVE)


class GetWeather(BaseModel):
    city: str


def test_sdk_parse_with_the_callers_tools_gets_their_calls_or_the_answer(client):
    tools = [openai.pydantic_function_tool(GetWeather, name="get_weather")]  # parse() takes strict tools only
    messages, _ = ask("tools=get_weather")
    called = client.chat.completions.parse(
        model=BY_TOOL, messages=messages, response_format=Person, tools=tools
    ).choices[0]
    assert called.finish_reason == "tool_calls" and called.message.parsed is None
    assert [call.function.parsed_arguments for call in called.message.tool_calls] == [GetWeather(city="city 0")]

    messages, _ = ask("tools=Person " + ada_args())
    answered = client.chat.completions.parse(
        model=BY_TOOL, messages=messages, response_format=Person, tools=tools
    ).choices[0]
    assert answered.finish_reason == "stop" and answered.message.parsed == ADA
    assert answered.message.tool_calls in (None, [])


def test_json_object_answers_a_json_object_as_content(client, emulator):
    messages, marker = ask('args=\'{"ok": true, "n": 2}\'')
    answer = client.chat.completions.create(model=BY_TOOL, messages=messages, response_format={"type": "json_object"})
    assert json.loads(answer.choices[0].message.content) == {"ok": True, "n": 2}
    assert answer.choices[0].message.tool_calls is None
    assert sent_for(emulator, marker)["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_OBJECT_TOOL}}


@pytest.mark.parametrize("model", [BY_TOOL, NATIVE])
def test_langchain_with_structured_output(server, emulator, model):
    from langchain_openai import ChatOpenAI

    directive = ada_args() if model == BY_TOOL else "reply=" + json.dumps(ADA_TEXT)
    messages, marker = ask(directive)
    # Its default connection pool is cached for the process and would hold up the server's graceful stop.
    with openai.DefaultHttpxClient() as connection:
        base_url = f"http://127.0.0.1:{server.port}/v1"
        chat = ChatOpenAI(model=model, base_url=base_url, api_key=TEST_KEY, max_retries=0, http_client=connection)
        assert chat.with_structured_output(Person).invoke(messages[0]["content"]) == ADA
    assert_carried(sent_for(emulator, marker), model)


@pytest.mark.parametrize("model", [BY_TOOL, NATIVE])
def test_litellm_as_a_client(server, emulator, monkeypatch, model):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of its price list
    import litellm

    directive = ada_args() if model == BY_TOOL else "reply=" + json.dumps(ADA_TEXT)
    messages, marker = ask(directive)
    base_url = f"http://127.0.0.1:{server.port}/v1"
    # litellm's own pooled client would outlive the test and hold up the server's graceful stop.
    with openai.OpenAI(base_url=base_url, api_key=TEST_KEY, max_retries=0) as connection:
        answer = litellm.completion(
            model=f"openai/{model}",
            api_base=base_url,
            api_key=TEST_KEY,
            messages=messages,
            response_format=Person,
            num_retries=0,
            client=connection,
        )
    message = answer.choices[0].message
    assert Person.model_validate_json(message.content) == ADA
    assert not message.tool_calls and answer.choices[0].finish_reason == "stop"
    assert_carried(sent_for(emulator, marker), model)
