"""Where bookings live: the business's own REST API when the line has one (a profile's `business_api`, else
BUSINESS_API_BASE), else the call table. A profile's API requests carry its credentials header (`CredentialsHeader`).

The business API contract (documented in the README):

    GET  {base}/availability?date=YYYY-MM-DD  -> 200 {"slots": ["09:00", "09:30", ...]}   (free start times, local)
    POST {base}/bookings  {"name", "date", "time", "party_size", "notes", "call_sid", "caller_number"}
                          -> 201 {"booking_id": "..."} | 409 the slot is taken | 400/422 refused

Timeouts, connection errors, 5xx and malformed answers become ToolErrors the model can apologise for.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callcore.models import Booking
from callcore.store import SlotTaken
from relay.tools.base import ToolContext, ToolError
from relay.tools.credentials import CredentialsHeader
from relay.tools.schedule import OpeningSchedule

logger = logging.getLogger(__name__)

TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
_CONFIRMATION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed back by callers
_UNAVAILABLE = "The booking system is not reachable right now. Apologise and offer to take a message or transfer."


@dataclass(frozen=True)
class BookingDetails:
    name: str
    day: date
    time: str  # HH:MM, business local time
    party_size: int
    notes: str


class SlotUnavailable(Exception):
    """The requested slot cannot be booked (taken, or not a bookable time)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BookingBackend(Protocol):
    async def available_slots(self, day: date, ctx: ToolContext) -> list[str]:
        """Free start times (`HH:MM`, sorted) on a local day."""
        ...

    async def book(self, details: BookingDetails, ctx: ToolContext) -> str:
        """Book and return the confirmation id; raise SlotUnavailable when the slot cannot be had."""
        ...


def new_confirmation_code(length: int = 6) -> str:
    return "".join(secrets.choice(_CONFIRMATION_ALPHABET) for _ in range(length))


class LocalBookingStore:
    """Bookings in the call table: the line's slots inside its opening hours, one booking per slot."""

    def __init__(self, schedule: OpeningSchedule) -> None:
        self.schedule = schedule

    async def available_slots(self, day: date, ctx: ToolContext) -> list[str]:
        slots = self.schedule.slots_on(day)
        if not slots:
            return []
        # boto3 is blocking: keep it off the event loop that carries every call's audio.
        bookings = await asyncio.to_thread(ctx.store.list_bookings, day.isoformat())
        taken = {b.time for b in bookings}
        return [slot for slot in slots if slot not in taken]

    async def book(self, details: BookingDetails, ctx: ToolContext) -> str:
        if details.time not in self.schedule.slots_on(details.day):
            raise SlotUnavailable("not_a_bookable_time")
        booking = Booking(
            booking_id=new_confirmation_code(),
            day=details.day.isoformat(),
            time=details.time,
            name=details.name,
            party_size=details.party_size,
            notes=details.notes,
            call_sid=ctx.call_sid,
        )
        try:
            await asyncio.to_thread(ctx.store.create_booking, booking)
        except SlotTaken:
            raise SlotUnavailable("slot_taken") from None
        return booking.booking_id


class _AvailabilityAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    slots: list[str] = Field(max_length=500)


class _BookingAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    booking_id: str | int


def _normalise_slot(text: str) -> str | None:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes[:2].isdigit():
        return None
    value = f"{int(hours):02d}:{minutes[:2]}"
    return value if int(hours) < 24 and int(minutes[:2]) < 60 else None


class BusinessApiBookings:
    """Client of the business's booking API (see the module docstring for the contract)."""

    def __init__(self, base_url: str, credentials: CredentialsHeader | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials

    async def _headers(self) -> dict[str, str]:
        return await self._credentials.headers() if self._credentials is not None else {}

    async def available_slots(self, day: date, ctx: ToolContext) -> list[str]:
        url = f"{self.base_url}/availability"
        headers = await self._headers()
        try:
            async with ctx.http.get(url, params={"date": day.isoformat()}, headers=headers) as response:
                if response.status != 200:
                    logger.warning("business API availability answered %s on call %s", response.status, ctx.call_sid)
                    raise ToolError(_UNAVAILABLE)
                body: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as error:  # ValueError: a body that is not JSON
            logger.warning("business API availability failed on call %s: %s", ctx.call_sid, type(error).__name__)
            raise ToolError(_UNAVAILABLE) from None
        try:
            answer = _AvailabilityAnswer.model_validate(body)
        except ValidationError:
            logger.warning("business API availability sent an unexpected body on call %s", ctx.call_sid)
            raise ToolError(_UNAVAILABLE) from None
        slots = {slot for slot in map(_normalise_slot, answer.slots) if slot is not None}
        return sorted(slots)

    async def book(self, details: BookingDetails, ctx: ToolContext) -> str:
        payload = {
            "name": details.name,
            "date": details.day.isoformat(),
            "time": details.time,
            "party_size": details.party_size,
            "notes": details.notes,
            "call_sid": ctx.call_sid,
            # The business needs a way to reach the caller about the booking; this is its own system.
            "caller_number": ctx.caller_number,
        }
        headers = await self._headers()
        try:
            async with ctx.http.post(f"{self.base_url}/bookings", json=payload, headers=headers) as response:
                if response.status == 409:
                    raise SlotUnavailable("slot_taken")
                if response.status in (400, 422):
                    logger.info("business API refused a booking on call %s (%s)", ctx.call_sid, response.status)
                    raise ToolError(
                        "The booking system refused these details. Check the date, time and name with the caller, "
                        "or offer to take a message."
                    )
                if response.status not in (200, 201):
                    logger.warning("business API booking answered %s on call %s", response.status, ctx.call_sid)
                    raise ToolError(_UNAVAILABLE)
                text = await response.text()
        except aiohttp.ClientError as error:
            logger.warning("business API booking failed on call %s: %s", ctx.call_sid, type(error).__name__)
            raise ToolError(_UNAVAILABLE) from None
        try:
            return str(_BookingAnswer.model_validate_json(text).booking_id)
        except ValidationError:
            # The booking was accepted (2xx) but no id came back: say so rather than invent one or call it failed.
            logger.warning("business API booking answered without a booking_id on call %s", ctx.call_sid)
            return ""
