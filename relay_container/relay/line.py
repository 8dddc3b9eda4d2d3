"""The business line a call is on: everything about a call that a receptionist profile decides.

A call whose record names a profile (`CallRecord.profile_id` / `profile_version`, stored by the TwiML Lambda) gets
that exact version's settings, read at admission and kept for the whole call, so a redeploy mid-call changes nothing
the caller hears. A call without one (no profile was ever published: old deployments, tests, local runs without
profiles) gets the line described by the relay's environment settings, exactly as before profiles existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from callcore.business_hours import WeeklyHours
from callcore.profiles.model import TOOL_NAMES, Booking, TurnTaking
from callcore.profiles.published import PublishedProfile
from relay.settings import RelaySettings

ENVIRONMENT_LINE = ""  # the cache key's profile part for a call on the environment's line


@cache
def _read_template(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class BusinessApiAccess:
    """Where the line's bookings go, and the Secrets Manager secret sent (as `header`) with every request."""

    base_url: str
    credentials_secret: str | None = None
    header: str = "Authorization"


@dataclass(frozen=True)
class LineSettings:
    profile_id: str | None  # None: the environment's line
    profile_version: str | None
    business_name: str
    timezone: ZoneInfo
    weekly_hours: WeeklyHours
    holidays: frozenset[date]
    language: str
    prompt_template: str
    voice: str
    turn_taking: TurnTaking
    greeting_inbound: str
    greeting_outbound: str
    recording_announcement: str | None  # set when the call is recorded: said before the greeting
    max_call_seconds: float
    silence_timeout_seconds: float
    dtmf_transfer_digit: str | None
    human_transfer_number: str | None
    tools: frozenset[str]
    business_api: BusinessApiAccess | None
    booking: Booking | None  # slot length, party size and caps; None = the environment's line: 30 min, no caps

    @property
    def key(self) -> tuple[str, str]:
        """Which line and version: what per-line caches (tools, greetings) are keyed by."""
        return (self.profile_id or ENVIRONMENT_LINE, self.profile_version or "")

    @property
    def describe(self) -> str:
        return f"profile {self.profile_id} version {self.profile_version}" if self.profile_id else "the default line"

    @classmethod
    def from_environment(cls, settings: RelaySettings) -> LineSettings:
        return cls(
            profile_id=None,
            profile_version=None,
            business_name=settings.business_name,
            timezone=settings.timezone,
            weekly_hours=settings.weekly_hours,
            holidays=frozenset(),
            language="en",
            prompt_template=_read_template(settings.prompt_file),
            voice=settings.openai_voice,
            turn_taking=TurnTaking(
                type=settings.turn_detection,
                threshold=settings.vad_threshold,
                prefix_padding_ms=settings.vad_prefix_padding_ms,
                silence_duration_ms=settings.vad_silence_duration_ms,
                eagerness=settings.vad_eagerness,
            ),
            greeting_inbound=settings.greeting_inbound,
            greeting_outbound=settings.greeting_outbound,
            recording_announcement=settings.recording_announcement if settings.recording_enabled else None,
            max_call_seconds=settings.max_call_seconds,
            silence_timeout_seconds=settings.silence_timeout_seconds,
            dtmf_transfer_digit=settings.dtmf_transfer_digit,
            human_transfer_number=settings.human_transfer_number,
            tools=TOOL_NAMES,
            business_api=BusinessApiAccess(settings.business_api_base) if settings.business_api_base else None,
            booking=None,
        )

    @classmethod
    def from_profile(cls, published: PublishedProfile, settings: RelaySettings) -> LineSettings:
        profile = published.profile
        api = profile.business_api
        return cls(
            profile_id=published.profile_id,
            profile_version=published.version,
            business_name=profile.business_name,
            timezone=ZoneInfo(profile.timezone),
            weekly_hours=WeeklyHours.parse(profile.hours.weekly),
            holidays=frozenset(profile.hours.holidays),
            language=profile.language,
            prompt_template=published.prompt_template or _read_template(settings.prompt_file),
            voice=profile.voice,
            turn_taking=profile.turn_detection,
            greeting_inbound=profile.greeting,
            greeting_outbound=profile.outbound_greeting,
            recording_announcement=profile.recording.announcement if profile.recording.enabled else None,
            max_call_seconds=profile.limits.max_call_seconds,
            silence_timeout_seconds=profile.limits.silence_timeout_seconds,
            dtmf_transfer_digit=profile.transfer.dtmf_digit,
            human_transfer_number=profile.transfer.human_number,
            tools=frozenset(profile.enabled_tools),
            business_api=(
                BusinessApiAccess(str(api.base_url).rstrip("/"), api.credentials_secret, api.header) if api else None
            ),
            booking=profile.booking,
        )
