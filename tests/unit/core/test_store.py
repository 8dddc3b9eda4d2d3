from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from callcore.models import (
    Booking,
    CallDirection,
    CallLatencies,
    CallOutcome,
    CallRecord,
    CallStatus,
    TokenUsage,
    ToolCall,
    TranscriptTurn,
    TurnRole,
)
from callcore.store import (
    RELAY_HEARTBEAT_MAX_AGE,
    TTL_ATTRIBUTE,
    CallAlreadyExists,
    CallNotFound,
    CallStore,
    SlotTaken,
    call_pk,
    turn_sk,
)

SID = "CA" + "a" * 32
OTHER_SID = "CA" + "b" * 32
T0 = datetime(2026, 11, 21, 23, 59, 30, tzinfo=UTC)


def record(sid: str = SID, **overrides: object) -> CallRecord:
    data: dict[str, object] = {
        "call_sid": sid,
        "from_number": "+14155550100",
        "to_number": "+14155550199",
        "created_at": T0,
    }
    data.update(overrides)
    return CallRecord.model_validate(data)


def turn(index: int, text: str = "hello", sid: str = SID) -> TranscriptTurn:
    return TranscriptTurn(
        call_sid=sid,
        index=index,
        role=TurnRole.CALLER,
        text=text,
        started_at=T0 + timedelta(seconds=index),
        ended_at=T0 + timedelta(seconds=index + 1),
    )


def test_create_then_read_round_trips_every_field(store: CallStore) -> None:
    original = record(
        direction=CallDirection.OUTBOUND,
        latencies=CallLatencies(greeting_ms=80, turn_ms=[400, 520]),
        usage=TokenUsage(input_audio_tokens=1200, output_audio_tokens=900),
        estimated_cost_usd=Decimal("0.123456"),
        stream_token_expiry=1_800_000_000,
    )
    store.create_call(original)
    assert store.get_call(SID) == original


def test_second_create_of_the_same_call_is_refused_with_the_first_record(store: CallStore) -> None:
    store.create_call(record(to_number="+14155550111"))
    with pytest.raises(CallAlreadyExists) as refused:
        store.create_call(record(to_number="+14155550222"))
    assert refused.value.existing.to_number == "+14155550111"
    assert store.require_call(SID).to_number == "+14155550111"


def test_unknown_call(store: CallStore) -> None:
    assert store.get_call(SID) is None
    with pytest.raises(CallNotFound):
        store.require_call(SID)
    with pytest.raises(CallNotFound):
        store.apply_status(SID, CallStatus.IN_PROGRESS, 1)
    with pytest.raises(CallNotFound):
        store.update_call(SID, {"turn_count": 3})
    with pytest.raises(CallNotFound):
        store.claim_stream(SID, "MZ1")


def test_status_updates_apply_only_in_sequence_order(store: CallStore) -> None:
    store.create_call(record())
    answered = T0 + timedelta(seconds=5)
    ended = T0 + timedelta(seconds=65)
    assert store.apply_status(SID, CallStatus.IN_PROGRESS, 1, at=answered)
    assert store.apply_status(SID, CallStatus.COMPLETED, 3, at=ended, duration_seconds=60)
    # A late "ringing" (sequence 0) and a late in-progress (2) arrive after completion: nothing changes.
    assert not store.apply_status(SID, CallStatus.RINGING, 0)
    assert not store.apply_status(SID, CallStatus.IN_PROGRESS, 2)
    # A duplicate of the last one changes nothing either.
    assert not store.apply_status(SID, CallStatus.COMPLETED, 3, at=ended + timedelta(seconds=9))
    stored = store.require_call(SID)
    assert stored.status is CallStatus.COMPLETED
    assert stored.status_sequence == 3
    assert stored.answered_at == answered
    assert stored.ended_at == ended
    assert stored.duration_seconds == 60


def test_answered_at_is_kept_from_the_first_in_progress(store: CallStore) -> None:
    store.create_call(record())
    first = T0 + timedelta(seconds=1)
    assert store.apply_status(SID, CallStatus.IN_PROGRESS, 1, at=first)
    assert store.apply_status(SID, CallStatus.IN_PROGRESS, 2, at=first + timedelta(seconds=9))
    assert store.require_call(SID).answered_at == first


def test_stream_is_claimed_once(store: CallStore) -> None:
    store.create_call(record())
    assert store.claim_stream(SID, "MZ" + "1" * 32)
    assert not store.claim_stream(SID, "MZ" + "2" * 32)
    assert store.require_call(SID).stream_sid == "MZ" + "1" * 32


def test_update_call_validates_fields_and_keeps_values_named_only_if_unset(store: CallStore) -> None:
    store.create_call(record())
    updated = store.update_call(
        SID, {"outcome": "transferred", "transfer_target": "+14155550155"}, only_if_unset=("outcome",)
    )
    assert updated.outcome is CallOutcome.TRANSFERRED
    again = store.update_call(SID, {"outcome": CallOutcome.CALLER_HUNG_UP, "turn_count": 4}, only_if_unset=("outcome",))
    assert again.outcome is CallOutcome.TRANSFERRED
    assert again.turn_count == 4
    with pytest.raises(ValueError, match="not call record fields"):
        store.update_call(SID, {"no_such_field": 1})
    with pytest.raises(ValueError, match="outcome"):
        store.update_call(SID, {"outcome": "exploded"})
    # None removes an optional attribute.
    assert store.update_call(SID, {"transfer_target": None}).transfer_target is None


