"""Receptionist profiles for the Lambda tests: two business lines on their own numbers, published to the table as
`cdk deploy` publishes them."""

from __future__ import annotations

from typing import Any

from callcore.profiles.model import Profile
from callcore.profiles.published import PublishedProfile
from callcore.store.receptionist_profiles import ReceptionistProfiles
from tests.unit.lambdas.events import AGENT_NUMBER, TABLE

CLINIC_NUMBER = "+15005550002"
UNLISTED_NUMBER = "+15005550003"
BISTRO_HUMAN = "+15005550101"
CLINIC_HUMAN = "+15005550102"


def profile(**fields: Any) -> Profile:
    data: dict[str, Any] = {
        "business_name": "Harbor Bistro",
        "numbers": [AGENT_NUMBER],
        "timezone": "America/New_York",
        "greeting": "Thanks for calling {business_name}.",
        "hours": {"weekly": "mon-sun 00:00-24:00"},
        "transfer": {"human_number": BISTRO_HUMAN},
        "limits": {"max_concurrent_calls": 1},
    }
    data.update(fields)
    return Profile.model_validate(data)


def bistro(**fields: Any) -> PublishedProfile:
    """Open round the clock, one agent seat, its own human line."""
    return PublishedProfile.of("bistro", profile(**fields), None)


def clinic(**fields: Any) -> PublishedProfile:
    """Open weekdays 9-17 in New York, after hours straight to its human line, two agent seats."""
    defaults: dict[str, Any] = {
        "business_name": "Dental Clinic",
        "numbers": [CLINIC_NUMBER],
        "hours": {"weekly": "mon-fri 09:00-17:00", "holidays": ["2026-12-24"], "after_hours": "transfer"},
        "transfer": {"human_number": CLINIC_HUMAN},
        "limits": {"max_concurrent_calls": 2},
    }
    return PublishedProfile.of("clinic", profile(**{**defaults, **fields}), None)


def publish(*profiles: PublishedProfile) -> None:
    ReceptionistProfiles(TABLE).publish(profiles)
