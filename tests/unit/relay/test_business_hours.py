from __future__ import annotations

from datetime import datetime

import pytest

from callcore.business_hours import WeeklyHours


def test_parse_and_is_open() -> None:
    hours = WeeklyHours.parse("mon-fri 09:00-17:00; sat 10:00-14:00")
    assert hours.is_open(datetime(2025, 11, 17, 9, 0))  # Monday 09:00
    assert not hours.is_open(datetime(2025, 11, 17, 17, 0))  # closing time is closed
    assert hours.is_open(datetime(2025, 11, 22, 13, 59))  # Saturday
    assert not hours.is_open(datetime(2025, 11, 23, 12, 0))  # Sunday
    assert "Sunday: closed" in hours.describe()
    assert "Saturday: 10:00-14:00" in hours.describe()


def test_split_days_and_midnight_close() -> None:
    hours = WeeklyHours.parse("mon,wed 08:00-12:00; mon 13:00-24:00")
    assert hours.is_open(datetime(2025, 11, 17, 23, 59))
    assert not hours.is_open(datetime(2025, 11, 18, 9, 0))  # Tuesday
    assert "Monday: 08:00-12:00, 13:00-24:00" in hours.describe()


@pytest.mark.parametrize("text", ["", "fri-mon 09:00-17:00", "xyz 09:00-10:00", "mon 25:00-26:00", "mon 9-5"])
def test_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        WeeklyHours.parse(text)
