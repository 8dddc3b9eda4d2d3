"""The one definition of a call record and of a transcript turn.

Every part (the Lambdas, the relay, the analytics schema in `infra/`) imports these. Stored shapes (DynamoDB items,
S3 JSON Lines) are derived from them in `callcore.store` and `callcore.transcripts`, never written by hand elsewhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

CALL_SID_PATTERN = re.compile(r"^CA[0-9a-fA-F]{32}$")
E164_PATTERN = re.compile(r"^\+[1-9]\d{6,14}$")

CallSid = Annotated[str, Field(pattern=CALL_SID_PATTERN.pattern, description="Twilio Call SID, CA + 32 hex")]

# What Twilio puts in `From` when the caller's number is withheld: words, or the words spelt on a keypad (ANONYMOUS,
# RESTRICTED, BLOCKED, UNKNOWN, UNAVAILABLE), which look like phone numbers but are shared by every such caller.
WITHHELD_CALLER_IDS = frozenset(
    {
        "anonymous",
        "restricted",
        "blocked",
        "unknown",
        "unavailable",
        "private",
        "+266696687",
        "+7378742833",
        "+2562533",
        "+8656696",
        "+86282452253",
    }
)
# Twilio's `StirVerstat` when the carrier fully attested (A) that the caller may use the number they present: the
# only level at which the number says who is calling (B and C: the carrier does not vouch for the number).
FULL_ATTESTATION = "TN-Validation-Passed-A"


def is_withheld_number(number: str) -> bool:
    """A caller id that is not one person's phone number: withheld, or not a phone number at all (a SIP or client
    identity), so nothing can be known or counted about the person behind it."""
    return number.strip().lower() in WITHHELD_CALLER_IDS or not E164_PATTERN.match(number)


def utc_now() -> datetime:
    return datetime.now(UTC)


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallStatus(StrEnum):
    """Twilio's CallStatus values, in the order a call moves through them."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED}
)


class CallOutcome(StrEnum):
    """How the call ended, from the product's point of view (Twilio's status says only that it ended)."""

    COMPLETED_BY_AGENT = "completed_by_agent"  # the agent said goodbye and hung up (end_call)
    CALLER_HUNG_UP = "caller_hung_up"
    TRANSFERRED = "transferred"  # handed to the human line
    OVERFLOW_TO_HUMAN = "overflow_to_human"  # over capacity / relay unhealthy: never reached the agent
    MAX_DURATION = "max_duration"
    SILENCE = "silence"  # nobody spoke after the agent checked in: the agent said goodbye and hung up
    CALLER_LIMIT = "caller_limit"  # the caller already had their most live calls: answered busy, no agent
    AFTER_HOURS_TO_HUMAN = "after_hours_to_human"  # closed, and the line's after-hours rule sends calls to its human
    CLOSED = "closed"  # closed, and the line's after-hours rule says its message and hangs up: no agent
    UNKNOWN_NUMBER = "unknown_number"  # the dialled number is no deployed line's and none answers unknown numbers
    NOT_ANSWERED = "not_answered"  # busy, no-answer, canceled, failed before answer
    VOICEMAIL = "voicemail"  # outbound call reached an answering machine
    ERROR = "error"


class TurnRole(StrEnum):
    CALLER = "caller"
    AGENT = "agent"


class TokenUsage(BaseModel):
    """Token counts summed over every `response.done` of the call."""

    model_config = ConfigDict(extra="forbid")

    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_text_tokens + self.input_audio_tokens + self.output_text_tokens + self.output_audio_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_text_tokens=self.input_text_tokens + other.input_text_tokens,
            input_audio_tokens=self.input_audio_tokens + other.input_audio_tokens,
            input_cached_tokens=self.input_cached_tokens + other.input_cached_tokens,
            output_text_tokens=self.output_text_tokens + other.output_text_tokens,
            output_audio_tokens=self.output_audio_tokens + other.output_audio_tokens,
        )


class CallLatencies(BaseModel):
    """What the caller felt, in milliseconds."""

    model_config = ConfigDict(extra="forbid")

    greeting_ms: int | None = Field(default=None, description="stream start -> first greeting audio sent to Twilio")
    turn_ms: list[int] = Field(default_factory=list, description="per turn: speech stopped -> first audio to Twilio")
    tool_ms: list[int] = Field(default_factory=list, description="per tool call: arguments done -> result sent")

    @property
    def turn_p50_ms(self) -> int | None:
        return _percentile(self.turn_ms, 50)

    @property
    def turn_p95_ms(self) -> int | None:
        return _percentile(self.turn_ms, 95)


