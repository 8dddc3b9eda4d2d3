"""Opening hours in the business's own time zone: is it open now, when does it close, when does it next open, and
which appointment slots a day has. Built once per line from its `WeeklyHours`, holidays (closed all day), time zone
and slot length."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcore.business_hours import WeeklyHours

SLOT_MINUTES = 30
MINUTES_PER_DAY = 24 * 60
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _minutes(moment: time) -> int:
    # WeeklyHours writes a 24:00 close as time.max.
    return MINUTES_PER_DAY if moment == time.max else moment.hour * 60 + moment.minute


def format_minutes(minutes: int) -> str:
    return "24:00" if minutes >= MINUTES_PER_DAY else f"{minutes // 60:02d}:{minutes % 60:02d}"


def weekday_name(day: date) -> str:
    return _DAY_NAMES[day.weekday()]


@dataclass(frozen=True)
class Opening:
    """One opening interval on a calendar day, in minutes since local midnight (close may be 1440)."""

    day: date
    opens: int
    closes: int

    @property
    def label(self) -> str:
        return f"{format_minutes(self.opens)}-{format_minutes(self.closes)}"


class OpeningSchedule:
    def __init__(
        self,
        weekly: WeeklyHours,
        zone: ZoneInfo,
        *,
        holidays: frozenset[date] = frozenset(),
        slot_minutes: int = SLOT_MINUTES,
    ) -> None:
        self.weekly = weekly
        self.zone = zone
        self.holidays = holidays
        self.slot_minutes = slot_minutes

    @property
    def timezone_name(self) -> str:
        return self.zone.key

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def openings_on(self, day: date) -> list[Opening]:
        if day in self.holidays:
            return []
        return [Opening(day, _minutes(o), _minutes(c)) for o, c in self.weekly.intervals[day.weekday()]]

    def current_opening(self, local: datetime) -> Opening | None:
        now = local.hour * 60 + local.minute
        return next((o for o in self.openings_on(local.date()) if o.opens <= now < o.closes), None)

    def next_opening(self, local: datetime) -> Opening | None:
        """The first opening that starts after `local` (today's later one, else the following days'), or None for
        a business that is never open."""
        now = local.hour * 60 + local.minute
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            for opening in self.openings_on(day):
                if offset > 0 or opening.opens > now:
                    return opening
        return None

    def slots_on(self, day: date) -> list[str]:
        """Appointment start times (`HH:MM`, every `slot_minutes`) whose whole slot fits inside an opening."""
        slots: list[str] = []
        for opening in self.openings_on(day):
            start = opening.opens
            while start + self.slot_minutes <= opening.closes:
                slots.append(format_minutes(start))
                start += self.slot_minutes
        return slots

    def describe_week(self) -> str:
        return self.weekly.describe()
