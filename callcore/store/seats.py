"""Agent seats: the fleet's live-call counter (`FLEET` / `ACTIVE_CALLS`).

The counter moves only inside a transaction with a call record, so the counter and the records agree: a seat is taken
together with the stream token (`admit_call`, `seat_call`) under the condition `active < max`, and given back together
with `seat_released_at` (`release_seat`), at most once per call.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from callcore.models import CallRecord, utc_now
from callcore.store.calls import CallRecords, call_item, record_from_item, record_key
from callcore.store.errors import CallAlreadyExists, CallNotFound
from callcore.store.keys import ACTIVE_CALLS_SK, FLEET_PK
from callcore.store.table import cancellation_codes, failed_item, serialize_item

COUNTER_KEY = serialize_item({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK})


class SeatResult(Enum):
    """What `seat_call` did."""

    TAKEN = "taken"  # the stream token and a seat were stored together
    FULL = "full"  # MAX_CONCURRENT_CALLS calls are live: nothing was written
    ALREADY_DECIDED = "already_decided"  # an earlier request decided this call: nothing was written


class Seats(CallRecords):
    """Take and give back agent seats, always in one transaction with the call record."""

    def _take_seat(self, max_active: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": COUNTER_KEY,
                "UpdateExpression": "ADD active :one",
                "ConditionExpression": "attribute_not_exists(active) OR active < :max",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":max": {"N": str(max_active)}},
            }
        }

    def admit_call(self, record: CallRecord, *, max_active: int) -> bool:
        """Create the record of a call admitted to the agent (it carries its stream token) and take a seat, atomically.

        True: both written. False: all `max_active` seats are taken and nothing was written (store the call as an
        overflow with `create_call`). CallAlreadyExists (nothing written): a retried webhook, with the first record.
        """
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": call_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        try:
            self._transact([put, self._take_seat(max_active)])
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes is None or len(codes) < 2:
                raise
            if codes[0] == "ConditionalCheckFailed":
                old = failed_item(error, 0)
                existing = record_from_item(old) if old else self.require_call(record.call_sid)
                raise CallAlreadyExists(existing) from None
            if codes[1] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def seat_call(self, call_sid: str, *, stream_token_expiry: int, max_active: int) -> SeatResult:
        """Admit an existing, still undecided record (an answered outbound call): store its stream token expiry and
        take a seat, atomically. Nothing is written when the call was already decided or no seat is free."""
        update = {
            "Update": {
                "TableName": self.table_name,
                "Key": record_key(call_sid),
                "UpdateExpression": "SET stream_token_expiry = :expiry",
                "ConditionExpression": (
                    "attribute_exists(pk) AND attribute_not_exists(stream_token_expiry) "
                    "AND attribute_not_exists(outcome)"
                ),
                "ExpressionAttributeValues": {":expiry": {"N": str(stream_token_expiry)}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        try:
            self._transact([update, self._take_seat(max_active)])
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes is None or len(codes) < 2:
                raise
            if codes[0] == "ConditionalCheckFailed":
                if failed_item(error, 0) is None:
                    raise CallNotFound(call_sid) from None
                return SeatResult.ALREADY_DECIDED
            if codes[1] == "ConditionalCheckFailed":
                return SeatResult.FULL
            raise
        return SeatResult.TAKEN

    def release_seat(self, call_sid: str, at: datetime | None = None) -> bool:
        """Give back the seat a call took, once: True for the request that released it, False when the call never
        had a seat or another request (the transfer, a repeated status callback) already gave it back."""
        mark = {
            "Update": {
                "TableName": self.table_name,
                "Key": record_key(call_sid),
                "UpdateExpression": "SET seat_released_at = :at",
                "ConditionExpression": (
                    "attribute_exists(stream_token_expiry) AND attribute_not_exists(seat_released_at)"
                ),
                "ExpressionAttributeValues": serialize_item({":at": at or utc_now()}),
            }
        }
        give_back = {
            "Update": {
                "TableName": self.table_name,
                "Key": COUNTER_KEY,
                "UpdateExpression": "ADD active :minus_one",
                "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
            }
        }
        try:
            self._transact([mark, give_back])
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes and codes[0] == "ConditionalCheckFailed":
                return False
            raise
        # A counter reset by hand (or a seat taken before seats were tracked on the record) must not go negative.
        self._clamp_active_calls()
        return True

    def adjust_active_calls(self, delta: int) -> int:
        """Atomically add `delta` to the fleet's live-call counter; returns the new value (never below zero)."""
        response = self.client.update_item(
            TableName=self.table_name,
            Key=COUNTER_KEY,
            UpdateExpression="ADD active :d",
            ExpressionAttributeValues={":d": {"N": str(delta)}},
            ReturnValues="UPDATED_NEW",
        )
        value = int(response["Attributes"]["active"]["N"])
        if value < 0:
            # A terminal callback for a call counted before a deploy reset, or a lost increment: clamp, don't drift.
            self._clamp_active_calls()
            value = 0
        return value

    def _clamp_active_calls(self) -> None:
        self._update_unless_condition_fails(
            Key=COUNTER_KEY,
            UpdateExpression="SET active = :zero",
            ConditionExpression="active < :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )

    def active_calls(self) -> int:
        response = self.client.get_item(TableName=self.table_name, Key=COUNTER_KEY, ConsistentRead=True)
        item = response.get("Item")
        return max(0, int(item["active"]["N"])) if item and "active" in item else 0
