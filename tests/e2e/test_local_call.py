"""The README's main job with the scripted model, as a test: one complete phone call through the real Lambdas, the
real relay, DynamoDB and S3 (moto server), with the fake Twilio network and the scripted Realtime model (exact
control, tones for speech). Asserts what every user of the product sees afterwards: the record, the transcript, the
booking, the hang-up on the wire, the recording, and no protocol violation."""

from __future__ import annotations

import json
from pathlib import Path

from callcore.models import CallOutcome, CallStatus, TurnRole
from local.call import report, run_call
from local.recording import read_stereo_wav


async def test_a_complete_call_leaves_its_record_transcript_and_booking(tmp_path: Path) -> None:
    result = await run_call(model="scripted", verbose=False, audio_path=tmp_path / "call.wav")

    assert result.violations == []
    assert result.stream_url == "wss://relay.localhost/media-stream"
    assert result.ended_by == "hangup"  # the agent hung up through call control -> Lambda -> Twilio REST

    record = result.record
    assert record.status is CallStatus.COMPLETED
    assert record.outcome is CallOutcome.COMPLETED_BY_AGENT
    assert record.duration_seconds is not None
    assert record.ended_at is not None
    assert record.answered_at is not None
    assert record.latencies.greeting_ms is not None
    assert len(record.latencies.turn_ms) == 3
    assert record.tool_call_count == 3
    assert record.usage.output_audio_tokens > 0
    assert record.estimated_cost_usd is not None
    assert record.estimated_cost_usd > 0
    assert record.transcript_key is not None
    assert record.transcript_key.endswith(f"/{record.call_sid}.jsonl")
    assert "/year=" in record.transcript_key

    roles = [turn.role for turn in result.turns]
    assert roles == [TurnRole.AGENT, TurnRole.CALLER, TurnRole.AGENT, TurnRole.CALLER, TurnRole.AGENT,
                     TurnRole.CALLER, TurnRole.AGENT]  # fmt: skip
    assert result.turns[0].text.startswith("Thanks for calling Harbor Bistro")
    assert result.turns[1].text == "Hi, what are your opening hours today?"
    tools = [tool.name for turn in result.turns for tool in turn.tool_calls]
    assert tools == ["get_business_hours", "book_appointment", "end_call"]
    booking = json.loads(result.turns[4].tool_calls[0].result)
    assert booking["booked"] is True
    assert booking["name"] == "Ada"
    assert [(b.name, b.day, b.time) for b in result.bookings] == [("Ada", booking["date"], "19:00")]
    assert not any(turn.interrupted for turn in result.turns)

    # The relay reported the call's figures as metrics the dashboard and autoscaling read.
    names = {key for document in result.metrics for key in document if not key.startswith("_") and key != "Service"}
    assert {"ActiveCalls", "GreetingLatency", "TurnLatency", "CallDuration", "CallCost"} <= names

    # The recording: both sides, the caller's tones on the left and the agent's on the right.
    assert result.audio_path == tmp_path / "call.wav"
    caller, agent = read_stereo_wav(result.audio_path)
    assert max(caller) > 10_000
    assert max(agent) > 10_000
    assert report(result).splitlines()[-1] == f"audio: {result.audio_path}"
