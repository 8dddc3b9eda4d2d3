"""A caller's bookings per line per day on moto: taken atomically up to the cap, given back, expiring after the day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from callcore.store import TTL_ATTRIBUTE, CallStore
from callcore.store.booking_counts import COUNT_KEPT, CallerBookingCounts, bookings_sk

CALLER = "CALLER#abc123"
DAY = date(2026, 12, 4)


@pytest.fixture
def counts(store: CallStore) -> CallerBookingCounts:
    return CallerBookingCounts(store.table_name, client=store.client)


def test_places_are_taken_up_to_the_limit_then_refused(counts: CallerBookingCounts) -> None:
    assert [counts.reserve(CALLER, "bistro", DAY, 2) for _ in range(3)] == [True, True, False]
    assert counts.count(CALLER, "bistro", DAY) == 2


def test_each_line_and_day_counts_on_its_own(counts: CallerBookingCounts) -> None:
    assert counts.reserve(CALLER, "bistro", DAY, 1)
    assert counts.reserve(CALLER, "dental", DAY, 1)
    assert counts.reserve(CALLER, "bistro", date(2026, 12, 5), 1)
    assert not counts.reserve(CALLER, "bistro", DAY, 1)


def test_a_place_given_back_can_be_taken_again(counts: CallerBookingCounts) -> None:
    assert counts.reserve(CALLER, "bistro", DAY, 1)
    counts.release(CALLER, "bistro", DAY)
    assert counts.count(CALLER, "bistro", DAY) == 0
    assert counts.reserve(CALLER, "bistro", DAY, 1)


def test_giving_back_never_goes_below_zero(counts: CallerBookingCounts) -> None:
    counts.release(CALLER, "bistro", DAY)
    assert counts.count(CALLER, "bistro", DAY) == 0


def test_a_limit_of_zero_refuses_without_writing(counts: CallerBookingCounts, store: CallStore) -> None:
    assert not counts.reserve(CALLER, "bistro", DAY, 0)
    assert store.client.scan(TableName=store.table_name)["Items"] == []


def test_the_count_expires_after_its_day(counts: CallerBookingCounts, store: CallStore) -> None:
    counts.reserve(CALLER, "bistro", DAY, 3)
    item = store.client.get_item(
        TableName=store.table_name, Key={"pk": {"S": CALLER}, "sk": {"S": bookings_sk("bistro", DAY)}}
    )["Item"]
    expected = int((datetime(2026, 12, 4, tzinfo=UTC) + COUNT_KEPT).timestamp())
    assert int(item[TTL_ATTRIBUTE]["N"]) == expected
