"""A transcript written by the relay's archive reaches the analysis Lambda through S3's event and the queue; the fake
OpenAI Responses API answers over a real socket. The record and S3 are updated, digits never leave, a repeated event
adds nothing, and a failing model is retried by the queue and then dead-lettered."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from callcore.models import (
    ANALYSIS_SCHEMA_VERSION,
    CallLatencies,
    CallOutcome,
    CallRecord,
    CallStatus,
    Resolution,
    TokenUsage,
    ToolCall,
    TranscriptTurn,
    TurnRole,
)
from callcore.transcripts import analysis_key, call_summary_key
from tests.integration.analysis.conftest import MAX_RECEIVES, Pipeline

CARD = "4111 1111 1111 1111"
INSIGHTS = {
    "summary": "The caller booked a table for two. The agent confirmed it and ended the call.",
    "intent": "book a table",
    "resolution": "resolved",
    "sentiment": 0.6,
    "lead_score": 82,
    "lead_reason": "A returning guest who booked for a group.",
    "action_items": ["Prepare a table for two tomorrow at 10:00"],
}
REALTIME_COST = Decimal("0.021500")


def finished_call(pipeline: Pipeline, call_sid: str = "CA" + "ab" * 16) -> CallRecord:
    """A call as the relay leaves it: the record's final fields, then the transcript and summary in S3."""
    started = datetime.now(UTC) - timedelta(minutes=3)
    pipeline.store.create_call(
        CallRecord(
            call_sid=call_sid,
            from_number="+15550100123",
            to_number="+15550100000",
            status=CallStatus.COMPLETED,
            created_at=started,
        )
    )
    record = pipeline.store.update_call(
        call_sid,
        {
            "outcome": CallOutcome.COMPLETED_BY_AGENT,
            "turn_count": 3,
            "latencies": CallLatencies(greeting_ms=30, turn_ms=[400]),
            "usage": TokenUsage(input_audio_tokens=300, output_audio_tokens=200),
            "estimated_cost_usd": REALTIME_COST,
            "duration_seconds": 95,
        },
    )
    said = [
        (TurnRole.AGENT, "Thanks for calling Harbor Bistro. How can I help?", []),
        (TurnRole.CALLER, f"A table for 2 tomorrow at 10, my card is {CARD}, call me on +1 555 010 0123.", []),
        (
            TurnRole.AGENT,
            "You're booked for 2 at 10:00.",
            [ToolCall(call_id="c1", name="book_appointment", arguments="{}", result='{"ok":true}')],
        ),
    ]
    turns = [
        TranscriptTurn(
            call_sid=call_sid,
            index=i,
            role=role,
            text=text,
            started_at=started + timedelta(seconds=5 * i),
            ended_at=started + timedelta(seconds=5 * i + 4),
            tool_calls=tools,
        )
        for i, (role, text, tools) in enumerate(said)
    ]
    key = pipeline.archive.write_transcript(record, turns)
    record = pipeline.store.update_call(call_sid, {"transcript_key": key})
    pipeline.archive.write_call_summary(record)
    return record


def s3_json(pipeline: Pipeline, key: str) -> dict[str, Any]:
    body = pipeline.archive.client.get_object(Bucket=pipeline.archive.bucket, Key=key)["Body"].read()
    return json.loads(body)


def test_a_new_transcript_is_analyzed_onto_the_record_and_into_s3(pipeline):
    pipeline.openai.answer(INSIGHTS)
    record = finished_call(pipeline)

    assert pipeline.deliver() == 1
    assert pipeline.waiting() == 0

    stored = pipeline.store.require_call(record.call_sid)
    analysis = stored.analysis
    assert analysis is not None
    assert analysis.resolution is Resolution.RESOLVED
    assert (analysis.lead_score, analysis.sentiment, analysis.intent) == (82, 0.6, "book a table")
    assert analysis.action_items == INSIGHTS["action_items"]
    assert (analysis.model, analysis.schema_version) == ("gpt-5-mini", ANALYSIS_SCHEMA_VERSION)
    assert analysis.input_tokens > 0
    assert analysis.cost_usd > 0
    assert stored.estimated_cost_usd == REALTIME_COST + analysis.cost_usd

    line = s3_json(pipeline, analysis_key(record.call_sid, record.created_at))
    assert line["call_sid"] == record.call_sid
    assert line["resolution"] == "resolved"
    assert line["schema_version"] == ANALYSIS_SCHEMA_VERSION
    assert line["cost_usd"] == float(analysis.cost_usd)
    summary = s3_json(pipeline, call_summary_key(record.call_sid, record.created_at))
    assert summary["estimated_cost_usd"] == float(REALTIME_COST + analysis.cost_usd)


