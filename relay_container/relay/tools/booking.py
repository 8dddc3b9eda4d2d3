"""`check_availability` and `book_appointment`: dates and times checked against the business's calendar (no past
dates, at most 90 days ahead, no time that has already passed today), then asked of the booking backend."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from relay.tools.base import Tool, ToolContext, ToolError, ToolOutcome
from relay.tools.booking_backends import BookingBackend, BookingDetails, SlotUnavailable
from relay.tools.booking_quota import QuotaRefusal
from relay.tools.hours import DATE_PATTERN, parse_day
from relay.tools.schedule import OpeningSchedule, weekday_name

BOOKING_HORIZON_DAYS = 90
MAX_SLOTS_LISTED = 16  # a caller can take in only a few options; the model picks from these
NEAREST_ALTERNATIVES = 3


def _two_digit_hour(value: str) -> str:
    hours, _, minutes = value.partition(":")
    return f"{int(hours):02d}:{minutes}"


DateArg = Annotated[
    str,
    Field(
        pattern=DATE_PATTERN,
        description="The day, YYYY-MM-DD in the business's calendar (resolve 'next "
        "Tuesday' etc. from the current date in your instructions).",
    ),
]
TimeArg = Annotated[
    str,
    Field(pattern=r"^([01]?\d|2[0-3]):[0-5]\d$", description="Start time, 24-hour HH:MM local time (2:30 pm = 14:30)."),
    AfterValidator(_two_digit_hour),
]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def nearest(slots: list[str], wanted: str, count: int = NEAREST_ALTERNATIVES) -> list[str]:
    target = _minutes(wanted)
    return sorted(sorted(slots, key=lambda s: (abs(_minutes(s) - target), s))[:count])


class BookingRules:
    """The calendar rules shared by both tools, in the business's time zone, and the line's largest party."""

    def __init__(self, schedule: OpeningSchedule, *, max_party_size: int | None = None) -> None:
        self.schedule = schedule
        self.max_party_size = max_party_size

    def bookable_day(self, text: str, ctx: ToolContext) -> tuple[date, datetime]:
        day = parse_day(text)
        local_now = self.schedule.local(ctx.clock())
        today = local_now.date()
        if day < today:
            raise ToolError(
                f"{day.isoformat()} is in the past (today is {weekday_name(today)} {today.isoformat()}). "
                "Ask the caller which upcoming date they mean."
            )
        last = today + timedelta(days=BOOKING_HORIZON_DAYS)
        if day > last:
            raise ToolError(
                f"Bookings can be made at most {BOOKING_HORIZON_DAYS} days ahead, up to {last.isoformat()}. "
                "Ask the caller for an earlier date."
            )
        return day, local_now

    @staticmethod
    def future_only(slots: list[str], day: date, local_now: datetime) -> list[str]:
        if day != local_now.date():
            return slots
        now = local_now.hour * 60 + local_now.minute
        return [slot for slot in slots if _minutes(slot) > now]


class CheckAvailabilityArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    date: DateArg
    time: TimeArg | None = Field(default=None, description="A preferred start time, if the caller named one.")


class CheckAvailability(Tool[CheckAvailabilityArgs]):
    name = "check_availability"
    description = (
        "Find free appointment times on a day. Use it before booking, and whenever the caller asks what is free. "
        "Pass the caller's preferred time if they gave one: the result says whether it is free and the nearest "
        "free times. Offer at most two or three times out loud, never read the whole list."
    )
    arguments = CheckAvailabilityArgs

    def __init__(self, rules: BookingRules, backend: BookingBackend) -> None:
        self.rules = rules
        self.backend = backend

    async def run(self, args: CheckAvailabilityArgs, ctx: ToolContext) -> ToolOutcome:
        day, local_now = self.rules.bookable_day(args.date, ctx)
        slots = self.rules.future_only(await self.backend.available_slots(day, ctx), day, local_now)
        output: dict[str, Any] = {
            "date": day.isoformat(),
            "weekday": weekday_name(day),
            "available_times": slots[:MAX_SLOTS_LISTED],
        }
        if len(slots) > MAX_SLOTS_LISTED:
            output["more_times_after"] = slots[MAX_SLOTS_LISTED - 1]
        if not slots:
            output["note"] = "Nothing is free that day. Suggest another day."
        if args.time is not None:
            output["requested_time"] = args.time
            output["requested_time_available"] = args.time in slots
            if args.time not in slots:
                output["nearest_available_times"] = nearest(slots, args.time)
        return ToolOutcome(output=output)


class BookAppointmentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, description="The name the booking is under, as the caller gave it.")
    date: DateArg
    time: TimeArg
    party_size: int = Field(default=1, ge=1, le=50, description="How many people, if it matters for the booking.")
    notes: str = Field(default="", max_length=500, description="Anything the caller wants the business to know.")


class BookAppointment(Tool[BookAppointmentArgs]):
    name = "book_appointment"
    description = (
        "Book an appointment once the caller has agreed to a specific free time and given a name. Confirm the "
        "date, time and name with the caller before calling it. On success, read back the day, date, time and "
        "the confirmation code. If the time is taken, offer the alternatives returned."
    )
    arguments = BookAppointmentArgs
    timeout_message: ClassVar[str | None] = (
        "The booking system did not answer in time, so it is not known whether the booking went through. Do not "
        "book again. Tell the caller the booking could not be confirmed and offer to have someone call them back "
        "or to transfer them."
    )

    def __init__(self, rules: BookingRules, backend: BookingBackend) -> None:
        self.rules = rules
        self.backend = backend

    async def run(self, args: BookAppointmentArgs, ctx: ToolContext) -> ToolOutcome:
        day, local_now = self.rules.bookable_day(args.date, ctx)
        if not self.rules.future_only([args.time], day, local_now):
            raise ToolError(f"{args.time} today has already passed. Offer a later time or another day.")
        largest = self.rules.max_party_size
        if largest is not None and args.party_size > largest:
            return ToolOutcome(
                output={
                    "booked": False,
                    "reason": "party_too_large",
                    "max_party_size": largest,
                    "say": f"Bookings are for at most {largest} people. Tell the caller, and offer to transfer them "
                    "or take a message for a larger group.",
                }
            )
        details = BookingDetails(
            name=args.name.strip(), day=day, time=args.time, party_size=args.party_size, notes=args.notes.strip()
        )
        place = await ctx.quota.take(ctx.clock()) if ctx.quota is not None else None
        if isinstance(place, QuotaRefusal):
            return ToolOutcome(output={"booked": False, "reason": place.reason, "limit": place.limit, "say": place.say})
        try:
            booking_id = await self.backend.book(details, ctx)
        except (SlotUnavailable, ToolError) as failure:
            # Known not to be booked: the place goes back. (A timeout keeps it: the booking may have been made.)
            if place is not None and ctx.quota is not None:
                await ctx.quota.give_back(place)
            if not isinstance(failure, SlotUnavailable):
                raise
            refusal = failure
            free = self.rules.future_only(await self.backend.available_slots(day, ctx), day, local_now)
            return ToolOutcome(
                output={
                    "booked": False,
                    "reason": refusal.reason,
                    "date": day.isoformat(),
                    "weekday": weekday_name(day),
                    "requested_time": args.time,
                    # The refused time may still be listed by a lagging availability view: never offer it again.
                    "nearest_available_times": nearest([slot for slot in free if slot != args.time], args.time),
                    "say": "That time cannot be booked. Offer the nearest available times, or another day.",
                }
            )
        output: dict[str, Any] = {
            "booked": True,
            "date": day.isoformat(),
            "weekday": weekday_name(day),
            "time": args.time,
            "name": details.name,
            "party_size": details.party_size,
            "confirmation_code": booking_id or None,
            "say": "Confirm the booking: day, date, time and name"
            + (", then spell the confirmation code." if booking_id else "."),
        }
        return ToolOutcome(output=output)
