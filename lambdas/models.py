"""Input and output models of the Lambdas' routes, kept apart from the stored `callcore.models.CallRecord`.

Twilio webhooks arrive form-encoded with Twilio's parameter names (the aliases below); the call-control API speaks
JSON with camelCase names. Each model validates exactly what its use case reads; everything else Twilio sends is
ignored. A validation error becomes a 400 naming the parameter (see `lambdas.api.parse_model`).

Every model here is `defer_build`: pydantic builds its validator on first use, so each function (one per route) builds
only the one or two models its route reads, not all of them during its cold start.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field

from callcore.models import CALL_SID_PATTERN, E164_PATTERN, RECORDING_SID_PATTERN, CallStatus
from callcore.profiles.model import PROFILE_ID_PATTERN


def _call_sid(value: str) -> str:
    if not CALL_SID_PATTERN.match(value):
        raise ValueError("must be a Twilio Call SID: CA followed by 32 hex digits")
    return value


def _e164(value: str) -> str:
    if not E164_PATTERN.match(value):
        raise ValueError("must be an E.164 phone number such as +14155550123")
    return value


CallSidParam = Annotated[str, AfterValidator(_call_sid)]
E164Number = Annotated[str, AfterValidator(_e164)]


class _TwilioForm(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class VoiceWebhook(_TwilioForm):
    """The voice URL request Twilio makes when a call arrives (or when an outbound call is answered)."""

    call_sid: CallSidParam = Field(alias="CallSid")
    account_sid: str = Field(alias="AccountSid", pattern=r"^AC[0-9a-fA-F]{32}$")
    from_number: str = Field(alias="From", min_length=1, max_length=256)
    to_number: str = Field(alias="To", min_length=1, max_length=256)
    answered_by: str | None = Field(
        default=None, alias="AnsweredBy", description="answering-machine detection result (outbound calls)"
    )
    stir_verstat: str | None = Field(
        default=None,
        alias="StirVerstat",
        max_length=64,
        description="inbound calls: the carrier's STIR/SHAKEN verdict on the caller's number (TN-Validation-Passed-A "
        "= fully attested); absent when the carrier sent none",
    )

    @property
    def answered_by_machine(self) -> bool:
        # Twilio: human | machine_start | machine_end_beep | machine_end_silence | machine_end_other | fax | unknown.
        answered_by = self.answered_by or ""
        return answered_by.startswith("machine") or answered_by == "fax"


class CallStatusCallback(_TwilioForm):
    call_sid: CallSidParam = Field(alias="CallSid")
    call_status: CallStatus = Field(alias="CallStatus")
    sequence_number: int = Field(alias="SequenceNumber", ge=0)
    call_duration: int | None = Field(default=None, alias="CallDuration", ge=0)
    timestamp: str | None = Field(default=None, alias="Timestamp", description="RFC 2822")


class StreamEvent(StrEnum):
    STARTED = "stream-started"
    STOPPED = "stream-stopped"
    ERROR = "stream-error"


class StreamStatusCallback(_TwilioForm):
    call_sid: CallSidParam = Field(alias="CallSid")
    stream_sid: str = Field(alias="StreamSid", min_length=1, max_length=64)
    stream_event: StreamEvent = Field(alias="StreamEvent")
    stream_error: str | None = Field(default=None, alias="StreamError", max_length=1000)
    timestamp: str | None = Field(default=None, alias="Timestamp", description="ISO 8601")


class RecordingStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"  # the recording holds no audio
    FAILED = "failed"


class RecordingStatusCallback(_TwilioForm):
    """What Twilio posts to the RecordingStatusCallback of a recording started through the REST API."""

    call_sid: CallSidParam = Field(alias="CallSid")
    recording_sid: str = Field(alias="RecordingSid", pattern=RECORDING_SID_PATTERN.pattern)
    recording_status: RecordingStatus = Field(alias="RecordingStatus")
    recording_duration: int | None = Field(default=None, alias="RecordingDuration", ge=0)
    recording_channels: int | None = Field(default=None, alias="RecordingChannels", ge=1, le=2)
    error_code: str | None = Field(default=None, alias="ErrorCode", max_length=16)


class FallbackWebhook(_TwilioForm):
    call_sid: CallSidParam = Field(alias="CallSid")
    from_number: str | None = Field(default=None, alias="From", max_length=256)
    to_number: str | None = Field(default=None, alias="To", max_length=256)
    direction: str | None = Field(default=None, alias="Direction", max_length=32)
    error_code: str | None = Field(default=None, alias="ErrorCode")
    error_url: str | None = Field(default=None, alias="ErrorUrl")

    @property
    def business_number(self) -> str | None:
        """Our number on the call: the dialled one, or for an outbound call the one it was placed from."""
        return self.from_number if (self.direction or "").startswith("outbound") else self.to_number


class WhisperQuery(BaseModel):
    """The whisper URL's own query: which original call the human is about to be connected to."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    call_sid: CallSidParam = Field(alias="callSid")


# ---- call-control API (JSON, camelCase) -------------------------------------------------------------------------


class _JsonRequest(BaseModel):
    # Unknown fields are refused: a misspelt "sumary" must be a 400, not a transfer without a summary.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)


class TransferRequest(_JsonRequest):
    reason: str = Field(min_length=1, max_length=500)
    summary: str = Field(min_length=1, max_length=2000, description="spoken to the human before the caller is bridged")


class HangupRequest(_JsonRequest):
    reason: str = Field(min_length=1, max_length=500)


class OutboundCallRequest(_JsonRequest):
    to: E164Number
    context: str | None = Field(default=None, max_length=2000, description="why the agent is calling")
    profile_id: str | None = Field(
        default=None,
        # camelCase like the rest of this API; the record's own name is accepted too.
        validation_alias=AliasChoices("profileId", "profile_id"),
        pattern=PROFILE_ID_PATTERN,
        description="the receptionist profile (business line) the call is placed for; with profiles deployed and "
        "none named, the line that answers unknown numbers",
    )


class _JsonResponse(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, defer_build=True)

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class TransferResult(_JsonResponse):
    call_sid: str = Field(alias="callSid")
    status: str = "transferred"
    target: str = Field(description="the human line, masked")


class HangupResult(_JsonResponse):
    call_sid: str = Field(alias="callSid")
    status: str = "completed"


class OutboundCallResult(_JsonResponse):
    call_sid: str = Field(alias="callSid")