def test_digits_are_masked_before_the_transcript_leaves(pipeline):
    pipeline.openai.answer(INSIGHTS)
    finished_call(pipeline)
    pipeline.deliver()

    [request] = pipeline.openai.requests
    sent = request.input_text
    assert "caller: A table for # tomorrow at ##, my card is #### #### #### ####" in sent
    assert not re.search(r"\d", sent), sent
    assert "[looked up book_appointment]" in sent
    assert request.body["store"] is False
    assert request.body["text"]["format"]["type"] == "json_schema"
    assert request.body["text"]["format"]["strict"] is True
    assert not pipeline.openai.violations


def test_a_repeated_event_adds_neither_a_request_nor_cost(pipeline):
    pipeline.openai.answer(INSIGHTS)
    record = finished_call(pipeline)
    pipeline.deliver()
    first = pipeline.store.require_call(record.call_sid)

    # The status Lambda may write the same transcript again: S3 sends another event.
    turns = pipeline.archive.read_transcript(record.call_sid, record.created_at)
    assert turns
    pipeline.archive.write_transcript(first, turns)
    assert pipeline.deliver() == 1

    again = pipeline.store.require_call(record.call_sid)
    assert len(pipeline.openai.requests) == 1
    assert again.estimated_cost_usd == first.estimated_cost_usd
    assert again.analysis == first.analysis


def test_a_failing_model_is_retried_by_the_queue_then_dead_lettered(pipeline):
    pipeline.openai.fail_always(500)
    record = finished_call(pipeline)

    delivered = pipeline.deliver(rounds=MAX_RECEIVES + 2)

    assert delivered == MAX_RECEIVES
    assert all(result["batchItemFailures"] for result in pipeline.results[-MAX_RECEIVES:])
    [dead] = pipeline.dead_letters()
    assert record.call_sid in json.loads(dead["Body"])["Records"][0]["s3"]["object"]["key"]
    stored = pipeline.store.require_call(record.call_sid)
    assert stored.analysis is None
    assert stored.estimated_cost_usd == REALTIME_COST
    # Each delivery: the first try and the SDK's two retries.
    assert len(pipeline.openai.requests) == MAX_RECEIVES * 3


def test_a_model_that_recovers_is_analyzed_on_the_next_delivery(pipeline):
    for _ in range(3):
        pipeline.openai.fail_next(429, "Rate limit reached")
    pipeline.openai.answer(INSIGHTS)
    record = finished_call(pipeline)

    assert pipeline.deliver() == 2
    assert pipeline.store.require_call(record.call_sid).analysis is not None
    assert pipeline.dead_letters() == []


def test_a_refusal_is_a_failure_the_queue_retries(pipeline):
    pipeline.openai.refuse_next()
    pipeline.openai.answer(INSIGHTS)
    record = finished_call(pipeline)

    assert pipeline.deliver() == 2
    assert pipeline.store.require_call(record.call_sid).analysis is not None


def test_analysis_turned_off_sends_nothing(pipeline, monkeypatch):
    monkeypatch.setenv("ANALYSIS_ENABLED", "false")
    record = finished_call(pipeline)
    assert pipeline.deliver() == 1
    assert pipeline.waiting() == 0
    assert pipeline.openai.requests == []
    assert pipeline.store.require_call(record.call_sid).analysis is None


@pytest.mark.parametrize("key", ["calls/year=2026/month=11/day=22/CA" + "0" * 32 + ".json", "transcripts/readme.txt"])
def test_objects_other_than_transcripts_are_ignored(pipeline, key):
    pipeline.archive.client.put_object(Bucket=pipeline.archive.bucket, Key=key, Body=b"{}")
    assert pipeline.deliver(rounds=1) == 0  # the notification's prefix and suffix filter them out
    assert pipeline.openai.requests == []
