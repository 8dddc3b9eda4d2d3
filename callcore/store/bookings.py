"""Bookings the agent made when no business API is configured (the local booking store): one item per slot
(`BOOKING#<day>` / `SLOT#<HH:MM>`), so a slot is taken at most once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callcore.models import Booking
from callcore.store.errors import SlotTaken
from callcore.store.keys import TTL_ATTRIBUTE, booking_pk, booking_sk
from callcore.store.retention import expires_at
from callcore.store.table import TableAccess, model_fields_of, serialize_item


class Bookings(TableAccess):
    """Book a free slot; list a day's bookings."""

    def create_booking(self, booking: Booking) -> Booking:
        """Book the slot once (SlotTaken when it is taken); the booking expires its retention after the booked day."""
        booked_day = datetime.fromisoformat(booking.day).replace(tzinfo=UTC)
        item = serialize_item(
            {
                "pk": booking_pk(booking.day),
                "sk": booking_sk(booking.time),
                "entity": "booking",
                TTL_ATTRIBUTE: expires_at(booked_day, timedelta(days=self.retention.booking_days)),
                **booking.model_dump(),
            }
        )
        if not self._put_once(item, condition="attribute_not_exists(sk)"):
            raise SlotTaken(booking.day, booking.time)
        return booking

    def list_bookings(self, day: str) -> list[Booking]:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": booking_pk(day)}},
            ConsistentRead=True,
        )
        return [Booking.model_validate(model_fields_of(item)) for item in response.get("Items", [])]
