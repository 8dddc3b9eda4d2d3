"""The fake OpenAI Responses API refuses what the service refuses, so it can fail the code that talks to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, ConfigDict

from callcore.models import CallInsights
from tests.fakes.openai_responses import FakeResponsesApi, ResponsesServer

KEY = "test-openai-key"
ANSWER = {
    "summary": "A. B.",
    "intent": "book",
    "resolution": "resolved",
    "sentiment": 0.1,
    "lead_score": 5,
    "lead_reason": "r",
    "action_items": [],
}


@pytest.fixture
def server() -> Iterator[ResponsesServer]:
    with ResponsesServer(FakeResponsesApi(api_key=KEY)) as running:
        yield running


def client(server: ResponsesServer, key: str = KEY) -> OpenAI:
    return OpenAI(api_key=key, base_url=server.base_url, max_retries=0)


def test_a_structured_request_gets_an_answer_the_sdk_parses(server):
    server.fake.answer(ANSWER)
    response = client(server).responses.parse(model="gpt-5-mini", input="hi", text_format=CallInsights)
    assert response.output_parsed == CallInsights.model_validate(ANSWER)
    assert response.usage is not None
    assert response.usage.input_tokens > 0


def test_a_wrong_key_is_refused(server):
    with pytest.raises(openai.AuthenticationError):
        client(server, key="sk-wrong-key").responses.create(model="gpt-5-mini", input="hi")


def test_an_unknown_parameter_is_refused(server):
    with pytest.raises(openai.BadRequestError, match="Unknown parameter"):
        client(server).responses.create(model="gpt-5-mini", input="hi", extra_body={"temprature": 0.2})


def test_a_schema_that_is_not_strict_is_refused(server):
    loose: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        client(server).responses.create(
            model="gpt-5-mini",
            input="hi",
            text={"format": {"type": "json_schema", "name": "loose", "schema": loose, "strict": True}},
        )


def test_an_optional_field_is_refused_under_strict_mode(server):
    class Partial(BaseModel):
        model_config = ConfigDict(extra="forbid")
        a: str
        b: str = "x"

    schema = Partial.model_json_schema()  # `b` is not required: the service refuses it under strict mode
    with pytest.raises(openai.BadRequestError, match="required"):
        client(server).responses.create(
            model="gpt-5-mini",
            input="hi",
            text={
                "format": {
                    "type": "json_schema",
                    "name": "p",
                    "schema": {**schema, "additionalProperties": False},
                    "strict": True,
                }
            },
        )


def test_a_scripted_answer_off_the_schema_is_a_violation(server):
    server.fake.answer({**ANSWER, "lead_score": 101})
    with pytest.raises(openai.InternalServerError):
        client(server).responses.parse(model="gpt-5-mini", input="hi", text_format=CallInsights)
    assert server.fake.violations
