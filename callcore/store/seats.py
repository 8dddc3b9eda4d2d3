"""Agent seats: the fleet's live-call counter (`FLEET` / `ACTIVE_CALLS`), each business line's live-call counter
(`RECEPTIONIST#<profile id>` / `ACTIVE_CALLS`: a receptionist profile's `limits.max_concurrent_calls`) and each
caller's live calls (`CALLER#<slot>` / `LIVE_CALLS`).

The counters move only inside a transaction with a call record, so the counters and the records agree: a seat is
taken together with the stream token (`admit_call`, `seat_call`) under the conditions `active < max`, for a call of
a profile's line `line active < line max`, and, for an inbound call, fewer than the caller's limit of live calls; it
is given back together with `seat_released_at` (`release_seat`, the line's seat too), at most once per call,
whoever comes first (the relay when its stream ends, a transfer, the status callback of the call's end, the sweep).

A caller's live calls are a string set of CallSids, not a number: adding or removing a call twice changes nothing,
and the set says which calls hold the places. Withheld numbers share one slot (`withheld`) with its own, lower limit.

A call whose record names a `profile_id` always holds its line's seat with its fleet seat (taking one requires the
line's limit), so giving both back needs nothing but the record.

Every counter also carries a `version` (moved by every take and give-back) and `changed_at`, so the sweep can
recount the seats held by records and correct a counter only if no seat moved meanwhile (`correct_active_calls`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from callcore.models import CallRecord, utc_now
from callcore.store.calls import CallRecords, call_item, record_from_item, record_key
from callcore.store.errors import CallAlreadyExists, CallNotFound
from callcore.store.keys import (
    ACTIVE_CALLS_SK,
    BY_DAY_INDEX,
    FLEET_PK,
    LIVE_CALLS_SK,
    TTL_ATTRIBUTE,
    caller_pk_of_hash,
    day_pk,
)
from callcore.store.retention import LIVE_CALLS_TTL, expires_at
from callcore.store.table import cancellation_codes, deserialize_item, failed_item, serialize_item

COUNTER_KEY = serialize_item({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK})
WITHHELD_SLOT = "withheld"
LINE_PK_PREFIX = "RECEPTIONIST#"  # the partition of a receptionist profile (callcore.store.receptionist_profiles)
_CONDITION_FAILED = "ConditionalCheckFailed"


def live_calls_key(slot: str) -> dict[str, Any]:
    return serialize_item({"pk": caller_pk_of_hash(slot), "sk": LIVE_CALLS_SK})


def line_counter_key(profile_id: str) -> dict[str, Any]:
    """The live-call counter of one business line, beside its profile's versions (`RECEPTIONIST#<id>`)."""
    return serialize_item({"pk": f"{LINE_PK_PREFIX}{profile_id}", "sk": ACTIVE_CALLS_SK})


def _counter_key(profile_id: str | None) -> dict[str, Any]:
    return COUNTER_KEY if profile_id is None else line_counter_key(profile_id)


class SeatResult(Enum):
    """What `admit_call` and `seat_call` did."""

    TAKEN = "taken"  # the call and its seat were stored together
    FULL = "full"  # MAX_CONCURRENT_CALLS calls are live: nothing was written
    LINE_FULL = "line_full"  # the call's line has its limits.max_concurrent_calls live: nothing was written
    CALLER_LIMIT = "caller_limit"  # this caller (or all withheld callers) has the most live calls: nothing written
    ALREADY_DECIDED = "already_decided"  # an earlier request decided this call: nothing was written


@dataclass(frozen=True)
class SeatCounter:
    """A seat counter (the fleet's or a line's) as read: its value, how many times a seat moved (ever), and when one
    last moved."""

    active: int
    version: int
    changed_at: datetime | None


