"""Opening hours as written in BUSINESS_HOURS and in a profile's `[hours] weekly`:
`"mon-fri 09:00-17:00; sat 10:00-14:00"`.

Parsed once (settings validation rejects a bad string at start-up); used by the prompt's per-call context and by
the business-hours tool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_SPEC = r"[a-z]{3}(?:-[a-z]{3})?"
_RULE = re.compile(rf"^(?P<days>{_DAY_SPEC}(?:,{_DAY_SPEC})*)\s+(?P<open>\d{{2}}:\d{{2}})-(?P<close>\d{{2}}:\d{{2}})$")


def _parse_time(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"{text!r} is not a time of day")
    return time(hours, minutes)


def _expand_days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day in {part!r} (use {', '.join(DAYS)})")
        start = DAYS.index(first)
        end = DAYS.index(last) if last else start
        if end < start:
            raise ValueError(f"day range {part!r} runs backwards")
        days.extend(range(start, end + 1))
    return days


@dataclass(frozen=True)
class WeeklyHours:
    """Per weekday (0 = Monday) the list of (open, close) intervals; closed days have none."""

    intervals: tuple[tuple[tuple[time, time], ...], ...]

    @classmethod
    def parse(cls, text: str) -> WeeklyHours:
        by_day: list[list[tuple[time, time]]] = [[] for _ in DAYS]
        rules = [rule.strip().lower() for rule in text.split(";") if rule.strip()]
        if not rules:
            raise ValueError('no opening hours given (e.g. "mon-fri 09:00-17:00")')
        for rule in rules:
            match = _RULE.match(rule)
            if not match:
                raise ValueError(f'cannot read {rule!r}: write "mon-fri 09:00-17:00"')
            opens, closes = _parse_time(match["open"]), _parse_time(match["close"])
            if closes <= opens:
                raise ValueError(f"{rule!r} closes before it opens")
            for day in _expand_days(match["days"]):
                by_day[day].append((opens, closes))
        return cls(tuple(tuple(sorted(day)) for day in by_day))

    def is_open(self, local: datetime) -> bool:
        moment = local.time()
        return any(opens <= moment < closes for opens, closes in self.intervals[local.weekday()])

    def describe(self) -> str:
        """`Monday: 09:00-17:00; ...; Sunday: closed`, for the prompt and the tool."""
        parts = []
        for name, day in zip(_DAY_NAMES, self.intervals, strict=True):
            spans = ", ".join(f"{o:%H:%M}-{'24:00' if c == time.max else f'{c:%H:%M}'}" for o, c in day)
            parts.append(f"{name}: {spans or 'closed'}")
        return "; ".join(parts)
