"""The caller directory on moto: keyed like the analysts' hash, atomic counts, TTL, never the raw number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcore.masking import caller_hash
from callcore.models import CallOutcome, CallRecord
from callcore.store import TTL_ATTRIBUTE, CallStore
from callcore.store.callers import CallerDirectory, caller_pk
from callcore.transcripts import CallSummaryLine

KEY = b"k" * 32
NUMBER = "+15551230001"
AT = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture
def directory(store: CallStore) -> CallerDirectory:
    return CallerDirectory(store.table_name, hash_key=KEY, client=store.client, retention_days=30)


def raw_items(store: CallStore) -> list[dict[str, Any]]:
    return store.client.scan(TableName=store.table_name)["Items"]


def test_the_key_is_the_hash_analysts_count_callers_by() -> None:
    record = CallRecord(call_sid="CA" + "0" * 32, from_number=NUMBER, to_number="+15559870002")
    assert caller_hash(KEY, NUMBER) == CallSummaryLine.from_record(record, hash_key=KEY).caller_hash
    assert caller_pk(KEY, NUMBER) == f"CALLER#{caller_hash(KEY, NUMBER)}"
    assert caller_hash(b"x" * 32, NUMBER) != caller_hash(KEY, NUMBER)


def test_first_time_caller_has_no_profile(directory: CallerDirectory) -> None:
    assert directory.get(NUMBER) is None


def test_calls_are_counted_and_the_profile_read_back(directory: CallerDirectory, store: CallStore) -> None:
    directory.record_call(NUMBER, at=AT, outcome=CallOutcome.COMPLETED_BY_AGENT, booking_name="  Ada   Lovelace ")
    later = AT + timedelta(days=2)
    directory.record_call(NUMBER, at=later, outcome=CallOutcome.CALLER_HUNG_UP)
    profile = directory.get(NUMBER)
    assert profile is not None
    assert profile.call_count == 2
    assert profile.first_call_at == AT
    assert profile.last_call_at == later
    assert profile.last_outcome == "caller_hung_up"
    assert profile.booking_name == "Ada Lovelace"  # kept from the last call that booked
    [item] = raw_items(store)
    assert item["pk"]["S"] == caller_pk(KEY, NUMBER)
    assert item["sk"]["S"] == "PROFILE"
    assert int(item[TTL_ATTRIBUTE]["N"]) == int((later + timedelta(days=30)).timestamp())
    assert "5551230001" not in str(item)  # never the raw number


def test_an_older_call_finishing_late_counts_but_does_not_move_last_call_back(directory: CallerDirectory) -> None:
    later = AT + timedelta(hours=1)
    directory.record_call(NUMBER, at=later, outcome=CallOutcome.TRANSFERRED)
    directory.record_call(NUMBER, at=AT, outcome=CallOutcome.ERROR, booking_name="Old Name")
    profile = directory.get(NUMBER)
    assert profile is not None
    assert profile.call_count == 2
    assert profile.first_call_at == AT
    assert profile.last_call_at == later
    assert profile.last_outcome == "transferred"
    assert profile.booking_name is None


def test_concurrent_calls_from_one_number_lose_no_count(directory: CallerDirectory) -> None:
    """Two calls from one number overlap: both read the profile before either ends. A read-modify-write would count
    one call; the atomic ADD counts both, and a third one finishing out of order still counts."""
    directory.record_call(NUMBER, at=AT, outcome=None)
    first_view, second_view = directory.get(NUMBER), directory.get(NUMBER)
    assert first_view is not None
    assert second_view is not None
    directory.record_call(NUMBER, at=AT + timedelta(minutes=2), outcome=CallOutcome.TRANSFERRED)
    directory.record_call(NUMBER, at=AT + timedelta(minutes=1), outcome=CallOutcome.ERROR)
    profile = directory.get(NUMBER)
    assert profile is not None
    assert profile.call_count == first_view.call_count + 2
    assert profile.last_outcome == "transferred"


@pytest.mark.parametrize("number", ["anonymous", "client:alice", "+1"])
def test_numbers_that_are_not_e164_are_not_tracked(directory: CallerDirectory, store: CallStore, number: str) -> None:
    assert directory.record_call(number, at=AT, outcome=None) is False
    assert directory.get(number) is None
    assert raw_items(store) == []


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CallerDirectory("t", hash_key=b"short")
    with pytest.raises(ValueError, match="retention"):
        CallerDirectory("t", hash_key=KEY, retention_days=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        CallerDirectory("t", hash_key=KEY).record_call(NUMBER, at=datetime(2026, 1, 1), outcome=None)
