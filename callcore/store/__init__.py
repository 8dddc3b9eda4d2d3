"""DynamoDB single-table access: one module per kind of item, one `CallStore` that handlers and the relay use.

Key design (one table, `pk`/`sk` strings; names in `callcore.store.keys`):

| item | module | pk | sk | by_day GSI (gsi1pk / gsi1sk) |
| --- | --- | --- | --- | --- |
| call record | `calls` | `CALL#<CallSid>` | `RECORD` | `DAY#<YYYY-MM-DD>` / `<created_at ISO>#<CallSid>` |
| fleet counter (agent seats) | `seats` | `FLEET` | `ACTIVE_CALLS` | - |
| transcript turn | `turns` | `CALL#<CallSid>` | `TURN#<index, 6 digits>` | - |
| booking | `bookings` | `BOOKING#<YYYY-MM-DD>` | `SLOT#<HH:MM>` | - |
| outbound idempotency key | `idempotency` | `IDEMPOTENCY#<key>` | `REQUEST` | - |
| relay health (operator mark) | `fleet` | `FLEET` | `RELAY_HEALTH` | - |
| relay heartbeat (the freshest of any task) | `fleet` | `FLEET` | `RELAY_HEARTBEAT` | - |
| caller profile | `callers` | `CALLER#<keyed hash of the number>` | `PROFILE` | - |
| receptionist profile catalog | `receptionist_profiles` | `RECEPTIONISTS` | `CATALOG` | - |
| receptionist profile version | `receptionist_profiles` | `RECEPTIONIST#<profile id>` | `VERSION#<version>` | - |

Every write that must happen once is a conditional write (`callcore.store.table`), so retried webhooks, duplicated
callbacks and a relay that retries after a timeout never double anything.
"""

from __future__ import annotations

from callcore.store.bookings import Bookings
from callcore.store.calls import CallPage
from callcore.store.errors import CallAlreadyExists, CallNotFound, SlotTaken, StoreError
from callcore.store.fleet import RELAY_HEARTBEAT_INTERVAL, RELAY_HEARTBEAT_MAX_AGE, FleetHealth
from callcore.store.idempotency import IdempotencyClaim, IdempotencyKeys, IdempotencyState
from callcore.store.keys import (
    ACTIVE_CALLS_SK,
    BY_DAY_INDEX,
    BY_DAY_PARTITION_KEY,
    BY_DAY_SORT_KEY,
    FLEET_PK,
    IDEMPOTENCY_SK,
    PARTITION_KEY,
    RECORD_SK,
    RELAY_HEALTH_SK,
    RELAY_HEARTBEAT_SK,
    SORT_KEY,
    TTL_ATTRIBUTE,
    call_pk,
    turn_sk,
)
from callcore.store.seats import SeatResult, Seats
from callcore.store.turns import Turns

__all__ = [
    "ACTIVE_CALLS_SK",
    "BY_DAY_INDEX",
    "BY_DAY_PARTITION_KEY",
    "BY_DAY_SORT_KEY",
    "FLEET_PK",
    "IDEMPOTENCY_SK",
    "PARTITION_KEY",
    "RECORD_SK",
    "RELAY_HEALTH_SK",
    "RELAY_HEARTBEAT_INTERVAL",
    "RELAY_HEARTBEAT_MAX_AGE",
    "RELAY_HEARTBEAT_SK",
    "SORT_KEY",
    "TTL_ATTRIBUTE",
    "CallAlreadyExists",
    "CallNotFound",
    "CallPage",
    "CallStore",
    "IdempotencyClaim",
    "IdempotencyState",
    "SeatResult",
    "SlotTaken",
    "StoreError",
    "call_pk",
    "turn_sk",
]


class CallStore(Seats, Turns, Bookings, IdempotencyKeys, FleetHealth):
    """The data layer: call records and seats, turns, bookings, idempotency keys and the fleet's health, on one table.
    Handlers and the relay never build DynamoDB requests themselves. (Caller profiles need the caller hash key:
    `callcore.store.callers.CallerDirectory`.)"""
