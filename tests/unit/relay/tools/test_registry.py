"""ToolRegistry.run never raises: every failure becomes a short error the model can say, with no PII in the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

import pytest
from openai.types.realtime import RealtimeClientEvent
from pydantic import BaseModel, ConfigDict, TypeAdapter

from callcore.store import CallStore
from relay.tools import Tool, ToolContext, ToolOutcome, ToolRegistry

from .conftest import CALLER, MakeContext, make_settings

EXPECTED_TOOLS = ["get_business_hours", "check_availability", "book_appointment", "transfer_to_human", "end_call"]


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlowTool(Tool[NoArgs]):
    name = "slow"
    description = "sleeps"
    arguments = NoArgs
    timeout_message: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.cancelled = False

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return ToolOutcome(output={})


class BrokenTool(Tool[NoArgs]):
    name = "broken"
    description = "fails with the caller's number in its message"
    arguments = NoArgs

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        raise RuntimeError(f"lookup failed for {ctx.caller_number}")


def _walk(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value, *(d for v in value.values() for d in _walk(v))]
    if isinstance(value, list):
        return [d for v in value for d in _walk(v)]
    return []


def test_session_tools_are_ga_function_definitions(registry: ToolRegistry) -> None:
    tools = registry.session_tools()
    assert [t["name"] for t in tools] == EXPECTED_TOOLS
    for tool in tools:
        assert tool["type"] == "function"
        assert len(tool["description"]) > 40
        assert tool["parameters"]["type"] == "object"
        assert tool["parameters"]["additionalProperties"] is False
        # Pydantic's titles and null branches are noise to the model.
        assert all("title" not in d and "anyOf" not in d for d in _walk(tool["parameters"]) if "type" in d)
    event = {"type": "session.update", "session": {"type": "realtime", "tools": tools, "tool_choice": "auto"}}
    parsed = TypeAdapter(RealtimeClientEvent).validate_python(event)
    assert [t.name for t in parsed.session.tools] == EXPECTED_TOOLS  # type: ignore[union-attr]


def test_required_arguments_match_the_models(registry: ToolRegistry) -> None:
    by_name = {t["name"]: t["parameters"] for t in registry.session_tools()}
    assert by_name["book_appointment"]["required"] == ["name", "date", "time"]
    assert by_name["check_availability"]["required"] == ["date"]
    assert "required" not in by_name["get_business_hours"]


def test_business_hours_are_validated_at_start_up() -> None:
    with pytest.raises(ValueError, match="closes before it opens"):
        make_settings(BUSINESS_HOURS="mon 17:00-09:00")


async def test_unknown_tool(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("launch_rocket", "{}", make_context())
    assert not outcome.ok
    assert "no tool named 'launch_rocket'" in outcome.output["error"]
    assert outcome.action is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"), ('"x"', "must be a JSON object")],
)
async def test_arguments_that_are_not_an_object(
    registry: ToolRegistry, make_context: MakeContext, arguments: str, expected: str
) -> None:
    outcome = await registry.run("end_call", arguments, make_context())
    assert not outcome.ok
    assert expected in outcome.output["error"]
    assert outcome.action is None


async def test_oversized_arguments_are_refused(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("end_call", json.dumps({"reason": "x" * 20_000}), make_context())
    assert not outcome.ok
    assert "too long" in outcome.output["error"]


async def test_timeout_gives_a_graceful_error_and_cancels_the_tool(make_context: MakeContext) -> None:
    slow = SlowTool()
    settings = make_settings(TOOL_TIMEOUT_SECONDS="0.05")
    outcome = await ToolRegistry([slow]).run("slow", "{}", make_context(settings))
    assert not outcome.ok
    assert "timed out" in outcome.output["error"]
    assert slow.cancelled


async def test_slow_store_times_out_with_the_booking_specific_message(
    make_context: MakeContext, store: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_create_booking(booking: object) -> object:
        time.sleep(0.3)  # a throttled DynamoDB: blocking, so it runs in a thread
        return booking

    monkeypatch.setattr(store, "create_booking", slow_create_booking)
    settings = make_settings(TOOL_TIMEOUT_SECONDS="0.05")
    arguments = json.dumps({"name": "Dana", "date": "2030-06-05", "time": "10:30"})
    outcome = await ToolRegistry.default(settings).run("book_appointment", arguments, make_context(settings))
    assert not outcome.ok
    assert "not known whether the booking went through" in outcome.output["error"]


async def test_unexpected_failure_is_logged_without_pii(
    make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcome = await ToolRegistry([BrokenTool()]).run("broken", "{}", make_context())
    assert not outcome.ok
    assert "failed unexpectedly" in outcome.output["error"]
    assert CALLER not in outcome.output["error"]
    assert "RuntimeError" in caplog.text
    assert CALLER not in caplog.text
    assert "Traceback" not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ValueError, match="two tools named 'broken'"):
        ToolRegistry([BrokenTool(), BrokenTool()])
