"""Agent seats: the live-call counter moves only in a transaction with the call record (admit, seat, release)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from callcore.models import CallOutcome
from callcore.store import CallAlreadyExists, CallNotFound, CallStore, SeatResult
from tests.unit.core.test_store import OTHER_SID, SID, record

THIRD_SID = "CA" + "c" * 32


def test_admit_takes_a_seat_with_the_record_and_refuses_the_last_seat_twice(store: CallStore) -> None:
    assert store.admit_call(record(SID, stream_token_expiry=100), max_active=1) is SeatResult.TAKEN
    assert store.active_calls() == 1
    # Full: nothing is written, neither the record nor the counter.
    assert store.admit_call(record(OTHER_SID, stream_token_expiry=100), max_active=1) is SeatResult.FULL
    assert store.get_call(OTHER_SID) is None
    assert store.active_calls() == 1


def test_a_retried_admission_counts_nothing_and_returns_the_first_record(store: CallStore) -> None:
    first = record(SID, stream_token_expiry=100)
    assert store.admit_call(first, max_active=5) is SeatResult.TAKEN
    with pytest.raises(CallAlreadyExists) as exists:
        store.admit_call(record(SID, stream_token_expiry=200), max_active=5)
    assert exists.value.existing.stream_token_expiry == 100
    assert store.active_calls() == 1
    # Even when the fleet is full meanwhile, the retry is recognised as a retry (not an overflow).
    with pytest.raises(CallAlreadyExists):
        store.admit_call(record(SID, stream_token_expiry=200), max_active=1)


def test_a_failed_transaction_writes_neither_record_nor_seat(store: CallStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # The drift the transaction prevents: a record without its seat after the increment failed.
    def throttled(**kwargs: object) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")

    with monkeypatch.context() as patched:
        patched.setattr(store.client, "transact_write_items", throttled)
        with pytest.raises(ClientError):
            store.admit_call(record(SID, stream_token_expiry=100), max_active=5)
    assert store.get_call(SID) is None
    assert store.active_calls() == 0
    assert (
        store.admit_call(record(SID, stream_token_expiry=100), max_active=5) is SeatResult.TAKEN
    )  # the retry counts it
    assert store.active_calls() == 1


def test_a_transaction_conflict_is_retried(store: CallStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.client.transact_write_items
    calls: list[int] = []

    def conflict_once(**kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.client, "transact_write_items", conflict_once)
    monkeypatch.setattr("callcore.store.table.time.sleep", lambda seconds: None)
    assert store.admit_call(record(SID, stream_token_expiry=100), max_active=5) is SeatResult.TAKEN
    assert len(calls) == 2
    assert store.active_calls() == 1


def test_seat_call_admits_an_undecided_record_once(store: CallStore) -> None:
    store.create_call(record(SID))
    store.create_call(record(OTHER_SID))
    store.create_call(record(THIRD_SID, outcome=CallOutcome.VOICEMAIL))
    assert store.seat_call(SID, stream_token_expiry=100, max_active=2) is SeatResult.TAKEN
    assert store.seat_call(SID, stream_token_expiry=200, max_active=2) is SeatResult.ALREADY_DECIDED
    assert store.require_call(SID).stream_token_expiry == 100
    assert store.seat_call(THIRD_SID, stream_token_expiry=100, max_active=2) is SeatResult.ALREADY_DECIDED
    assert store.active_calls() == 1
    assert store.seat_call(OTHER_SID, stream_token_expiry=100, max_active=1) is SeatResult.FULL
    assert store.require_call(OTHER_SID).stream_token_expiry is None
    with pytest.raises(CallNotFound):
        store.seat_call("CA" + "d" * 32, stream_token_expiry=100, max_active=2)


def test_a_seat_is_released_once_and_only_by_a_call_that_took_one(store: CallStore) -> None:
    at = datetime(2026, 11, 22, tzinfo=UTC)
    assert store.admit_call(record(SID, stream_token_expiry=100), max_active=5) is SeatResult.TAKEN
    assert store.admit_call(record(OTHER_SID, stream_token_expiry=100), max_active=5) is SeatResult.TAKEN
    store.create_call(record(THIRD_SID, outcome=CallOutcome.OVERFLOW_TO_HUMAN))
    assert store.release_seat(SID, at=at)
    assert not store.release_seat(SID)
    assert not store.release_seat(THIRD_SID)  # an overflow call never had a seat
    assert store.require_call(SID).seat_released_at == at
    assert store.active_calls() == 1


def test_release_never_drives_the_counter_below_zero(store: CallStore) -> None:
    store.create_call(record(SID, stream_token_expiry=100))  # a seat taken before seats were tracked
    assert store.release_seat(SID)
    assert store.active_calls() == 0
    assert store.admit_call(record(OTHER_SID, stream_token_expiry=100), max_active=1) is SeatResult.TAKEN


def test_a_full_line_refuses_its_call_without_writing_while_the_fleet_has_seats(store: CallStore) -> None:
    bistro = {"profile_id": "bistro", "profile_version": "v1"}
    assert store.admit_call(record(SID, stream_token_expiry=100, **bistro), max_active=5, max_line_active=1) is (
        SeatResult.TAKEN
    )
    refused = store.admit_call(record(OTHER_SID, stream_token_expiry=100, **bistro), max_active=5, max_line_active=1)
    other_line = record(THIRD_SID, stream_token_expiry=100, profile_id="clinic", profile_version="v1")

    assert refused is SeatResult.LINE_FULL
    assert store.get_call(OTHER_SID) is None
    assert store.admit_call(other_line, max_active=5, max_line_active=1) is SeatResult.TAKEN
    assert (store.active_calls(), store.active_calls("bistro"), store.active_calls("clinic")) == (2, 1, 1)
    with pytest.raises(ValueError, match="max_line_active"):
        store.admit_call(record("CA" + "d" * 32, stream_token_expiry=100, **bistro), max_active=5)


def test_seat_call_takes_the_seat_of_the_line_its_record_names(store: CallStore) -> None:
    store.create_call(record(SID, profile_id="bistro", profile_version="v1"))
    store.create_call(record(OTHER_SID, profile_id="bistro", profile_version="v1"))
    store.create_call(record(THIRD_SID, profile_id="clinic", profile_version="v1"))

    assert store.seat_call(SID, stream_token_expiry=100, max_active=5, profile_id="bistro", max_line_active=1) is (
        SeatResult.TAKEN
    )
    full = store.seat_call(OTHER_SID, stream_token_expiry=100, max_active=5, profile_id="bistro", max_line_active=1)
    # The record names another line: the seat is not taken (its release would give back the wrong line's seat).
    mismatch = store.seat_call(THIRD_SID, stream_token_expiry=100, max_active=5, profile_id="bistro", max_line_active=9)

    assert (full, mismatch) == (SeatResult.LINE_FULL, SeatResult.ALREADY_DECIDED)
    assert store.require_call(OTHER_SID).stream_token_expiry is None
    assert (store.active_calls(), store.active_calls("bistro"), store.active_calls("clinic")) == (1, 1, 0)
    assert store.release_seat(SID)
    assert not store.release_seat(SID)
    assert (store.active_calls(), store.active_calls("bistro")) == (0, 0)


def test_mark_finished_keeps_the_first_time(store: CallStore) -> None:
    store.create_call(record(SID))
    first = datetime(2026, 11, 22, tzinfo=UTC)
    assert store.mark_finished(SID, at=first).finished_at == first
    assert store.mark_finished(SID).finished_at == first
