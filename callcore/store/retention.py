"""How long each kind of item stays in the table: every item that holds personal data is written with the table's TTL
attribute (`expires_at`, epoch seconds), and DynamoDB deletes it (within days) once that time has passed.

The defaults here are the documented ones (infra/DEPLOY.md); a deployment sets its own through the CDK context, which
reaches the Lambdas and the relay as the `*_RETENTION_DAYS` settings (`callcore.settings.StorageSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_CALL_RECORD_DAYS = 365
DEFAULT_TURN_DAYS = 30
DEFAULT_BOOKING_DAYS = 90
# A per-caller live-call count outlives the longest call by far; it expires once its caller stops calling.
LIVE_CALLS_TTL = timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    call_record_days: int = DEFAULT_CALL_RECORD_DAYS  # from the call's start
    turn_days: int = DEFAULT_TURN_DAYS  # from the turn (the transcript in S3 is the lasting copy)
    booking_days: int = DEFAULT_BOOKING_DAYS  # from the booked day

    def __post_init__(self) -> None:
        for name in ("call_record_days", "turn_days", "booking_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def expires_at(start: datetime, keep: timedelta) -> int:
    """The TTL attribute's value: epoch seconds of `start + keep`."""
    return int((start + keep).timestamp())
