"""Transcripts in S3: JSON Lines under Hive-style date partitions, so Glue/Athena can query them by day.

Layout (one definition, shared by the relay, the status Lambda and the Glue table in `infra/`):

    transcripts/year=YYYY/month=MM/day=DD/<CallSid>.jsonl   one line per turn (TranscriptLine)
    calls/year=YYYY/month=MM/day=DD/<CallSid>.json          one line: the call summary (CallSummaryLine)
    analysis/year=YYYY/month=MM/day=DD/<CallSid>.json       one line: the post-call analysis (AnalysisLine)
    recordings/year=YYYY/month=MM/day=DD/<CallSid>.wav      the call's audio, when recording is on

The day is always the UTC day the call started, so a call's files share one partition.

Caller numbers are personal data: the archive carries them masked plus a keyed hash, so analysts can count repeat
callers without reading anyone's number.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from callcore.aws import s3_client
from callcore.masking import caller_hash, mask_phone
from callcore.models import CallAnalysis, CallRecord, ToolCall, TranscriptTurn

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TRANSCRIPTS_PREFIX = "transcripts"
CALLS_PREFIX = "calls"
ANALYSIS_PREFIX = "analysis"
RECORDINGS_PREFIX = "recordings"
_TRANSCRIPT_KEY = re.compile(
    rf"^{TRANSCRIPTS_PREFIX}/year=\d{{4}}/month=\d{{2}}/day=\d{{2}}/(?P<call_sid>CA[0-9a-fA-F]{{32}})\.jsonl$"
)


def partition(day: datetime) -> str:
    day = day.astimezone(UTC)
    return f"year={day:%Y}/month={day:%m}/day={day:%d}"


def transcript_key(call_sid: str, started: datetime) -> str:
    return f"{TRANSCRIPTS_PREFIX}/{partition(started)}/{call_sid}.jsonl"


def call_summary_key(call_sid: str, started: datetime) -> str:
    return f"{CALLS_PREFIX}/{partition(started)}/{call_sid}.json"


def analysis_key(call_sid: str, started: datetime) -> str:
    return f"{ANALYSIS_PREFIX}/{partition(started)}/{call_sid}.json"


def recording_key(call_sid: str, started: datetime) -> str:
    return f"{RECORDINGS_PREFIX}/{partition(started)}/{call_sid}.wav"


def call_sid_of_transcript(key: str) -> str | None:
    """The CallSid a transcript's key names, or None for any other key (S3 event keys arrive URL-decoded)."""
    match = _TRANSCRIPT_KEY.match(key)
    return match.group("call_sid") if match else None


class TranscriptLine(BaseModel):
    """One line of a transcript file: a turn, flattened for Athena (the Glue table's columns are these fields)."""

    model_config = ConfigDict(extra="forbid")

    call_sid: str
    turn_index: int
    role: str
    text: str
    started_at: str
    ended_at: str
    interrupted: bool
    heard_ms: int | None
    tool_calls: list[ToolCall]

    @classmethod
    def from_turn(cls, turn: TranscriptTurn) -> TranscriptLine:
        return cls(
            call_sid=turn.call_sid,
            turn_index=turn.index,
            role=turn.role.value,
            text=turn.text,
            started_at=turn.started_at.astimezone(UTC).isoformat(),
            ended_at=turn.ended_at.astimezone(UTC).isoformat(),
            interrupted=turn.interrupted,
            heard_ms=turn.heard_ms,
            tool_calls=turn.tool_calls,
        )

    def to_turn(self) -> TranscriptTurn:
        return TranscriptTurn.model_validate(
            {
                "call_sid": self.call_sid,
                "index": self.turn_index,
                "role": self.role,
                "text": self.text,
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "interrupted": self.interrupted,
                "heard_ms": self.heard_ms,
                "tool_calls": [t.model_dump() for t in self.tool_calls],
            }
        )


class CallSummaryLine(BaseModel):
    """The call record as analysts see it: numbers masked and hashed, latencies summarized."""

    model_config = ConfigDict(extra="forbid")

    call_sid: str
    direction: str
    caller_masked: str
    caller_hash: str
    called_masked: str
    profile_id: str | None  # the business line (receptionist profile); None without profiles
    profile_version: str | None
    status: str
    outcome: str | None
    created_at: str
    answered_at: str | None
    ended_at: str | None
    duration_seconds: int | None
    turn_count: int
    barge_in_count: int
    tool_call_count: int
    model_reconnects: int
    model_rotations: int
    transferred: bool
    transfer_reason: str | None
    greeting_ms: int | None
    turn_p50_ms: int | None
    turn_p95_ms: int | None
    input_audio_tokens: int
    output_audio_tokens: int
    input_text_tokens: int
    output_text_tokens: int
    estimated_cost_usd: float | None

    @classmethod
    def from_record(cls, record: CallRecord, *, hash_key: bytes) -> CallSummaryLine:
        caller, called = record.caller_number, record.business_number
        return cls(
            call_sid=record.call_sid,
            direction=record.direction.value,
            caller_masked=mask_phone(caller),
            caller_hash=record.caller_hash or caller_hash(hash_key, caller),
            called_masked=mask_phone(called),
            profile_id=record.profile_id,
            profile_version=record.profile_version,
            status=record.status.value,
            outcome=record.outcome.value if record.outcome else None,
            created_at=record.created_at.astimezone(UTC).isoformat(),
            answered_at=record.answered_at.astimezone(UTC).isoformat() if record.answered_at else None,
            ended_at=record.ended_at.astimezone(UTC).isoformat() if record.ended_at else None,
            duration_seconds=record.duration_seconds,
            turn_count=record.turn_count,
            barge_in_count=record.barge_in_count,
            tool_call_count=record.tool_call_count,
            model_reconnects=record.model_reconnects,
            model_rotations=record.model_rotations,
            transferred=record.transfer_target is not None,
            transfer_reason=record.transfer_reason,
            greeting_ms=record.latencies.greeting_ms,
            turn_p50_ms=record.latencies.turn_p50_ms,
            turn_p95_ms=record.latencies.turn_p95_ms,
            input_audio_tokens=record.usage.input_audio_tokens,
            output_audio_tokens=record.usage.output_audio_tokens,
            input_text_tokens=record.usage.input_text_tokens,
            output_text_tokens=record.usage.output_text_tokens,
            estimated_cost_usd=float(record.estimated_cost_usd) if record.estimated_cost_usd is not None else None,
        )


