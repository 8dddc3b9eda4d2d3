"""Every kind of item that holds personal data is written with the table's TTL, from its own retention; the fleet's
own state (no personal data) is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcore.models import Booking, CallOutcome, CallStatus
from callcore.store import TTL_ATTRIBUTE, CallStore
from callcore.store.callers import CallerDirectory, caller_pk
from callcore.store.keys import IDEMPOTENCY_SK, idempotency_pk
from callcore.store.retention import LIVE_CALLS_TTL, Retention
from callcore.store.seats import COUNTER_KEY, SeatResult, live_calls_key
from tests.unit.core.test_store import SID, T0, record, turn

RETENTION = Retention(call_record_days=400, turn_days=7, booking_days=30)
KEY = b"k" * 32


@pytest.fixture
def kept(store: CallStore) -> CallStore:
    return CallStore(store.table_name, client=store.client, retention=RETENTION)


def ttl_of(store: CallStore, key: dict[str, Any]) -> int | None:
    item = store.client.get_item(TableName=store.table_name, Key=key)["Item"]
    return int(item[TTL_ATTRIBUTE]["N"]) if TTL_ATTRIBUTE in item else None


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def test_a_call_record_expires_its_retention_after_the_call_started(kept: CallStore) -> None:
    kept.create_call(record())
    key = {"pk": {"S": f"CALL#{SID}"}, "sk": {"S": "RECORD"}}
    assert ttl_of(kept, key) == epoch(T0 + timedelta(days=400))


def test_an_admitted_call_record_carries_the_same_ttl(kept: CallStore) -> None:
    assert kept.admit_call(record(stream_token_expiry=1), max_active=5) is SeatResult.TAKEN
    assert ttl_of(kept, {"pk": {"S": f"CALL#{SID}"}, "sk": {"S": "RECORD"}}) == epoch(T0 + timedelta(days=400))


def test_a_turn_expires_from_the_moment_it_is_written_not_only_once_archived(kept: CallStore) -> None:
    kept.create_call(record())
    kept.put_turn(turn(2))
    key = {"pk": {"S": f"CALL#{SID}"}, "sk": {"S": "TURN#000002"}}
    assert ttl_of(kept, key) == epoch(turn(2).ended_at + timedelta(days=7))


def test_a_booking_expires_its_retention_after_the_booked_day(kept: CallStore) -> None:
    kept.create_booking(Booking(booking_id="b1", day="2026-12-01", time="10:30", name="Ada", call_sid=SID))
    key = {"pk": {"S": "BOOKING#2026-12-01"}, "sk": {"S": "SLOT#10:30"}}
    assert ttl_of(kept, key) == epoch(datetime(2026, 12, 1, tzinfo=UTC) + timedelta(days=30))


def test_a_caller_profile_expires_after_the_last_call(store: CallStore) -> None:
    directory = CallerDirectory(store.table_name, hash_key=KEY, client=store.client, retention_days=90)
    directory.record_call("+14155550100", at=T0, outcome=CallOutcome.CALLER_HUNG_UP)
    key = {"pk": {"S": caller_pk(KEY, "+14155550100")}, "sk": {"S": "PROFILE"}}
    assert ttl_of(store, key) == epoch(T0 + timedelta(days=90))


def test_an_idempotency_key_expires(store: CallStore) -> None:
    store.claim_idempotency_key("key-1", request_hash="h", ttl=timedelta(hours=24), now=T0)
    key = {"pk": {"S": idempotency_pk("key-1")}, "sk": {"S": IDEMPOTENCY_SK}}
    assert ttl_of(store, key) == epoch(T0 + timedelta(hours=24))


def test_a_callers_live_calls_expire_and_the_fleet_counter_does_not(kept: CallStore) -> None:
    before = datetime.now(UTC)
    assert kept.admit_call(record(caller_slot="abc", stream_token_expiry=1), max_active=5, max_caller_live=2) is (
        SeatResult.TAKEN
    )
    ttl = ttl_of(kept, live_calls_key("abc"))
    assert ttl is not None
    assert epoch(before + LIVE_CALLS_TTL) <= ttl <= epoch(datetime.now(UTC) + LIVE_CALLS_TTL)
    assert ttl_of(kept, COUNTER_KEY) is None  # capacity state, no personal data


def test_retention_is_at_least_a_day() -> None:
    with pytest.raises(ValueError, match="turn_days"):
        Retention(turn_days=0)


def test_the_stream_start_is_the_answer_time_of_an_inbound_call(store: CallStore) -> None:
    store.create_call(record())
    started = T0 + timedelta(seconds=2)
    assert store.claim_stream(SID, "MZ1", at=started)
    assert store.require_call(SID).answered_at == started
    # Twilio's final callback is the first status it sends for an inbound call: it keeps that answer time.
    assert store.apply_status(SID, CallStatus.COMPLETED, 0, at=T0 + timedelta(minutes=3))
    assert store.require_call(SID).answered_at == started


def test_a_status_learnt_from_twilio_never_overrides_one_a_callback_brought(store: CallStore) -> None:
    store.create_call(record())
    assert store.settle_status(SID, CallStatus.COMPLETED, ended_at=T0 + timedelta(minutes=1), duration_seconds=60)
    assert not store.settle_status(SID, CallStatus.CANCELED, ended_at=T0, duration_seconds=None)
    settled = store.require_call(SID)
    assert (settled.status, settled.duration_seconds) == (CallStatus.COMPLETED, 60)
    with pytest.raises(ValueError, match="not a terminal"):
        store.settle_status(SID, CallStatus.IN_PROGRESS, ended_at=T0, duration_seconds=None)
