"""How the stand-in says times, days, hours and codes out loud (a phone line has no screen)."""

from __future__ import annotations

import re
from datetime import date

from local.voice_model.grammar import NUMBERS

_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
    "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
    "twentieth", "twenty-first", "twenty-second", "twenty-third", "twenty-fourth", "twenty-fifth", "twenty-sixth",
    "twenty-seventh", "twenty-eighth", "twenty-ninth", "thirtieth", "thirty-first",
)  # fmt: skip
_MINUTES = {0: "", 15: " fifteen", 30: " thirty", 45: " forty-five"}
_SPAN = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


def clock_time(hhmm: str) -> str:
    """'19:30' -> 'seven thirty in the evening'; '12:00' -> 'noon'; '24:00' -> 'midnight'."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    if hours in {0, 24} and minutes == 0:
        return "midnight"
    if hours == 12 and minutes == 0:
        return "noon"
    spoken_minutes = _MINUTES.get(minutes, f" {minutes:02d}")
    hour = NUMBERS[(hours - 1) % 12]
    if hours < 12:
        part = "in the morning"
    elif hours < 17:
        part = "in the afternoon"
    elif hours < 21:
        part = "in the evening"
    else:
        part = "at night"
    return f"{hour}{spoken_minutes} {part}"


def day_and_date(day: date) -> str:
    """'Friday the twenty-eighth'."""
    return f"{day:%A} the {_ORDINALS[day.day - 1]}"


def hours_span(label: str) -> str:
    """'11:00-22:00' -> 'from eleven in the morning until ten at night'."""
    match = _SPAN.fullmatch(label)
    if match is None:
        return label
    opens, closes = f"{match[1]}:{match[2]}", f"{match[3]}:{match[4]}"
    return f"from {clock_time(opens)} until {clock_time(closes)}"


def weekly_hours(description: str) -> str:
    """The relay's 'Monday: 11:00-22:00; ...; Sunday: closed', with days of equal hours grouped: 'Monday to
    Saturday from eleven in the morning until ten at night, and closed on Sunday'."""
    days: list[tuple[str, str]] = []
    for part in description.split(";"):
        name, _, hours = part.strip().partition(":")
        if name:
            days.append((name.strip(), hours.strip()))
    groups: list[tuple[str, str, str]] = []  # first day, last day, hours
    for name, hours in days:
        if groups and groups[-1][2] == hours:
            groups[-1] = (groups[-1][0], name, hours)
        else:
            groups.append((name, name, hours))
    phrases = []
    for first, last, hours in groups:
        days_said = first if first == last else f"{first} to {last}"
        if hours == "closed":
            phrases.append(f"closed on {days_said}")
        else:
            spans = " and ".join(hours_span(span.strip()) for span in hours.split(","))
            phrases.append(f"{days_said} {spans}")
    return ", and ".join(phrases) if len(phrases) <= 2 else "; ".join(phrases)


def spelled(code: str) -> str:
    """A confirmation code letter by letter: 'K 7 P'."""
    return " ".join(code)
