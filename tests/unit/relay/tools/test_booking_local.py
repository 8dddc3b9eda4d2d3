"""Availability and booking against the local store (the call table on moto)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from callcore.models import Booking
from callcore.store import CallStore
from relay.tools import ToolRegistry

from .conftest import CALL_SID, ZONE, MakeContext

pytestmark = pytest.mark.usefixtures("store")


def args(**values: object) -> str:
    return json.dumps(values)


async def test_availability_lists_future_slots_today(registry: ToolRegistry, make_context: MakeContext) -> None:
    # Now is 14:12 on Tuesday: 14:00 has started, 14:30 is the first free slot, 16:30 the last.
    outcome = await registry.run("check_availability", args(date="2030-06-04"), make_context())
    assert outcome.ok
    assert outcome.output["available_times"] == ["14:30", "15:00", "15:30", "16:00", "16:30"]
    assert outcome.output["weekday"] == "Tuesday"


async def test_booked_slots_are_not_offered(
    registry: ToolRegistry, make_context: MakeContext, store: CallStore
) -> None:
    store.create_booking(Booking(booking_id="X1", day="2030-06-08", time="11:00", name="Someone"))
    outcome = await registry.run("check_availability", args(date="2030-06-08", time="11:00"), make_context())
    assert outcome.ok
    assert "11:00" not in outcome.output["available_times"]
    assert outcome.output["requested_time_available"] is False
    assert outcome.output["nearest_available_times"] == ["10:00", "10:30", "11:30"]


async def test_requested_time_that_is_free(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("check_availability", args(date="2030-06-05", time="9:30"), make_context())
    assert outcome.output["requested_time"] == "09:30"
    assert outcome.output["requested_time_available"] is True
    assert "nearest_available_times" not in outcome.output
    assert len(outcome.output["available_times"]) == 16


async def test_closed_day_has_nothing_free(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("check_availability", args(date="2030-06-09"), make_context())
    assert outcome.ok
    assert outcome.output["available_times"] == []
    assert "another day" in outcome.output["note"]


@pytest.mark.parametrize(
    ("day", "expected"),
    [("2030-06-03", "in the past"), ("2030-09-03", "at most 90 days"), ("2030-13-01", "not a calendar date")],
)
async def test_dates_outside_the_booking_window_are_refused(
    registry: ToolRegistry, make_context: MakeContext, day: str, expected: str
) -> None:
    outcome = await registry.run("check_availability", args(date=day), make_context())
    assert not outcome.ok
    assert expected in outcome.output["error"]


async def test_ninety_days_ahead_is_still_bookable(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("check_availability", args(date="2030-09-02"), make_context())  # a Monday
    assert outcome.ok
    assert outcome.output["available_times"][0] == "09:00"


async def test_booking_is_stored_and_confirmed(
    registry: ToolRegistry, make_context: MakeContext, store: CallStore
) -> None:
    outcome = await registry.run(
        "book_appointment",
        args(name=" Dana Smith ", date="2030-06-05", time="10:30", party_size=2, notes="window seat"),
        make_context(),
    )
    assert outcome.ok
    out = outcome.output
    assert out["booked"] is True
    assert (out["date"], out["weekday"], out["time"], out["name"]) == ("2030-06-05", "Wednesday", "10:30", "Dana Smith")
    assert len(out["confirmation_code"]) == 6
    [stored] = store.list_bookings("2030-06-05")
    assert stored.booking_id == out["confirmation_code"]
    assert (stored.time, stored.name, stored.party_size, stored.notes) == ("10:30", "Dana Smith", 2, "window seat")
    assert stored.call_sid == CALL_SID


async def test_slot_taken_offers_the_nearest_free_times(
    registry: ToolRegistry, make_context: MakeContext, store: CallStore
) -> None:
    ctx = make_context()
    first = await registry.run("book_appointment", args(name="A", date="2030-06-05", time="10:30"), ctx)
    assert first.output["booked"] is True
    second = await registry.run("book_appointment", args(name="B", date="2030-06-05", time="10:30"), ctx)
    assert second.ok
    assert second.output["booked"] is False
    assert second.output["reason"] == "slot_taken"
    assert second.output["nearest_available_times"] == ["09:30", "10:00", "11:00"]
    assert [b.name for b in store.list_bookings("2030-06-05")] == ["A"]


async def test_time_outside_opening_hours_is_not_bookable(
    registry: ToolRegistry, make_context: MakeContext, store: CallStore
) -> None:
    outcome = await registry.run("book_appointment", args(name="A", date="2030-06-08", time="16:00"), make_context())
    assert outcome.output["booked"] is False
    assert outcome.output["reason"] == "not_a_bookable_time"
    assert outcome.output["nearest_available_times"] == ["12:30", "13:00", "13:30"]
    assert store.list_bookings("2030-06-08") == []


async def test_time_already_passed_today_is_refused(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("book_appointment", args(name="A", date="2030-06-04", time="14:00"), make_context())
    assert not outcome.ok
    assert "already passed" in outcome.output["error"]


async def test_evening_clock_moves_today_into_the_past(registry: ToolRegistry, make_context: MakeContext) -> None:
    evening = datetime(2030, 6, 4, 17, 30, tzinfo=ZONE)
    outcome = await registry.run("check_availability", args(date="2030-06-04"), make_context(now=evening))
    assert outcome.output["available_times"] == []


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (args(date="2030-06-05", time="10:30"), "name"),
        (args(name="A", date="5 June", time="10:30"), "date"),
        (args(name="A", date="2030-06-05", time="25:00"), "time"),
        (args(name="A", date="2030-06-05", time="10:30", party_size=0), "party_size"),
        (args(name="A", date="2030-06-05", time="10:30", table="7"), "table"),
    ],
)
async def test_schema_violations_name_the_field(
    registry: ToolRegistry, make_context: MakeContext, store: CallStore, arguments: str, named: str
) -> None:
    outcome = await registry.run("book_appointment", arguments, make_context())
    assert not outcome.ok
    assert outcome.output["error"].startswith("Invalid arguments for book_appointment")
    assert named in outcome.output["error"]
    assert store.list_bookings("2030-06-05") == []


async def test_blank_name_is_a_schema_error(
    registry: ToolRegistry, make_context: MakeContext, store: CallStore
) -> None:
    outcome = await registry.run("book_appointment", args(name="   ", date="2030-06-05", time="10:30"), make_context())
    assert not outcome.ok
    assert "name" in outcome.output["error"]
    assert store.list_bookings("2030-06-05") == []
