from __future__ import annotations

from datetime import UTC, datetime

from callcore.models import CallDirection, CallRecord
from relay.prompt import render_instructions
from relay.settings import RelaySettings

SID = "CA" + "b" * 32


def test_inbound_prompt_has_the_call_context(relay_settings: RelaySettings) -> None:
    record = CallRecord(call_sid=SID, from_number="+15551230001", to_number="+15559870002")
    # Monday 2025-11-17 15:30 UTC = 10:30 in New York: open.
    text = render_instructions(
        relay_settings, record, greeting="Hi there.", now=datetime(2025, 11, 17, 15, 30, tzinfo=UTC)
    )
    assert "10:30 (Monday, morning)" in text
    assert "We are open right now" in text
    assert 'already greeted the caller with: "Hi there."' in text
    assert "inbound" in text
    assert "+15551230001" not in text  # the caller's number is not the model's business


def test_outbound_prompt_says_why_we_call_and_closed_hours(relay_settings: RelaySettings) -> None:
    record = CallRecord(
        call_sid=SID,
        direction=CallDirection.OUTBOUND,
        from_number="+15559870002",
        to_number="+15551230001",
        context="confirm tomorrow's 10:00 appointment",
    )
    text = render_instructions(relay_settings, record, greeting="Hello.", now=datetime(2025, 11, 16, 3, 0, tzinfo=UTC))
    assert "outbound" in text
    assert "confirm tomorrow's 10:00 appointment" in text
    assert "We are closed right now" in text
