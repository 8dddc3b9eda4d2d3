"""Everything the table holds about one phone number, found and deleted together (the right to erasure).

Found by one paginated Scan (an erasure is rare; no index is kept for it): call records whose caller is the number,
by its keyed hash (`caller_hash`, which outlives the number on the record) or, for records written before the hash
was kept, by the number itself; the bookings made in those calls (a booking names a person, not a number); and the
caller's own partition (`CALLER#<hash>`: the profile and the live-calls set). A call's transcript turns live in the
call's partition and go with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from callcore.masking import caller_hash
from callcore.models import Booking, CallRecord
from callcore.store import CallStore
from callcore.store.calls import record_from_item
from callcore.store.keys import (
    ENTITY_ATTRIBUTE,
    PARTITION_KEY,
    SORT_KEY,
    TURN_SK_PREFIX,
    booking_pk,
    booking_sk,
    call_pk,
    caller_pk_of_hash,
)
from callcore.store.table import model_fields_of

BATCH_SIZE = 25  # BatchWriteItem's limit
BATCH_ATTEMPTS = 8  # unprocessed items (throttling) are sent again, this many times at most


class ErasureIncomplete(Exception):
    """DynamoDB kept refusing some deletes (throttling): run the erasure again; it finds what is left."""


@dataclass
class CallerData:
    """What the table holds about one number."""

    calls: list[CallRecord] = field(default_factory=list)
    turn_counts: dict[str, int] = field(default_factory=dict)  # CallSid -> stored turns
    bookings: list[Booking] = field(default_factory=list)
    caller_items: list[str] = field(default_factory=list)  # sort keys in the caller's own partition

    @property
    def empty(self) -> bool:
        return not (self.calls or self.bookings or self.caller_items)


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": pk}, SORT_KEY: {"S": sk}}


def _scan(store: CallStore, **request: Any) -> Iterator[dict[str, Any]]:
    paginator = store.client.get_paginator("scan")
    for page in paginator.paginate(TableName=store.table_name, ConsistentRead=True, **request):
        yield from page.get("Items", [])


def find_caller_data(store: CallStore, number: str, *, hash_key: bytes) -> CallerData:
    hashed = caller_hash(hash_key, number)
    data = CallerData()
    bookings: list[Booking] = []
    for item in _scan(
        store,
        FilterExpression=(
            "(#entity = :call AND (caller_hash = :hash OR from_number = :number OR to_number = :number)) "
            "OR #entity = :booking"
        ),
        ExpressionAttributeNames={"#entity": ENTITY_ATTRIBUTE},
        ExpressionAttributeValues={
            ":call": {"S": "call"},
            ":booking": {"S": "booking"},
            ":hash": {"S": hashed},
            ":number": {"S": number},
        },
    ):
        if item[ENTITY_ATTRIBUTE]["S"] == "call":
            data.calls.append(record_from_item(item))
        else:
            bookings.append(Booking.model_validate(model_fields_of(item)))
    sids = {record.call_sid for record in data.calls}
    data.bookings = [booking for booking in bookings if booking.call_sid in sids]
    for record in data.calls:
        sort_keys = _partition_sort_keys(store, call_pk(record.call_sid))
        data.turn_counts[record.call_sid] = sum(1 for sk in sort_keys if sk.startswith(TURN_SK_PREFIX))
    data.caller_items = list(_partition_sort_keys(store, caller_pk_of_hash(hashed)))
    data.calls.sort(key=lambda record: record.created_at)
    return data


def _partition_sort_keys(store: CallStore, pk: str) -> Iterator[str]:
    paginator = store.client.get_paginator("query")
    for page in paginator.paginate(
        TableName=store.table_name,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": PARTITION_KEY, "#sk": SORT_KEY},
        ExpressionAttributeValues={":pk": {"S": pk}},
        ProjectionExpression="#sk",
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            yield item[SORT_KEY]["S"]


def delete_caller_data(store: CallStore, data: CallerData, *, hash_key: bytes, number: str) -> int:
    """Delete what `find_caller_data` found: each call's whole partition (record and turns), its bookings, the
    caller's partition. A call that still holds an agent seat gives it back first. Returns the items deleted."""
    keys: list[dict[str, Any]] = []
    for record in data.calls:
        store.release_seat(record.call_sid)
        pk = call_pk(record.call_sid)
        keys.extend(_key(pk, sk) for sk in _partition_sort_keys(store, pk))
    keys.extend(_key(booking_pk(b.day), booking_sk(b.time)) for b in data.bookings)
    caller = caller_pk_of_hash(caller_hash(hash_key, number))
    keys.extend(_key(caller, sk) for sk in _partition_sort_keys(store, caller))
    _batch_delete(store, keys)
    return len(keys)


def _batch_delete(store: CallStore, keys: list[dict[str, Any]]) -> None:
    for start in range(0, len(keys), BATCH_SIZE):
        pending: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + BATCH_SIZE]]
        for _ in range(BATCH_ATTEMPTS):
            response = store.client.batch_write_item(RequestItems={store.table_name: pending})
            pending = list(response.get("UnprocessedItems", {}).get(store.table_name, []))
            if not pending:
                break
        if pending:
            raise ErasureIncomplete(f"{len(pending)} items were not deleted (throttled): run the erasure again")