def test_update_call_stores_nested_models(store: CallStore) -> None:
    store.create_call(record())
    latencies = CallLatencies(greeting_ms=90, turn_ms=[300, 450, 700], tool_ms=[120])
    usage = TokenUsage(input_audio_tokens=10, output_audio_tokens=20, input_cached_tokens=5)
    stored = store.update_call(SID, {"latencies": latencies, "usage": usage, "estimated_cost_usd": Decimal("0.5")})
    assert stored.latencies == latencies
    assert stored.usage == usage
    assert stored.estimated_cost_usd == Decimal("0.5")


def test_turns_are_idempotent_on_their_index_and_listed_in_order(store: CallStore) -> None:
    store.create_call(record())
    assert store.put_turn(turn(1, "second"))
    assert store.put_turn(turn(0, "first"))
    assert not store.put_turn(turn(0, "a retried write"))
    tool = ToolCall(call_id="call_1", name="get_business_hours", arguments="{}", result='{"open":true}')
    agent = TranscriptTurn(
        call_sid=SID,
        index=2,
        role=TurnRole.AGENT,
        text="We are open",
        started_at=T0,
        ended_at=T0,
        interrupted=True,
        heard_ms=640,
        tool_calls=[tool],
        item_id="item_1",
    )
    assert store.put_turn(agent)
    turns = store.list_turns(SID)
    assert [t.text for t in turns] == ["first", "second", "We are open"]
    assert turns[2] == agent
    # Another call's turns are not mixed in, and the record item is not a turn.
    store.create_call(record(OTHER_SID))
    store.put_turn(turn(0, "other", sid=OTHER_SID))
    assert [t.text for t in store.list_turns(SID)] == ["first", "second", "We are open"]


def test_turns_get_a_ttl_once_expired(store: CallStore) -> None:
    store.create_call(record())
    for i in range(3):
        store.put_turn(turn(i))
    expires = T0 + timedelta(days=30)
    assert store.expire_turns(SID, expires) == 3
    item = store.client.get_item(TableName=store.table_name, Key={"pk": {"S": call_pk(SID)}, "sk": {"S": turn_sk(1)}})
    assert int(item["Item"][TTL_ATTRIBUTE]["N"]) == int(expires.timestamp())
    # The call record keeps its own, longer retention, counted from the call's start.
    meta = store.client.get_item(TableName=store.table_name, Key={"pk": {"S": call_pk(SID)}, "sk": {"S": "RECORD"}})
    assert int(meta["Item"][TTL_ATTRIBUTE]["N"]) == int((T0 + timedelta(days=365)).timestamp())


def test_calls_listed_by_utc_day_with_pages(store: CallStore) -> None:
    day_one = [record("CA" + f"{i:032x}", created_at=T0 - timedelta(minutes=i)) for i in range(1, 4)]
    next_day = record("CA" + "f" * 32, created_at=T0 + timedelta(minutes=1))  # 00:00:30 on the 22nd
    for r in [*day_one, next_day]:
        store.create_call(r)
    page = store.list_calls_by_day("2026-11-21", limit=2)
    assert len(page.calls) == 2
    assert page.next_token is not None
    rest = store.list_calls_by_day("2026-11-21", limit=2, start=page.next_token)
    listed = [c.call_sid for c in page.calls + rest.calls]
    assert listed == [r.call_sid for r in sorted(day_one, key=lambda r: r.created_at)]
    assert [c.call_sid for c in store.list_calls_by_day("2026-11-22").calls] == [next_day.call_sid]


def test_bookings_refuse_a_taken_slot(store: CallStore) -> None:
    booking = Booking(booking_id="b1", day="2026-12-01", time="10:30", name="Ada", party_size=2, call_sid=SID)
    store.create_booking(booking)
    with pytest.raises(SlotTaken):
        store.create_booking(booking.model_copy(update={"booking_id": "b2", "name": "Grace"}))
    store.create_booking(booking.model_copy(update={"booking_id": "b3", "time": "11:00"}))
    assert [b.time for b in store.list_bookings("2026-12-01")] == ["10:30", "11:00"]
    assert store.list_bookings("2026-12-01")[0].name == "Ada"


def test_active_call_counter_never_goes_below_zero(store: CallStore) -> None:
    assert store.active_calls() == 0
    assert store.adjust_active_calls(1) == 1
    assert store.adjust_active_calls(1) == 2
    assert store.adjust_active_calls(-1) == 1
    assert store.adjust_active_calls(-1) == 0
    assert store.adjust_active_calls(-1) == 0
    assert store.active_calls() == 0
    assert store.adjust_active_calls(1) == 1