class AnalysisLine(BaseModel):
    """The post-call analysis as analysts query it (the `analysis` Glue table's columns are these fields)."""

    model_config = ConfigDict(extra="forbid")

    call_sid: str
    created_at: str
    analyzed_at: str
    model: str
    schema_version: int
    summary: str
    intent: str
    resolution: str
    sentiment: float
    lead_score: int
    lead_reason: str
    action_items: list[str]
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @classmethod
    def from_analysis(cls, record: CallRecord, analysis: CallAnalysis) -> AnalysisLine:
        return cls(
            call_sid=record.call_sid,
            created_at=record.created_at.astimezone(UTC).isoformat(),
            analyzed_at=analysis.analyzed_at.astimezone(UTC).isoformat(),
            model=analysis.model,
            schema_version=analysis.schema_version,
            summary=analysis.summary,
            intent=analysis.intent,
            resolution=analysis.resolution.value,
            sentiment=analysis.sentiment,
            lead_score=analysis.lead_score,
            lead_reason=analysis.lead_reason,
            action_items=analysis.action_items,
            input_tokens=analysis.input_tokens,
            output_tokens=analysis.output_tokens,
            cost_usd=float(analysis.cost_usd),
        )


def encode_transcript(turns: list[TranscriptTurn]) -> bytes:
    ordered = sorted(turns, key=lambda t: t.index)
    return b"".join(TranscriptLine.from_turn(t).model_dump_json().encode() + b"\n" for t in ordered)


def decode_transcript(body: bytes) -> list[TranscriptTurn]:
    return [TranscriptLine.model_validate_json(line).to_turn() for line in body.splitlines() if line.strip()]


class TranscriptArchive:
    """Writes and reads transcripts and call summaries. Writes are whole-object PUTs, so a reader never sees half."""

    def __init__(self, bucket: str, *, hash_key: bytes, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._hash_key = hash_key
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def write_transcript(self, record: CallRecord, turns: list[TranscriptTurn]) -> str:
        key = transcript_key(record.call_sid, record.created_at)
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=encode_transcript(turns),
            ContentType="application/x-ndjson",
        )
        return key

    def write_call_summary(self, record: CallRecord) -> str:
        key = call_summary_key(record.call_sid, record.created_at)
        line = CallSummaryLine.from_record(record, hash_key=self._hash_key)
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=line.model_dump_json().encode() + b"\n", ContentType="application/json"
        )
        return key

    def write_analysis(self, record: CallRecord, analysis: CallAnalysis) -> str:
        key = analysis_key(record.call_sid, record.created_at)
        line = AnalysisLine.from_analysis(record, analysis)
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=line.model_dump_json().encode() + b"\n", ContentType="application/json"
        )
        return key

    def write_recording(self, record: CallRecord, audio: IO[bytes]) -> str:
        """Store the call's audio, KMS-encrypted whatever the bucket's default (it is a voice: personal data)."""
        key = recording_key(record.call_sid, record.created_at)
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=audio, ContentType="audio/wav", ServerSideEncryption="aws:kms"
        )
        return key

    def download(self, key: str, destination: IO[bytes]) -> None:
        """Copy an object of the bucket (a recording) into `destination`, a chunk at a time."""
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(chunk_size=1024 * 1024):
            destination.write(chunk)

    def read_transcript(self, call_sid: str, started: datetime) -> list[TranscriptTurn] | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=transcript_key(call_sid, started))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return decode_transcript(response["Body"].read())

    def call_objects(self, call_sid: str, started: datetime) -> list[tuple[str, str | None]]:
        """Every stored version of every object of one call (the bucket is versioned): its transcript, its summary,
        its analysis and its recordings, as (key, version id). What erasing the call must delete."""
        day = partition(started)
        found: list[tuple[str, str | None]] = []
        for prefix in (
            transcript_key(call_sid, started),
            call_summary_key(call_sid, started),
            analysis_key(call_sid, started),
            f"{RECORDINGS_PREFIX}/{day}/{call_sid}",
        ):
            paginator = self.client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    found.append((entry["Key"], entry.get("VersionId")))
        return found

    def delete_versions(self, objects: list[tuple[str, str | None]]) -> None:
        """Delete these object versions for good (not a delete marker: the data itself)."""
        for start in range(0, len(objects), 1000):  # DeleteObjects' limit
            batch = objects[start : start + 1000]
            identifiers: list[Any] = [
                {"Key": key, **({"VersionId": version} if version else {})} for key, version in batch
            ]
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": identifiers, "Quiet": True})
            if response.get("Errors"):
                failed = ", ".join(sorted({error.get("Key", "?") for error in response["Errors"]}))
                raise RuntimeError(f"S3 refused to delete: {failed}")

    def transcript_exists(self, call_sid: str, started: datetime) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=transcript_key(call_sid, started))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                return False
            raise
        return True


def dumps_compact(value: object) -> str:
    """JSON with no spaces: what tool results and arguments look like on the wire."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
