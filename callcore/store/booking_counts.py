"""How many bookings a caller made on one line in one day: the count behind a profile's
`booking.max_bookings_per_caller_per_day`.

| item | pk | sk |
| --- | --- | --- |
| a caller's bookings on a line on a day | `CALLER#<keyed hash of the number>` | `BOOKINGS#<profile id>#<YYYY-MM-DD>` |

The count is taken before a booking is made, with a conditional increment (`count < limit`), so two calls from the
same number on two relay tasks cannot both take the last place; a booking that then fails gives its place back. The
item expires (the table's TTL) a few days after its day: it only matters on that day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from callcore.store.keys import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from callcore.store.retention import expires_at
from callcore.store.table import TableAccess, serialize_item

COUNT_KEPT = timedelta(days=3)  # past its (local) day in every time zone, then gone


def bookings_sk(line: str, day: date) -> str:
    return f"BOOKINGS#{line}#{day.isoformat()}"


class CallerBookingCounts(TableAccess):
    def reserve(self, caller_pk: str, line: str, day: date, limit: int) -> bool:
        """Take one of the caller's `limit` bookings on `line` for `day`; False when all are taken."""
        if limit <= 0:
            return False
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return self._update_unless_condition_fails(
            Key=serialize_item({PARTITION_KEY: caller_pk, SORT_KEY: bookings_sk(line, day)}),
            UpdateExpression="ADD #count :one SET #ttl = :ttl",
            ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
            ExpressionAttributeNames={"#count": "booking_count", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues=serialize_item(
                {":one": 1, ":limit": limit, ":ttl": expires_at(day_start, COUNT_KEPT)}
            ),
        )

    def release(self, caller_pk: str, line: str, day: date) -> None:
        """Give back a place taken for a booking that was not made."""
        self._update_unless_condition_fails(
            Key=serialize_item({PARTITION_KEY: caller_pk, SORT_KEY: bookings_sk(line, day)}),
            UpdateExpression="ADD #count :minus_one",
            ConditionExpression="#count > :zero",
            ExpressionAttributeNames={"#count": "booking_count"},
            ExpressionAttributeValues=serialize_item({":minus_one": -1, ":zero": 0}),
        )

    def count(self, caller_pk: str, line: str, day: date) -> int:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=serialize_item({PARTITION_KEY: caller_pk, SORT_KEY: bookings_sk(line, day)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return int(item["booking_count"]["N"]) if item else 0
