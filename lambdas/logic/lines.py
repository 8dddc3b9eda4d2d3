"""The business line a call is on, and what the Lambdas apply for it: its human line, its agent seats, its opening
hours and whether it records.

With receptionist profiles deployed (`cdk deploy` published a catalog to the call table), a line is one profile
version: an inbound call gets the profile of the dialled number (`To`), else the line that answers unknown numbers,
else none (the caller hears that the number is not in service); an outbound call names its profile. The call record
keeps `profile_id` / `profile_version`, so everything later done for the call (the TwiML of a retried webhook, a
transfer, the recording) uses the version it started with, even after a redeploy published the next one.

Without a catalog (nothing published: an older deployment, a local run, tests), there is one line, read from the
environment settings (HUMAN_TRANSFER_NUMBER, CALL_RECORDING_ENABLED, no per-line seats or hours): the behaviour
from before profiles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError

from callcore.business_hours import WeeklyHours
from callcore.models import CallRecord
from callcore.profiles.model import AfterHours
from callcore.profiles.published import PublishedProfile
from callcore.store.receptionist_profiles import ProfileNotPublished, ReceptionistProfiles
from lambdas.observability import logger
from lambdas.settings import LambdaSettings


@dataclass(frozen=True)
class Line:
    """One business line as the Lambdas apply it."""

    published: PublishedProfile | None  # None: no profiles are deployed; the environment settings apply
    human_number: str | None
    recording_enabled: bool

    @classmethod
    def of_profile(cls, published: PublishedProfile) -> Line:
        profile = published.profile
        return cls(published, profile.transfer.human_number, profile.recording.enabled)

    @classmethod
    def of_environment(cls, settings: LambdaSettings) -> Line:
        return cls(None, settings.human_transfer_number, settings.call_recording_enabled)

    @property
    def profile_id(self) -> str | None:
        return self.published.profile_id if self.published else None

    @property
    def record_fields(self) -> dict[str, str | None]:
        """What the call record stores of its line."""
        if self.published is None:
            return {"profile_id": None, "profile_version": None}
        return {"profile_id": self.published.profile_id, "profile_version": self.published.version}

    @property
    def max_active(self) -> int | None:
        """The line's own agent seats (the deployment's MAX_CONCURRENT_CALLS applies too); None without profiles."""
        return self.published.profile.limits.max_concurrent_calls if self.published else None

    def after_hours_rule(self, at: datetime) -> AfterHours | None:
        """What the line does with a call arriving at `at`: None while it is open (or without profiles), else its
        `hours.after_hours` rule. Closed outside `hours.weekly` and all day on `hours.holidays`, in its time zone."""
        if self.published is None:
            return None
        profile = self.published.profile
        local = at.astimezone(ZoneInfo(profile.timezone))
        is_open = local.date() not in profile.hours.holidays and _weekly_hours(profile.hours.weekly).is_open(local)
        return None if is_open else profile.hours.after_hours

    @property
    def after_hours_message(self) -> str:
        if self.published is None:
            raise ValueError("a line without a profile has no after-hours message")
        profile = self.published.profile
        return profile.hours.after_hours_message.format(business_name=profile.business_name)

    @property
    def caller_id(self) -> str | None:
        """The number an outbound call of this line is placed from: the profile's first number, if it has one."""
        if self.published is None or not self.published.profile.numbers:
            return None
        return self.published.profile.numbers[0]


@cache
def _weekly_hours(text: str) -> WeeklyHours:
    return WeeklyHours.parse(text)


class UnknownProfile(LookupError):
    """An outbound call named a profile that is not deployed, or named none where one is needed."""


class Lines:
    """The lines of this deployment, read through one `ReceptionistProfiles` (its catalog cache is per instance)."""

    def __init__(self, profiles: ReceptionistProfiles, settings: LambdaSettings) -> None:
        self.profiles = profiles
        self.settings = settings

    def profiles_deployed(self) -> bool:
        return self.profiles.catalog() is not None

    def answering(self, dialled: str) -> Line | None:
        """The line answering a call to `dialled`; None when profiles are deployed and no line answers it."""
        if not self.profiles_deployed():
            return Line.of_environment(self.settings)
        published = self.profiles.for_number(dialled)
        return Line.of_profile(published) if published else None

    def human_of_number(self, number: str | None) -> str | None:
        """The human line of the line answering `number`, for the fallback URL, which must answer even when DynamoDB is
        why the voice URL failed: when the profiles cannot be read, or no line answers the number,
        HUMAN_TRANSFER_NUMBER."""
        line = None
        if number:
            try:
                line = self.answering(number)
            except (BotoCoreError, ClientError, ProfileNotPublished):
                logger.warning("the profiles could not be read: the fallback uses HUMAN_TRANSFER_NUMBER")
        return line.human_number if line is not None else self.settings.human_transfer_number

    def of_record(self, record: CallRecord) -> Line:
        """The line a call started on: the profile version its record names, or the environment's line."""
        if record.profile_id is None or record.profile_version is None:
            return Line.of_environment(self.settings)
        return Line.of_profile(self.profiles.get(record.profile_id, record.profile_version))

    def placing(self, profile_id: str | None) -> Line:
        """The line an outbound call is placed for: the named profile's current version; unnamed, the line that
        answers unknown numbers, if any. Without profiles deployed, only an unnamed call (the environment's line).
        Raises UnknownProfile with a message for the API's caller."""
        catalog = self.profiles.catalog()
        if catalog is None:
            if profile_id is None:
                return Line.of_environment(self.settings)
            raise UnknownProfile(f"no receptionist profiles are deployed, so there is no profile {profile_id!r}")
        if profile_id is None:
            if catalog.fallback is None:
                known = ", ".join(sorted(catalog.versions)) or "none"
                raise UnknownProfile(f"name the profile the call is placed for (deployed: {known})")
            profile_id = catalog.fallback
        try:
            return Line.of_profile(self.profiles.current(profile_id))
        except ProfileNotPublished:
            known = ", ".join(sorted(catalog.versions)) or "none"
            raise UnknownProfile(f"no profile {profile_id!r} is deployed (deployed: {known})") from None


@cache
def receptionist_profiles_of(table_name: str, clock: Callable[[], float]) -> ReceptionistProfiles:
    return ReceptionistProfiles(table_name, clock=clock)


def deployment_lines(settings: LambdaSettings, *, clock: Callable[[], float] = time.monotonic) -> Lines:
    """The lines of CALLS_TABLE, through one `ReceptionistProfiles` per table per Lambda container: its catalog
    cache (CATALOG_CACHE_SECONDS) spares a read per call, and a redeploy still reaches new calls within that time."""
    return Lines(receptionist_profiles_of(settings.calls_table, clock), settings)
