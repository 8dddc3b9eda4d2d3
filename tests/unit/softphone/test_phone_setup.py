"""What `make phone` runs: the model chosen from OPENAI_API_KEY, the stack set up as a profile's line, and how the
page is shown a stored turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcore.models import ToolCall, TranscriptTurn, TurnRole
from callcore.profiles import DEFAULT_PROFILES_DIR
from local.phone.__main__ import chosen_model, stack_options
from local.phone.server import turn_view

CALL_SID = "CA" + "1" * 32


def test_auto_talks_to_openai_only_when_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    assert chosen_model("auto") == "openai"
    monkeypatch.setenv("OPENAI_API_KEY", " ")
    assert chosen_model("auto") == "spoken"
    assert chosen_model("scripted") == "scripted"


def test_asking_for_openai_without_a_key_stops_and_says_which_setting_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="OPENAI_API_KEY"):
        chosen_model("openai")


def test_the_stack_answers_as_the_profiles_line() -> None:
    options = stack_options(DEFAULT_PROFILES_DIR / "example.toml", "spoken")
    assert (options.business_name, options.agent_number, options.business_timezone) == (
        "Harbor Bistro",
        "+15550100000",
        "America/New_York",
    )
    assert options.human_line == "+15550100999"


def turn(index: int, role: TurnRole, started: datetime, ended: datetime, **extra: object) -> TranscriptTurn:
    return TranscriptTurn(
        call_sid=CALL_SID, index=index, role=role, text="…", started_at=started, ended_at=ended, **extra
    )


def test_an_agent_turn_answering_the_caller_carries_its_latency_and_tools() -> None:
    t0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
    caller = turn(1, TurnRole.CALLER, t0, t0 + timedelta(seconds=2))
    tool = ToolCall(call_id="c1", name="get_business_hours", arguments="{}", result='{"open_now":true}')
    agent = turn(2, TurnRole.AGENT, t0 + timedelta(milliseconds=2430), t0 + timedelta(seconds=5), tool_calls=[tool])
    view = turn_view(agent, caller)
    assert view["latencyMs"] == 430
    assert view["tools"] == [
        {"name": "get_business_hours", "arguments": "{}", "result": '{"open_now":true}', "ok": True, "durationMs": 0}
    ]
    assert turn_view(caller, None)["latencyMs"] is None
