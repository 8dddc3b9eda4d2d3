"""What the post-call analysis sends out of AWS: the conversation with every digit masked, long calls cut in the
middle; and its settings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from callcore.models import CallOutcome, CallRecord, ToolCall, TranscriptTurn, TurnRole
from callcore.settings import SettingsError
from lambdas.logic.post_call_analysis import CUT_MARK, conversation_text
from lambdas.settings import AnalysisSettings

CALL_SID = "CA" + "34" * 16
START = datetime(2026, 11, 22, 10, tzinfo=UTC)
ENV = {"CALLS_TABLE": "calls", "TRANSCRIPTS_BUCKET": "transcripts", "OPENAI_API_KEY": "test-openai-key",
       "STREAM_TOKEN_SECRET": "test-stream-token-secret"}  # fmt: skip


def turn(index: int, role: TurnRole, text: str, **extra) -> TranscriptTurn:
    at = START + timedelta(seconds=index * 5)
    return TranscriptTurn(
        call_sid=CALL_SID, index=index, role=role, text=text, started_at=at, ended_at=at + timedelta(seconds=4), **extra
    )


def record(**fields) -> CallRecord:
    return CallRecord(call_sid=CALL_SID, from_number="+15550100123", to_number="+15550100000", **fields)


def test_every_digit_is_masked_and_speakers_named():
    text = conversation_text(
        record(outcome=CallOutcome.TRANSFERRED, transfer_reason="dispute over invoice 20455"),
        [
            turn(0, TurnRole.AGENT, "Hello, Harbor Bistro."),
            turn(1, TurnRole.CALLER, "My card 4111-1111-1111-1111 exp 12/29, code 737, phone (415) 555 0123."),
            turn(
                2,
                TurnRole.AGENT,
                "Let me check.",
                interrupted=True,
                heard_ms=800,
                tool_calls=[ToolCall(call_id="c", name="get_business_hours", arguments="{}", result='{"open":"08"}')],
            ),
        ],
        max_chars=10_000,
    )
    assert not re.search(r"\d", text)
    assert "caller: My card ####-####-####-#### exp ##/##, code ###, phone (###) ### ####." in text
    assert "agent (interrupted by the caller): Let me check. [looked up get_business_hours]" in text
    assert "Ended as: transferred." in text
    assert "invoice #####" in text
    assert '"open"' not in text, "tool results stay in AWS"


def test_a_long_call_keeps_its_beginning_and_end():
    turns = [turn(i, TurnRole.CALLER if i % 2 else TurnRole.AGENT, f"line {'x' * 200} {i}") for i in range(200)]
    text = conversation_text(record(), turns, max_chars=5000)
    assert len(text) <= 5000
    assert CUT_MARK in text
    assert text.startswith("Call direction: inbound.")
    assert text.rstrip().endswith("#")  # the last turn's (masked) index: the end of the call is there


def test_analysis_settings_defaults_and_prices():
    settings = AnalysisSettings.from_env(ENV)
    assert settings.analysis_enabled
    assert settings.analysis_model == "gpt-5-mini"
    assert settings.prices.cost(input_tokens=1_000_000, cached_tokens=0, output_tokens=0) == Decimal("0.25")
    assert settings.prices.cost(input_tokens=1000, cached_tokens=1000, output_tokens=500) == Decimal("0.001025")


@pytest.mark.parametrize(
    ("name", "value"),
    [("OPENAI_BASE_URL", "ftp://example.com"), ("ANALYSIS_ENABLED", "maybe"), ("ANALYSIS_PRICE_INPUT_PER_M", "-1")],
)
def test_bad_analysis_settings_name_the_variable(name, value):
    with pytest.raises(SettingsError) as error:
        AnalysisSettings.from_env({**ENV, name: value})
    assert name in str(error.value)


def test_the_openai_key_is_required():
    with pytest.raises(SettingsError) as error:
        AnalysisSettings.from_env({k: v for k, v in ENV.items() if k != "OPENAI_API_KEY"})
    assert "OPENAI_API_KEY is required" in str(error.value)
