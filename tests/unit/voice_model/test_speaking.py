"""How the stand-in says times, days and hours."""

from __future__ import annotations

from datetime import date

import pytest

from local.voice_model.speaking import clock_time, day_and_date, weekly_hours


@pytest.mark.parametrize(
    ("hhmm", "said"),
    [
        ("08:00", "eight in the morning"),
        ("12:00", "noon"),
        ("14:30", "two thirty in the afternoon"),
        ("19:45", "seven forty-five in the evening"),
        ("22:00", "ten at night"),
        ("24:00", "midnight"),
    ],
)
def test_clock_times_are_said_as_people_say_them(hhmm: str, said: str) -> None:
    assert clock_time(hhmm) == said


def test_a_day_is_said_with_its_ordinal_date() -> None:
    assert day_and_date(date(2026, 12, 4)) == "Friday the fourth"
    assert day_and_date(date(2026, 12, 31)) == "Thursday the thirty-first"


def test_days_with_the_same_hours_are_said_together() -> None:
    week = (
        "Monday: 09:00-17:00; Tuesday: 09:00-17:00; Wednesday: 09:00-17:00; Thursday: 09:00-17:00; "
        "Friday: 09:00-17:00; Saturday: 10:00-14:00; Sunday: closed"
    )
    assert weekly_hours(week) == (
        "Monday to Friday from nine in the morning until five in the evening; "
        "Saturday from ten in the morning until two in the afternoon; closed on Sunday"
    )