class Seats(CallRecords):
    """Take and give back agent seats, always in one transaction with the call record."""

    def _move_counter(
        self, delta: int, *, at: datetime, max_active: int | None = None, line: str | None = None
    ) -> dict[str, Any]:
        """Move the fleet counter, or with `line` that line's counter."""
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _counter_key(line),
            "UpdateExpression": "ADD active :delta, version :one SET changed_at = :at",
            "ExpressionAttributeValues": serialize_item({":delta": delta, ":one": 1, ":at": at}),
        }
        if max_active is not None:
            update["ConditionExpression"] = "attribute_not_exists(active) OR active < :max"
            update["ExpressionAttributeValues"][":max"] = {"N": str(max_active)}
        return {"Update": update}

    def _join_caller(self, record: CallRecord, *, max_live: int, at: datetime) -> dict[str, Any]:
        assert record.caller_slot is not None
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": live_calls_key(record.caller_slot),
                "UpdateExpression": "ADD live :call SET #ttl = :ttl, entity = :entity",
                "ConditionExpression": "attribute_not_exists(live) OR size(live) < :max",
                "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
                "ExpressionAttributeValues": {
                    ":call": {"SS": [record.call_sid]},
                    ":ttl": {"N": str(expires_at(at, LIVE_CALLS_TTL))},
                    ":entity": {"S": "live_calls"},
                    ":max": {"N": str(max_live)},
                },
            }
        }

    def _leave_caller(self, slot: str, call_sid: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": live_calls_key(slot),
                "UpdateExpression": "DELETE live :call",
                "ExpressionAttributeValues": {":call": {"SS": [call_sid]}},
            }
        }

    def admit_call(
        self,
        record: CallRecord,
        *,
        max_active: int,
        max_caller_live: int | None = None,
        max_line_active: int | None = None,
    ) -> SeatResult:
        """Create the record of a call admitted to the agent (it carries its stream token) and take a seat, atomically.

        With `record.caller_slot` set, the call also takes a place among its caller's live calls, of which there may
        be at most `max_caller_live`; with `record.profile_id` set, a seat of its line, of which there may be at most
        `max_line_active`. TAKEN: all written. FULL / LINE_FULL / CALLER_LIMIT: nothing was written (store the call
        with `create_call` and answer it otherwise). CallAlreadyExists (nothing written): a retried webhook, with the
        first record.
        """
        at = utc_now()
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": call_item(record, self.retention),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        items = [put, self._move_counter(1, at=at, max_active=max_active)]
        refusals = [SeatResult.FULL]
        if record.caller_slot is not None:
            if max_caller_live is None:
                raise ValueError("a call with a caller slot needs max_caller_live")
            items.append(self._join_caller(record, max_live=max_caller_live, at=at))
            refusals.append(SeatResult.CALLER_LIMIT)
        if record.profile_id is not None:
            items.append(self._take_line_seat(record.profile_id, max_line_active, at=at))
            refusals.append(SeatResult.LINE_FULL)
        try:
            self._transact(items)
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes is None or len(codes) < len(items):
                raise
            if codes[0] == _CONDITION_FAILED:
                old = failed_item(error, 0)
                existing = record_from_item(old) if old else self.require_call(record.call_sid)
                raise CallAlreadyExists(existing) from None
            return _refusal(codes[1:], refusals, error)
        return SeatResult.TAKEN

    def _take_line_seat(self, profile_id: str, max_line_active: int | None, *, at: datetime) -> dict[str, Any]:
        if max_line_active is None:
            raise ValueError("a call of a profile's line needs max_line_active")
        return self._move_counter(1, at=at, max_active=max_line_active, line=profile_id)

    def seat_call(
        self,
        call_sid: str,
        *,
        stream_token_expiry: int,
        max_active: int,
        profile_id: str | None = None,
        max_line_active: int | None = None,
    ) -> SeatResult:
        """Admit an existing, still undecided record (an answered outbound call): store its stream token expiry and
        take a seat (and, with `profile_id`, the record's own, a seat of that line), atomically. Nothing is written
        when the call was already decided or no seat is free."""
        condition = (
            "attribute_exists(pk) AND attribute_not_exists(stream_token_expiry) AND attribute_not_exists(outcome)"
        )
        values: dict[str, Any] = {":expiry": {"N": str(stream_token_expiry)}}
        if profile_id is not None:
            # The record must name the same line, or release_seat would give back a seat of another line.
            condition += " AND profile_id = :profile"
            values[":profile"] = {"S": profile_id}
        update = {
            "Update": {
                "TableName": self.table_name,
                "Key": record_key(call_sid),
                "UpdateExpression": "SET stream_token_expiry = :expiry",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        at = utc_now()
        items = [update, self._move_counter(1, at=at, max_active=max_active)]
        refusals = [SeatResult.FULL]
        if profile_id is not None:
            items.append(self._take_line_seat(profile_id, max_line_active, at=at))
            refusals.append(SeatResult.LINE_FULL)
        try:
            self._transact(items)
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes is None or len(codes) < len(items):
                raise
            if codes[0] == _CONDITION_FAILED:
                if failed_item(error, 0) is None:
                    raise CallNotFound(call_sid) from None
                return SeatResult.ALREADY_DECIDED
            return _refusal(codes[1:], refusals, error)
        return SeatResult.TAKEN

    def release_seat(self, call_sid: str, at: datetime | None = None) -> bool:
        """Give back the seat a call took (and its place among its caller's live calls), once: True for the request
        that released it, False when the call never had a seat or another request already gave it back."""
        record = self.get_call(call_sid)
        if record is None or record.stream_token_expiry is None or record.seat_released_at is not None:
            return False
        at = at or utc_now()
        mark = {
            "Update": {
                "TableName": self.table_name,
                "Key": record_key(call_sid),
                "UpdateExpression": "SET seat_released_at = :at",
                "ConditionExpression": (
                    "attribute_exists(stream_token_expiry) AND attribute_not_exists(seat_released_at)"
                ),
                "ExpressionAttributeValues": serialize_item({":at": at}),
            }
        }
        items = [mark, self._move_counter(-1, at=at)]
        if record.caller_slot is not None:
            items.append(self._leave_caller(record.caller_slot, call_sid))
        if record.profile_id is not None:
            items.append(self._move_counter(-1, at=at, line=record.profile_id))
        try:
            self._transact(items)
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes and codes[0] == _CONDITION_FAILED:
                return False
            raise
        # A counter reset by hand (or a seat taken before seats were tracked on the record) must not go negative.
        self._clamp_active_calls()
        if record.profile_id is not None:
            self._clamp_active_calls(record.profile_id)
        return True

    def adjust_active_calls(self, delta: int) -> int:
        """Add `delta` to the fleet counter outside any call's transaction (an operator's correction); returns the new
        value, never below zero. Calls never use this: their seats move with their records."""
        update = self._move_counter(delta, at=utc_now())["Update"]
        response = self.client.update_item(**update, ReturnValues="UPDATED_NEW")
        value = int(response["Attributes"]["active"]["N"])
        if value < 0:
            self._clamp_active_calls()
            value = 0
        return value

    def _clamp_active_calls(self, line: str | None = None) -> None:
        self._update_unless_condition_fails(
            Key=_counter_key(line),
            UpdateExpression="SET active = :zero",
            ConditionExpression="active < :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )

    def active_calls(self, line: str | None = None) -> int:
        """Live calls holding a seat: of the fleet, or with `line` (a profile id) of that line."""
        return max(0, self.seat_counter(line).active)

    def seat_counter(self, line: str | None = None) -> SeatCounter:
        response = self.client.get_item(TableName=self.table_name, Key=_counter_key(line), ConsistentRead=True)
        data = deserialize_item(response.get("Item") or {})
        changed_at = data.get("changed_at")
        return SeatCounter(
            active=int(data.get("active", 0)),
            version=int(data.get("version", 0)),
            changed_at=datetime.fromisoformat(changed_at) if isinstance(changed_at, str) else None,
        )

    def caller_live_calls(self, slot: str) -> set[str]:
        """The CallSids holding places among the live calls of `slot` (a caller's hash, or WITHHELD_SLOT)."""
        response = self.client.get_item(TableName=self.table_name, Key=live_calls_key(slot), ConsistentRead=True)
        live = deserialize_item(response.get("Item") or {}).get("live")
        return {str(sid) for sid in live} if isinstance(live, set) else set()

    def count_held_seats(self, days: Iterable[str]) -> int:
        """How many calls that started on these UTC days hold a seat (admitted, not given back), by their records.
        Read through the by-day index, which lags writes by a moment: see `correct_active_calls`."""
        pages = self._pages_of_days(
            days,
            FilterExpression="attribute_exists(stream_token_expiry) AND attribute_not_exists(seat_released_at)",
            Select="COUNT",
        )
        return sum(int(page.get("Count", 0)) for page in pages)

    def count_held_line_seats(self, days: Iterable[str]) -> dict[str, int]:
        """Per business line (profile id) with a call that started on these UTC days: how many of its calls hold a
        seat, by their records (the by-day index: see `correct_active_calls`)."""
        held: dict[str, int] = {}
        pages = self._pages_of_days(
            days,
            FilterExpression="attribute_exists(profile_id)",
            ProjectionExpression="profile_id, stream_token_expiry, seat_released_at",
        )
        for page in pages:
            for item in page.get("Items", []):
                line = item["profile_id"]["S"]
                holds = "stream_token_expiry" in item and "seat_released_at" not in item
                held[line] = held.get(line, 0) + int(holds)
        return held

    def _pages_of_days(self, days: Iterable[str], **query: Any) -> Iterator[Any]:
        """The by-day index's pages of the calls that started on these UTC days."""
        paginator = self.client.get_paginator("query")
        for day in days:
            yield from paginator.paginate(
                TableName=self.table_name,
                IndexName=BY_DAY_INDEX,
                KeyConditionExpression="gsi1pk = :day",
                ExpressionAttributeValues={":day": {"S": day_pk(day)}},
                **query,
            )

    def correct_active_calls(self, counted: int, *, seen: SeatCounter, line: str | None = None) -> bool:
        """Set the fleet counter (or with `line` that line's) to `counted` (the seats the records hold), unless a
        seat was taken or given back since `seen` was read, which would make the count stale. True when the counter
        was corrected."""
        condition = "version = :seen" if seen.version else "attribute_not_exists(version)"
        values = serialize_item({":counted": counted, ":at": utc_now()})
        if seen.version:
            values[":seen"] = {"N": str(seen.version)}
        return self._update_unless_condition_fails(
            Key=_counter_key(line),
            UpdateExpression="SET active = :counted, changed_at = :at",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )


def _refusal(codes: list[str], refusals: list[SeatResult], error: ClientError) -> SeatResult:
    """Which seat condition refused a transaction (`codes` and `refusals` in the order of the items after the record);
    re-raises when none did."""
    for code, refusal in zip(codes, refusals, strict=False):
        if code == _CONDITION_FAILED:
            return refusal
    raise error
