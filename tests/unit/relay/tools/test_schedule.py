from __future__ import annotations

from datetime import date, datetime

from callcore.business_hours import WeeklyHours
from relay.tools.schedule import OpeningSchedule

from .conftest import NOW, ZONE


def schedule(text: str = "mon-fri 09:00-17:00; sat 10:00-14:00") -> OpeningSchedule:
    return OpeningSchedule(WeeklyHours.parse(text), ZONE)


def test_slots_every_half_hour_and_the_last_one_ends_at_closing() -> None:
    slots = schedule().slots_on(date(2030, 6, 8))  # a Saturday, 10:00-14:00
    assert slots == ["10:00", "10:30", "11:00", "11:30", "12:00", "12:30", "13:00", "13:30"]


def test_closed_day_has_no_slots_and_no_openings() -> None:
    sunday = date(2030, 6, 9)
    assert schedule().slots_on(sunday) == []
    assert schedule().openings_on(sunday) == []


def test_split_day_and_a_midnight_close() -> None:
    split = schedule("mon 09:00-10:00; mon 14:00-15:00")
    assert split.slots_on(date(2030, 6, 3)) == ["09:00", "09:30", "14:00", "14:30"]
    late = schedule("fri 23:00-24:00")
    assert late.slots_on(date(2030, 6, 7)) == ["23:00", "23:30"]
    assert late.openings_on(date(2030, 6, 7))[0].label == "23:00-24:00"


def test_current_and_next_opening_in_local_time() -> None:
    s = schedule()
    local = s.local(NOW)
    assert local.tzinfo == ZONE
    current = s.current_opening(local)
    assert current is not None
    assert current.label == "09:00-17:00"
    following = s.next_opening(local)
    assert following is not None
    assert (following.day, following.opens) == (date(2030, 6, 5), 9 * 60)


def test_next_opening_after_saturday_close_skips_sunday() -> None:
    s = schedule()
    saturday_evening = datetime(2030, 6, 8, 18, 0, tzinfo=ZONE)
    assert s.current_opening(saturday_evening) is None
    following = s.next_opening(saturday_evening)
    assert following is not None
    assert following.day == date(2030, 6, 10)
    assert following.label == "09:00-17:00"


def test_before_opening_the_next_opening_is_today() -> None:
    early = datetime(2030, 6, 4, 7, 30, tzinfo=ZONE)
    following = schedule().next_opening(early)
    assert following is not None
    assert following.day == date(2030, 6, 4)


def test_utc_instant_is_read_in_the_business_zone() -> None:
    # 02:00 UTC on Wednesday is still Tuesday 22:00 in New York (EDT, UTC-4): closed, next opening Wednesday.
    s = schedule()
    local = s.local(datetime.fromisoformat("2030-06-05T02:00:00+00:00"))
    assert (local.date(), local.hour) == (date(2030, 6, 4), 22)
    assert s.current_opening(local) is None
