"""A profile's caps on bookings: at most `max_bookings_per_call` on one call, and at most
`max_bookings_per_caller_per_day` for one caller (by the keyed hash of their number) on one line in one local day.

One quota lives as long as its call. A place is taken before the booking is asked for and given back if the booking
is not made, so neither two tool calls of one call nor two calls of one caller (on any relay task: the daily count is
a conditional increment in the table) can get past a cap. A refusal is a tool result the agent can say, never an
error. A caller with no usable number (withheld) has only the per-call cap: their calls share no identity.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from callcore.store.booking_counts import CallerBookingCounts


@dataclass(frozen=True)
class QuotaRefusal:
    reason: str  # max_bookings_per_call | max_bookings_per_caller_per_day
    limit: int
    say: str


@dataclass(frozen=True)
class QuotaPlace:
    """A place taken for one booking: give it back with `BookingQuota.give_back` if the booking is not made."""

    day: date | None  # the local day counted in the table; None = no daily count for this caller


class BookingQuota:
    def __init__(
        self,
        *,
        per_call: int,
        per_caller_per_day: int,
        line: str,
        zone: ZoneInfo,
        counts: CallerBookingCounts | None = None,
        caller_pk: str | None = None,
    ) -> None:
        self._per_call = per_call
        self._per_day = per_caller_per_day
        self._line = line
        self._zone = zone
        self._counts = counts
        self._caller_pk = caller_pk
        self._taken = 0  # on this call, including bookings under way

    async def take(self, now: datetime) -> QuotaPlace | QuotaRefusal:
        if self._taken >= self._per_call:
            return QuotaRefusal(
                "max_bookings_per_call",
                self._per_call,
                f"Only {self._per_call} booking(s) can be made on one call. Tell the caller kindly that this "
                "booking cannot be made on this call, and offer to help with anything else.",
            )
        self._taken += 1  # before any await: a second tool call of this call sees it at once
        if self._counts is None or self._caller_pk is None:
            return QuotaPlace(None)
        day = now.astimezone(self._zone).date()
        try:
            allowed = await asyncio.to_thread(self._counts.reserve, self._caller_pk, self._line, day, self._per_day)
        except BaseException:
            self._taken -= 1
            raise
        if not allowed:
            self._taken -= 1
            return QuotaRefusal(
                "max_bookings_per_caller_per_day",
                self._per_day,
                f"This caller already has the most bookings allowed in one day ({self._per_day}). Tell them kindly "
                "that no more bookings can be made today, and offer to help with anything else or transfer them.",
            )
        return QuotaPlace(day)

    async def give_back(self, place: QuotaPlace) -> None:
        self._taken -= 1
        if place.day is not None and self._counts is not None and self._caller_pk is not None:
            await asyncio.to_thread(self._counts.release, self._caller_pk, self._line, place.day)