def _percentile(values: list[int], pct: int) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


class CallRecord(BaseModel):
    """One phone call, inbound or outbound. Created by the incoming-call (or outbound) Lambda, advanced by status
    callbacks, completed by the relay."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    call_sid: CallSid
    account_sid: str | None = None
    direction: CallDirection = CallDirection.INBOUND
    from_number: str = Field(description="E.164 or a Twilio client/anonymous identity; mask before logging")
    to_number: str
    status: CallStatus = CallStatus.RINGING
    status_sequence: int = Field(default=-1, description="SequenceNumber of the last applied status callback")
    created_at: datetime = Field(default_factory=utc_now)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: int | None = None
    outcome: CallOutcome | None = None
    transfer_requested_at: datetime | None = Field(
        default=None, description="set while a transfer is being made, so a retried request cannot dial twice"
    )
    transfer_target: str | None = None
    transfer_reason: str | None = None
    transfer_summary: str | None = None
    stream_sid: str | None = Field(default=None, description="set once, when the relay admits the media stream")
    stream_token_expiry: int | None = Field(
        default=None, description="expiry of the stream token issued for this call, so a retried webhook gets it again"
    )
    seat_released_at: datetime | None = Field(
        default=None, description="when the agent seat this call took was given back (set once, with the counter)"
    )
    finished_at: datetime | None = Field(
        default=None, description="when the end-of-call work (outcome, seat, transcript, summary) was done"
    )
    turn_count: int = 0
    barge_in_count: int = 0
    tool_call_count: int = 0
    model_reconnects: int = Field(default=0, description="model sessions lost mid-call and replaced, conversation kept")
    model_rotations: int = Field(default=0, description="moves to a fresh model session before the 60-minute limit")
    latencies: CallLatencies = Field(default_factory=CallLatencies)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    estimated_cost_usd: Decimal | None = None
    transcript_key: str | None = Field(default=None, description="S3 key of the transcript once written")
    error: str | None = None
    context: str | None = Field(
        default=None,
        max_length=2000,
        description="outbound calls: what the agent is calling about (POST /calls `context`), for the prompt",
    )
    profile_id: str | None = Field(
        default=None,
        max_length=40,
        description="the receptionist profile (business line) that answered or placed the call; None without profiles",
    )
    profile_version: str | None = Field(
        default=None, max_length=64, description="the version of that profile the call uses from start to end"
    )
    caller_hash: str | None = Field(
        default=None,
        max_length=64,
        description="keyed hash of the caller's number (callcore.masking.caller_hash): finds the call once the "
        "number itself is redacted",
    )
    caller_slot: str | None = Field(
        default=None,
        max_length=64,
        description="the per-caller live-call count this call holds a place in until its seat is given back: the "
        "caller's hash, or `withheld`",
    )
    stir_verstat: str | None = Field(
        default=None,
        max_length=64,
        description="inbound calls: Twilio's StirVerstat, how far the carrier vouched for the caller's number",
    )
    number_redacted_at: datetime | None = Field(
        default=None, description="when the caller's number was replaced by its masked form (the hash stays)"
    )
    recording: CallRecording | None = Field(
        default=None, description="set when the call is recorded (CALL_RECORDING_ENABLED): where the audio is"
    )
    analysis: CallAnalysis | None = Field(
        default=None, description="the post-call analysis of the transcript, once made (its cost is in the call's)"
    )

    @field_validator(
        "created_at",
        "answered_at",
        "ended_at",
        "transfer_requested_at",
        "seat_released_at",
        "finished_at",
        "number_redacted_at",
    )
    @classmethod
    def _must_be_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        return value

    @property
    def caller_number(self) -> str:
        """The person on the line: who called in, or whom an outbound call dialled."""
        return self.from_number if self.direction is CallDirection.INBOUND else self.to_number

    @property
    def caller_id_verified(self) -> bool:
        """Whether the number says who the person is: an outbound call reached the number dialled; an inbound one
        only when the carrier fully attested it (STIR/SHAKEN A). A spoofed number is never fully attested."""
        return self.direction is CallDirection.OUTBOUND or self.stir_verstat == FULL_ATTESTATION

    @property
    def business_number(self) -> str:
        """The business's side of the call: the number dialled in, or the caller id of an outbound call."""
        return self.to_number if self.direction is CallDirection.INBOUND else self.from_number

    @property
    def day(self) -> str:
        """The UTC day the call started, `YYYY-MM-DD`: the by-day index and the S3 partition both use it."""
        return self.created_at.astimezone(UTC).strftime("%Y-%m-%d")