def test_relay_health_mark_and_its_expiry(store: CallStore) -> None:
    store.record_heartbeat("task-1", at=T0)
    assert store.relay_is_healthy(now=T0)
    store.set_relay_health(False, reason="alarm", until=T0 + timedelta(minutes=5))
    assert not store.relay_is_healthy(now=T0)
    store.record_heartbeat("task-1", at=T0 + timedelta(minutes=6))
    assert store.relay_is_healthy(now=T0 + timedelta(minutes=6))
    store.set_relay_health(False, reason="operator")
    store.record_heartbeat("task-1", at=T0 + timedelta(days=365))
    assert not store.relay_is_healthy(now=T0 + timedelta(days=365))
    store.set_relay_health(True)
    assert store.relay_is_healthy(now=T0 + timedelta(days=365))


def test_the_relay_is_unhealthy_without_a_recent_heartbeat(store: CallStore) -> None:
    assert not store.relay_is_healthy(now=T0)  # no relay has ever said it is up
    store.record_heartbeat("task-1", at=T0)
    assert store.relay_is_healthy(now=T0 + RELAY_HEARTBEAT_MAX_AGE)
    assert not store.relay_is_healthy(now=T0 + RELAY_HEARTBEAT_MAX_AGE + timedelta(seconds=1))
    # Any task's beat counts; a lagging task's older beat does not move the freshest one back.
    store.record_heartbeat("task-2", at=T0 + timedelta(seconds=40))
    store.record_heartbeat("task-1", at=T0 + timedelta(seconds=5))
    assert store.last_heartbeat() == T0 + timedelta(seconds=40)
    assert store.relay_is_healthy(now=T0 + timedelta(seconds=60))


def test_an_operator_mark_written_by_hand_is_read(store: CallStore) -> None:
    # What DEPLOY.md tells operators to run, as the item `aws dynamodb put-item` writes.
    store.record_heartbeat("task-1", at=T0)
    item: dict[str, Any] = {
        "pk": {"S": "FLEET"},
        "sk": {"S": "RELAY_HEALTH"},
        "healthy": {"BOOL": False},
        "reason": {"S": "model provider outage"},
        "until": {"S": "2026-11-22T00:10:00Z"},
    }
    store.client.put_item(TableName=store.table_name, Item=item)
    assert not store.relay_is_healthy(now=T0)
    assert store.relay_is_healthy(now=datetime(2026, 11, 22, 0, 10, 1, tzinfo=UTC)) is False  # heartbeat too old
    store.record_heartbeat("task-1", at=datetime(2026, 11, 22, 0, 10, 1, tzinfo=UTC))
    assert store.relay_is_healthy(now=datetime(2026, 11, 22, 0, 10, 1, tzinfo=UTC))
    item["until"] = {"S": "2026-11-22T00:20:00"}  # no zone: read as UTC
    store.client.put_item(TableName=store.table_name, Item=item)
    assert not store.relay_is_healthy(now=datetime(2026, 11, 22, 0, 10, 2, tzinfo=UTC))


def test_a_transfer_is_claimed_once_until_released(store: CallStore) -> None:
    store.create_call(record())
    lease = timedelta(seconds=60)
    assert store.claim_transfer(SID, reason="asked for a person", summary="wants to move a booking", lease=lease, at=T0)
    assert not store.claim_transfer(SID, reason="again", summary="again", lease=lease, at=T0 + timedelta(seconds=59))
    claimed = store.require_call(SID)
    assert claimed.transfer_requested_at == T0
    assert claimed.transfer_summary == "wants to move a booking"
    store.release_transfer(SID)
    released = store.require_call(SID)
    assert released.transfer_requested_at is None
    assert (released.transfer_reason, released.transfer_summary, released.transfer_target) == (None, None, None)
    assert store.claim_transfer(SID, reason="retry", summary="retry", lease=lease)
    with pytest.raises(CallNotFound):
        store.claim_transfer(OTHER_SID, reason="x", summary="y", lease=lease)


def test_a_transfer_claim_older_than_its_lease_is_taken_over_but_never_after_success(store: CallStore) -> None:
    store.create_call(record())
    lease = timedelta(seconds=60)
    assert store.claim_transfer(SID, reason="crashed", summary="first", lease=lease, at=T0)
    # Exactly at the lease the holder may still be running; past it, it cannot be.
    assert not store.claim_transfer(SID, reason="r", summary="s", lease=lease, at=T0 + lease)
    later = T0 + lease + timedelta(microseconds=1)
    assert store.claim_transfer(SID, reason="retry", summary="second", lease=lease, at=later)
    assert store.require_call(SID).transfer_summary == "second"
    store.update_call(SID, {"transfer_target": "+14155550142"})
    assert not store.claim_transfer(SID, reason="r", summary="s", lease=lease, at=later + timedelta(hours=1))


def test_caller_and_business_numbers_follow_the_direction() -> None:
    inbound = record()
    assert (inbound.caller_number, inbound.business_number) == ("+14155550100", "+14155550199")
    outbound = record(direction=CallDirection.OUTBOUND, from_number="+14155550199", to_number="+14155550100")
    assert (outbound.caller_number, outbound.business_number) == ("+14155550100", "+14155550199")
