"""A receptionist profile: one business line, as a team writes it in `profiles/<id>.toml`.

One pydantic model validates every profile; unknown keys are refused at every level, so a typo (`greting`) fails
instead of silently falling back to a default. The relay's own settings keep their environment names for a relay run
without profiles; a profile's values win for the calls of its numbers.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, model_validator

from callcore.business_hours import WeeklyHours
from callcore.models import E164_PATTERN

PhoneNumber = Annotated[str, StringConstraints(pattern=E164_PATTERN.pattern)]
PROFILE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"  # the file name: it becomes part of table keys and log fields
# The tools the relay offers; a profile enables a subset.
TOOL_NAMES = frozenset(
    {"get_business_hours", "check_availability", "book_appointment", "transfer_to_human", "end_call"}
)


class TurnDetection(StrEnum):
    SERVER_VAD = "server_vad"
    SEMANTIC_VAD = "semantic_vad"


class VadEagerness(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    AUTO = "auto"


class AfterHours(StrEnum):
    AGENT = "agent"  # the agent answers and says when the business opens
    TRANSFER = "transfer"  # straight to the human line
    MESSAGE = "message"  # the after-hours message is said, then the call ends


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/New_York)") from exc
    return name


def _weekly_hours(text: str) -> str:
    WeeklyHours.parse(text)  # raises ValueError naming the rule it cannot read
    return text


def _tools(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - TOOL_NAMES)
    if unknown:
        raise ValueError(f"unknown tool(s) {', '.join(unknown)} (known: {', '.join(sorted(TOOL_NAMES))})")
    if len(set(names)) != len(names):
        raise ValueError("a tool is listed twice")
    return names


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hours(_Section):
    weekly: Annotated[str, AfterValidator(_weekly_hours)] = Field(
        default="mon-fri 09:00-17:00",
        description='opening hours, local time, e.g. "mon-fri 09:00-17:00; sat 10:00-14:00"',
    )
    holidays: list[date] = Field(default_factory=list, description="days the business is closed all day")
    after_hours: AfterHours = Field(default=AfterHours.AGENT, description="agent | transfer | message")
    after_hours_message: str = Field(
        default="{business_name} is closed now. Please call again during our opening hours. Goodbye.",
        min_length=1,
        max_length=500,
        description="said before hanging up when after_hours = message",
    )


class Recording(_Section):
    enabled: bool = Field(default=False, description="record the call; the greeting announces it")
    announcement: str = Field(default="This call may be recorded.", min_length=1, max_length=300)


class TurnTaking(_Section):
    type: TurnDetection = TurnDetection.SERVER_VAD
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="server_vad: speech probability threshold")
    prefix_padding_ms: int = Field(default=300, ge=0, le=2000)
    silence_duration_ms: int = Field(default=500, ge=100, le=5000, description="server_vad: silence ending a turn")
    eagerness: VadEagerness = Field(default=VadEagerness.AUTO, description="semantic_vad: low|medium|high|auto")


class Transfer(_Section):
    human_number: PhoneNumber | None = Field(default=None, description="E.164 human line; unset = no transfers")
    dtmf_digit: Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")] | None = Field(
        default=None, description="keypad key that transfers at once"
    )


class BusinessApi(_Section):
    base_url: HttpUrl = Field(description="the business's booking API")
    credentials_secret: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")] | None = Field(
        default=None, description="Secrets Manager secret name whose value is sent in `header`"
    )
    header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")] = Field(
        default="Authorization", description="HTTP header carrying the secret's value"
    )


class Booking(_Section):
    slot_minutes: int = Field(default=30, ge=5, le=480)
    max_party_size: int = Field(default=8, ge=1, le=500)
    max_bookings_per_call: int = Field(default=2, ge=0, le=20)
    max_bookings_per_caller_per_day: int = Field(default=3, ge=0, le=50)


class Limits(_Section):
    max_concurrent_calls: int = Field(default=10, ge=1, le=1000, description="agent seats for this line")
    max_call_seconds: int = Field(default=1800, ge=60, le=14400)
    silence_timeout_seconds: int = Field(default=20, ge=1, le=600)


class Profile(_Section):
    """What `profiles/<id>.toml` holds. The id is the file name; `prompt_file` is resolved beside the file."""

    business_name: str = Field(min_length=1, max_length=100)
    numbers: list[PhoneNumber] = Field(description="Twilio numbers (E.164) this line answers; empty = outbound only")
    timezone: Annotated[str, AfterValidator(_time_zone)]
    greeting: str = Field(min_length=1, max_length=500, description="first words of an inbound call")
    outbound_greeting: str = Field(
        default="Hello, this is the virtual assistant calling from {business_name}. Do you have a moment?",
        min_length=1,
        max_length=500,
    )
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = Field(
        default="en", description="BCP 47 language the agent speaks, e.g. en or en-GB"
    )
    voice: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,20}$")] = Field(default="marin")
    prompt_file: Path | None = Field(default=None, description="system prompt template beside the profile")
    tools: Annotated[list[str], AfterValidator(_tools)] | None = Field(
        default=None, description="tools the agent may use; unset = every tool the line can use"
    )
    hours: Hours = Field(default_factory=Hours)
    recording: Recording = Field(default_factory=Recording)
    turn_detection: TurnTaking = Field(default_factory=TurnTaking)
    transfer: Transfer = Field(default_factory=Transfer)
    business_api: BusinessApi | None = None
    booking: Booking = Field(default_factory=Booking)
    limits: Limits = Field(default_factory=Limits)
    answers_unknown_numbers: bool = Field(
        default=False,
        description="this line also answers calls to numbers no profile lists (at most one profile); with none, "
        "such a call hears a short not-in-service message",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if len(set(self.numbers)) != len(self.numbers):
            raise ValueError("numbers: a number is listed twice")
        for text in (self.greeting, self.outbound_greeting, self.hours.after_hours_message):
            _check_placeholders(text)
        needs_human = self.hours.after_hours is AfterHours.TRANSFER or self.transfer.dtmf_digit
        if needs_human and self.transfer.human_number is None:
            raise ValueError("transfer.human_number is required by hours.after_hours = transfer or transfer.dtmf_digit")
        if self.tools is not None and "transfer_to_human" in self.tools and self.transfer.human_number is None:
            raise ValueError("tools: transfer_to_human needs transfer.human_number")
        return self

    @property
    def enabled_tools(self) -> list[str]:
        """The tools listed, or every tool the line can use (a transfer needs a human line)."""
        if self.tools is not None:
            return self.tools
        return sorted(name for name in TOOL_NAMES if name != "transfer_to_human" or self.transfer.human_number)


def _check_placeholders(text: str) -> None:
    try:
        text.format(business_name="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{text!r}: the only placeholder is {{business_name}}") from exc