# The models below are `defer_build`: pydantic builds their validators on first use, not at import, so a Lambda that
# never touches a turn or a booking (the TwiML webhook) does not build them during its cold start.


class ToolCall(BaseModel):
    """A function call the agent made during a turn, with what it got back."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    call_id: str
    name: str
    arguments: str = Field(description="the JSON arguments exactly as the model sent them")
    result: str = Field(description="the JSON result exactly as given back to the model")
    ok: bool = True
    duration_ms: int = 0


class TranscriptTurn(BaseModel):
    """One utterance of the caller or the agent. Written to DynamoDB as it completes, to S3 at the end of the call."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    call_sid: CallSid
    index: int = Field(ge=0, description="0-based, in the order the turns completed; idempotency key")
    role: TurnRole
    text: str
    started_at: datetime
    ended_at: datetime
    interrupted: bool = Field(default=False, description="the caller barged in while the agent was speaking")
    heard_ms: int | None = Field(default=None, ge=0, description="agent turns: milliseconds the caller actually heard")
    tool_calls: list[ToolCall] = Field(default_factory=list)
    item_id: str | None = Field(default=None, description="OpenAI conversation item id, for tracing")


class Booking(BaseModel):
    """An appointment the agent booked, when no business API is configured (the local booking store)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    booking_id: str
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, the business's local date")
    time: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, the business's local time")
    name: str = Field(min_length=1, max_length=200)
    party_size: int = Field(default=1, ge=1, le=50)
    notes: str = Field(default="", max_length=1000)
    call_sid: CallSid | None = None
    created_at: datetime = Field(default_factory=utc_now)


# ---- after the call: the recording and the post-call analysis -------------------------------------------------------

RECORDING_SID_PATTERN = re.compile(r"^RE[0-9a-fA-F]{32}$")


class RecordingState(StrEnum):
    REQUESTED = "requested"  # Twilio was asked to record; the audio is still with Twilio
    STORED = "stored"  # copied into the transcripts bucket (and deleted from Twilio once `deleted_at` is set)
    FAILED = "failed"  # Twilio reported the recording failed or held no audio


class CallRecording(BaseModel):
    """A dual-channel recording of the call (left: caller, right: agent), started once the media stream opened."""

    model_config = ConfigDict(extra="forbid")

    recording_sid: str = Field(pattern=RECORDING_SID_PATTERN.pattern)
    state: RecordingState = RecordingState.REQUESTED
    requested_at: datetime
    key: str | None = Field(default=None, description="S3 key of the audio in the transcripts bucket")
    duration_seconds: int | None = None
    channels: int | None = None
    stored_at: datetime | None = None
    deleted_at: datetime | None = Field(default=None, description="when Twilio's copy was deleted")
    error: str | None = None


class Resolution(StrEnum):
    RESOLVED = "resolved"
    TRANSFERRED = "transferred"
    FOLLOW_UP_NEEDED = "follow_up_needed"


# Bumped whenever CallInsights changes shape, so analysts can tell analyses made under another schema apart.
ANALYSIS_SCHEMA_VERSION = 1


class CallInsights(BaseModel):
    """What the text model is asked for (its JSON schema is the structured output's): one call, read after the fact."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    summary: str = Field(description="two sentences: what the caller wanted, and how the call ended")
    intent: str = Field(description="the caller's main intent in a few words, e.g. 'book a table'")
    resolution: Resolution = Field(
        description="resolved: the agent did what was asked; transferred: handed to a person; "
        "follow_up_needed: someone must get back to the caller"
    )
    sentiment: float = Field(
        ge=-1, le=1, description="the caller's sentiment: -1 very negative, 0 neutral, 1 very positive"
    )
    lead_score: int = Field(
        ge=0, le=100, description="0-100: how likely this caller becomes or stays a paying customer"
    )
    lead_reason: str = Field(description="one sentence: why that lead score")
    action_items: list[str] = Field(description="what the business should do next; empty when nothing")


class CallAnalysis(CallInsights):
    """The insights with where they came from: stored on the call record and under `analysis/` in S3."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    model: str = Field(description="the text model that made the analysis")
    schema_version: int = ANALYSIS_SCHEMA_VERSION
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Field(default=Decimal(0), ge=0, description="added to the call's estimated_cost_usd")
    analyzed_at: datetime = Field(default_factory=utc_now)


CallRecord.model_rebuild()
