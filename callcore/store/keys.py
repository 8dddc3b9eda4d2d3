"""The single table's key schema: attribute names, the key of each kind of item, and the attributes every item
carries besides its model's fields. `infra/` provisions the table from these names; every module of the store builds
its keys here.
"""

from __future__ import annotations

from typing import Final

# The table's and the by-day index's attribute names.
PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
BY_DAY_PARTITION_KEY: Final = "gsi1pk"
BY_DAY_SORT_KEY: Final = "gsi1sk"
BY_DAY_INDEX: Final = "by_day"
TTL_ATTRIBUTE: Final = "expires_at"
ENTITY_ATTRIBUTE: Final = "entity"

RECORD_SK: Final = "RECORD"
TURN_SK_PREFIX: Final = "TURN#"
FLEET_PK: Final = "FLEET"
ACTIVE_CALLS_SK: Final = "ACTIVE_CALLS"
RELAY_HEALTH_SK: Final = "RELAY_HEALTH"
RELAY_HEARTBEAT_SK: Final = "RELAY_HEARTBEAT"
IDEMPOTENCY_SK: Final = "REQUEST"
PROFILE_SK: Final = "PROFILE"
LIVE_CALLS_SK: Final = "LIVE_CALLS"

# Key and bookkeeping attributes: stripped before an item is validated as its model.
KEY_ATTRIBUTES: Final = frozenset(
    {PARTITION_KEY, SORT_KEY, BY_DAY_PARTITION_KEY, BY_DAY_SORT_KEY, TTL_ATTRIBUTE, ENTITY_ATTRIBUTE}
)


def call_pk(call_sid: str) -> str:
    return f"CALL#{call_sid}"


def turn_sk(index: int) -> str:
    return f"{TURN_SK_PREFIX}{index:06d}"


def day_pk(day: str) -> str:
    """The by-day index's partition of a UTC day `YYYY-MM-DD`."""
    return f"DAY#{day}"


def booking_pk(day: str) -> str:
    return f"BOOKING#{day}"


def booking_sk(time: str) -> str:
    return f"SLOT#{time}"


def idempotency_pk(key: str) -> str:
    return f"IDEMPOTENCY#{key}"


def caller_pk_of_hash(hashed_number: str) -> str:
    return f"CALLER#{hashed_number}"
