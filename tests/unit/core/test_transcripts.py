from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from callcore.models import CallLatencies, CallOutcome, CallRecord, ToolCall, TranscriptTurn, TurnRole
from callcore.transcripts import (
    CallSummaryLine,
    TranscriptArchive,
    TranscriptLine,
    call_summary_key,
    decode_transcript,
    encode_transcript,
    transcript_key,
)

SID = "CA" + "c" * 32
START = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)


def turns() -> list[TranscriptTurn]:
    tool = ToolCall(
        call_id="call_9", name="book_appointment", arguments='{"name":"Ada"}', result='{"ok":true}', duration_ms=85
    )
    return [
        TranscriptTurn(
            call_sid=SID,
            index=1,
            role=TurnRole.AGENT,
            text="Booked for ten.",
            started_at=START,
            ended_at=START + timedelta(seconds=2),
            interrupted=True,
            heard_ms=800,
            tool_calls=[tool],
        ),
        TranscriptTurn(
            call_sid=SID,
            index=0,
            role=TurnRole.CALLER,
            text="Book me at ten.",
            started_at=START,
            ended_at=START + timedelta(seconds=1),
        ),
    ]


def test_keys_are_hive_partitioned_by_utc_day() -> None:
    local = START.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))  # already the 8th in Tokyo
    assert transcript_key(SID, local) == f"transcripts/year=2026/month=03/day=07/{SID}.jsonl"
    assert call_summary_key(SID, START) == f"calls/year=2026/month=03/day=07/{SID}.json"


def test_jsonl_is_ordered_one_object_per_line_and_round_trips() -> None:
    body = encode_transcript(turns())
    lines = body.decode().splitlines()
    assert len(lines) == 2
    parsed = [json.loads(line) for line in lines]
    assert [p["turn_index"] for p in parsed] == [0, 1]
    assert set(parsed[0]) == set(TranscriptLine.model_fields)
    assert parsed[1]["tool_calls"][0]["name"] == "book_appointment"
    assert decode_transcript(body) == sorted(turns(), key=lambda t: t.index)


def test_archive_writes_and_reads(archive: TranscriptArchive) -> None:
    record = CallRecord(
        call_sid=SID,
        from_number="+14155550100",
        to_number="+14155550199",
        created_at=START,
        outcome=CallOutcome.TRANSFERRED,
        transfer_target="+14155550111",
        latencies=CallLatencies(greeting_ms=70, turn_ms=[300, 400, 900]),
        estimated_cost_usd=Decimal("0.031"),
        profile_id="bistro",
        profile_version="0123456789abcdef",
    )
    assert not archive.transcript_exists(SID, START)
    assert archive.read_transcript(SID, START) is None
    key = archive.write_transcript(record, turns())
    assert key == transcript_key(SID, START)
    assert archive.transcript_exists(SID, START)
    assert archive.read_transcript(SID, START) == sorted(turns(), key=lambda t: t.index)

    summary_key = archive.write_call_summary(record)
    body = archive.client.get_object(Bucket=archive.bucket, Key=summary_key)["Body"].read()
    summary = CallSummaryLine.model_validate_json(body)
    assert summary.caller_masked == "+1******0100"
    assert "+14155550100" not in body.decode()
    assert summary.transferred
    assert summary.turn_p50_ms == 400
    assert summary.estimated_cost_usd == 0.031
    assert (summary.profile_id, summary.profile_version) == ("bistro", "0123456789abcdef")


def test_caller_hash_is_stable_per_number_and_keyed() -> None:
    record = CallRecord(call_sid=SID, from_number="+14155550100", to_number="+14155550199", created_at=START)
    a = CallSummaryLine.from_record(record, hash_key=b"k1")
    b = CallSummaryLine.from_record(record.model_copy(update={"call_sid": "CA" + "d" * 32}), hash_key=b"k1")
    c = CallSummaryLine.from_record(record, hash_key=b"k2")
    assert a.caller_hash == b.caller_hash != c.caller_hash
