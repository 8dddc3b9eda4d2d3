"""DynamoDB single-table access: call records, transcript turns, bookings and the little shared state of the fleet.

Key design (one table, `pk`/`sk` strings):

| item | pk | sk | by_day GSI (gsi1pk / gsi1sk) |
| --- | --- | --- | --- |
| call record | `CALL#<CallSid>` | `RECORD` | `DAY#<YYYY-MM-DD>` / `<created_at ISO>#<CallSid>` |
| transcript turn | `CALL#<CallSid>` | `TURN#<index, 6 digits>` | - |
| booking | `BOOKING#<YYYY-MM-DD>` | `SLOT#<HH:MM>` | - |
| fleet counter | `FLEET` | `ACTIVE_CALLS` | - |
| relay health | `FLEET` | `RELAY_HEALTH` | - |

Every write that must happen once is a conditional write, so retried webhooks, duplicated callbacks and a relay that
retries after a timeout never double anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, TypeAdapter, ValidationError

from callcore.aws import dynamodb_client
from callcore.dynamo_types import deserialize, serialize
from callcore.models import Booking, CallRecord, CallStatus, TranscriptTurn, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Key schema: the table's and the by-day index's attribute names (infra/ provisions the table from these).
PARTITION_KEY = "pk"
SORT_KEY = "sk"
BY_DAY_PARTITION_KEY = "gsi1pk"
BY_DAY_SORT_KEY = "gsi1sk"
BY_DAY_INDEX = "by_day"
TTL_ATTRIBUTE = "expires_at"
RECORD_SK = "RECORD"
FLEET_PK = "FLEET"


class StoreError(Exception):
    """Base of the store's refusals."""


class CallAlreadyExists(StoreError):
    def __init__(self, existing: CallRecord) -> None:
        super().__init__(f"call {existing.call_sid} already exists")
        self.existing = existing


class CallNotFound(StoreError):
    def __init__(self, call_sid: str) -> None:
        super().__init__(f"no call record for {call_sid}")
        self.call_sid = call_sid


class SlotTaken(StoreError):
    def __init__(self, day: str, time: str) -> None:
        super().__init__(f"{day} {time} is already booked")


def call_pk(call_sid: str) -> str:
    return f"CALL#{call_sid}"


def turn_sk(index: int) -> str:
    return f"TURN#{index:06d}"


def _to_attr(value: Any) -> Any:
    """Python/pydantic values -> what the serializer accepts (no floats, ISO timestamps, enum values)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, BaseModel):
        return _to_attr(value.model_dump())
    if isinstance(value, Mapping):
        return {k: _to_attr(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_attr(v) for v in value]
    return value


def _from_attr(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: integral ones become int so pydantic int fields take them strictly."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: _from_attr(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_attr(v) for v in value]
    return value


def _serialize(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: serialize(_to_attr(v)) for k, v in data.items() if v is not None}


def _deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_attr(deserialize(v)) for k, v in item.items()}


_KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", TTL_ATTRIBUTE, "entity"})


def _record_from_item(item: Mapping[str, Any]) -> CallRecord:
    data = {k: v for k, v in _deserialize(item).items() if k not in _KEY_ATTRIBUTES}
    return CallRecord.model_validate(data)


@cache
def _field_adapter(name: str) -> TypeAdapter[Any]:
    field = CallRecord.model_fields[name]
    annotated: Any = Annotated[field.annotation, field]
    return TypeAdapter(annotated)


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class CallPage:
    calls: list[CallRecord]
    next_token: dict[str, Any] | None


class CallStore:
    """The data layer. Handlers and the relay never build DynamoDB requests themselves."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        # Resolved lazily so a store can be built at import time (Lambda init) before credentials are needed.
        if self._client is None:
            self._client = dynamodb_client()
        return self._client

    # ---- call records -------------------------------------------------------------------------------------------

    def create_call(self, record: CallRecord) -> CallRecord:
        """Create the record once. A second create (a retried webhook) raises CallAlreadyExists with the first one."""
        item = _serialize(
            {
                "pk": call_pk(record.call_sid),
                "sk": RECORD_SK,
                "entity": "call",
                "gsi1pk": f"DAY#{record.day}",
                "gsi1sk": f"{record.created_at.astimezone(UTC).isoformat()}#{record.call_sid}",
                **record.model_dump(),
            }
        )
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                old: Mapping[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                existing = _record_from_item(old) if old else self.require_call(record.call_sid)
                raise CallAlreadyExists(existing) from None
            raise
        return record

    def get_call(self, call_sid: str, *, consistent: bool = True) -> CallRecord | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=_serialize({"pk": call_pk(call_sid), "sk": RECORD_SK}),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return _record_from_item(item) if item else None

    def require_call(self, call_sid: str) -> CallRecord:
        record = self.get_call(call_sid)
        if record is None:
            raise CallNotFound(call_sid)
        return record

    def apply_status(
        self,
        call_sid: str,
        status: CallStatus,
        sequence_number: int,
        *,
        at: datetime | None = None,
        duration_seconds: int | None = None,
    ) -> bool:
        """Apply a Twilio status callback only if it is newer than the last one applied.

        Returns False (and changes nothing) for a duplicate or a late arrival; raises CallNotFound for an unknown call.
        """
        at = at or utc_now()
        changes: dict[str, Any] = {"status": status, "status_sequence": sequence_number}
        if status is CallStatus.IN_PROGRESS:
            changes["answered_at"] = at
        if status.is_terminal:
            changes["ended_at"] = at
            if duration_seconds is not None:
                changes["duration_seconds"] = duration_seconds
        return self._update_if(
            call_sid,
            changes,
            condition="status_sequence < :seq",
            extra_values={":seq": sequence_number},
            keep_existing=("answered_at",),
        )

    def claim_stream(self, call_sid: str, stream_sid: str) -> bool:
        """Admit exactly one media stream per call: True the first time, False for any later stream."""
        return self._update_if(call_sid, {"stream_sid": stream_sid}, condition="attribute_not_exists(stream_sid)")

    def claim_transfer(self, call_sid: str, *, reason: str, summary: str, at: datetime | None = None) -> bool:
        """Start a transfer once: True for the first request, False while (or after) another one is under way.

        Stores the reason and summary with the claim: the whisper URL is fetched when the human answers and must find
        the summary. `release_transfer` undoes the claim when the transfer failed, so a later request can try again.
        """
        return self._update_if(
            call_sid,
            {"transfer_requested_at": at or utc_now(), "transfer_reason": reason, "transfer_summary": summary},
            condition="attribute_not_exists(transfer_requested_at)",
        )

    def release_transfer(self, call_sid: str) -> None:
        self.update_call(call_sid, {"transfer_requested_at": None})

    def _update_if(
        self,
        call_sid: str,
        changes: Mapping[str, Any],
        *,
        condition: str,
        extra_values: Mapping[str, Any] | None = None,
        keep_existing: tuple[str, ...] = (),
    ) -> bool:
        """Update an existing record only if `condition` holds: False when it does not, CallNotFound for no record."""
        try:
            self._update(
                call_sid,
                changes,
                condition=f"attribute_exists(pk) AND {condition}",
                extra_values=extra_values,
                keep_existing=keep_existing,
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                if error.response.get("Item") is None:  # ALL_OLD is empty: there was no record at all
                    raise CallNotFound(call_sid) from None
                return False
            raise
        return True

    def update_call(
        self, call_sid: str, changes: Mapping[str, Any], *, only_if_unset: tuple[str, ...] = ()
    ) -> CallRecord:
        """Set fields of an existing record and return the record as stored afterwards.

        `changes` uses CallRecord field names and is validated against the model first, so nothing but a valid
        record can be written. Fields named in `only_if_unset` keep an earlier value (e.g. an outcome of
        `transferred` set by the transfer endpoint is not overwritten by the relay's `caller_hung_up`).
        """
        unknown = set(changes) - set(CallRecord.model_fields)
        if unknown:
            raise ValueError(f"not call record fields: {sorted(unknown)}")
        # Validate each value with the model's own field rules; write what validation produced (enums, not strings).
        validated: dict[str, Any] = {}
        for name, value in changes.items():
            try:
                validated[name] = _field_adapter(name).validate_python(value)
            except ValidationError as error:
                problem = error.errors(include_url=False)[0]["msg"]
                raise ValueError(f"call record field {name!r}: {problem}") from None
        try:
            attributes = self._update(
                call_sid, validated, condition="attribute_exists(pk)", keep_existing=only_if_unset
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise CallNotFound(call_sid) from None
            raise
        return _record_from_item(attributes)

    def _update(
        self,
        call_sid: str,
        changes: Mapping[str, Any],
        *,
        condition: str,
        extra_values: Mapping[str, Any] | None = None,
        keep_existing: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = dict(extra_values or {})
        sets: list[str] = []
        removes: list[str] = []
        for i, (field, value) in enumerate(changes.items()):
            names[f"#f{i}"] = field
            if value is None:
                removes.append(f"#f{i}")
                continue
            values[f":v{i}"] = value
            if field in keep_existing:
                sets.append(f"#f{i} = if_not_exists(#f{i}, :v{i})")
            else:
                sets.append(f"#f{i} = :v{i}")
        expression = ""
        if sets:
            expression += "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _serialize({"pk": call_pk(call_sid), "sk": RECORD_SK}),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:  # DynamoDB rejects an empty ExpressionAttributeValues
            kwargs["ExpressionAttributeValues"] = _serialize(values)
        response = self.client.update_item(**kwargs)
        return dict(response.get("Attributes", {}))

    def list_calls_by_day(self, day: str, *, limit: int = 100, start: dict[str, Any] | None = None) -> CallPage:
        """Calls that started on a UTC day (`YYYY-MM-DD`), oldest first, a page at a time."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_DAY_INDEX,
            "KeyConditionExpression": "gsi1pk = :day",
            "ExpressionAttributeValues": {":day": {"S": f"DAY#{day}"}},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        calls = [_record_from_item(item) for item in response.get("Items", [])]
        return CallPage(calls=calls, next_token=response.get("LastEvaluatedKey"))

    # ---- transcript turns ---------------------------------------------------------------------------------------

    def put_turn(self, turn: TranscriptTurn) -> bool:
        """Store a completed turn. Idempotent on (call, index): a repeat returns False and changes nothing."""
        item = _serialize(
            {"pk": call_pk(turn.call_sid), "sk": turn_sk(turn.index), "entity": "turn", **turn.model_dump()}
        )
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def list_turns(self, call_sid: str) -> list[TranscriptTurn]:
        return list(self._iter_turns(call_sid))

    def _iter_turns(self, call_sid: str) -> Iterator[TranscriptTurn]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
            ExpressionAttributeValues={":pk": {"S": call_pk(call_sid)}, ":turn": {"S": "TURN#"}},
            ConsistentRead=True,
        ):
            for item in page.get("Items", []):
                data = {k: v for k, v in _deserialize(item).items() if k not in _KEY_ATTRIBUTES}
                yield TranscriptTurn.model_validate(data)

    def expire_turns(self, call_sid: str, expires_at: datetime) -> int:
        """Set the TTL on a call's turn items once its transcript is safe in S3. Returns how many were marked."""
        epoch = int(expires_at.timestamp())
        count = 0
        for turn in self._iter_turns(call_sid):
            self.client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": call_pk(call_sid), "sk": turn_sk(turn.index)}),
                UpdateExpression="SET #ttl = :ttl",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":ttl": {"N": str(epoch)}},
            )
            count += 1
        return count

    # ---- bookings (the local store used when no business API is configured) --------------------------------------

    def create_booking(self, booking: Booking) -> Booking:
        item = _serialize(
            {"pk": f"BOOKING#{booking.day}", "sk": f"SLOT#{booking.time}", "entity": "booking", **booking.model_dump()}
        )
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if _is_conditional_failure(error):
                raise SlotTaken(booking.day, booking.time) from None
            raise
        return booking

    def list_bookings(self, day: str) -> list[Booking]:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"BOOKING#{day}"}},
            ConsistentRead=True,
        )
        return [
            Booking.model_validate({k: v for k, v in _deserialize(i).items() if k not in _KEY_ATTRIBUTES})
            for i in response.get("Items", [])
        ]

    # ---- fleet state: how many calls are live, whether the relay is healthy ---------------------------------------

    def adjust_active_calls(self, delta: int) -> int:
        """Atomically add `delta` to the fleet's live-call counter; returns the new value (never below zero)."""
        response = self.client.update_item(
            TableName=self.table_name,
            Key=_serialize({"pk": FLEET_PK, "sk": "ACTIVE_CALLS"}),
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
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": FLEET_PK, "sk": "ACTIVE_CALLS"}),
                UpdateExpression="SET active = :zero",
                ConditionExpression="active < :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    def active_calls(self) -> int:
        response = self.client.get_item(
            TableName=self.table_name, Key=_serialize({"pk": FLEET_PK, "sk": "ACTIVE_CALLS"}), ConsistentRead=True
        )
        item = response.get("Item")
        return max(0, int(item["active"]["N"])) if item and "active" in item else 0

    def set_relay_health(self, healthy: bool, *, reason: str = "", until: datetime | None = None) -> None:
        """Mark the relay fleet healthy or not (an alarm action or an operator sets this); `until` bounds a mark."""
        data: dict[str, Any] = {
            "pk": FLEET_PK,
            "sk": "RELAY_HEALTH",
            "healthy": healthy,
            "reason": reason,
            "updated_at": utc_now(),
        }
        if until is not None:
            data["until"] = until
        self.client.put_item(TableName=self.table_name, Item=_serialize(data))

    def relay_is_healthy(self, *, now: datetime | None = None) -> bool:
        """True unless the relay was marked unhealthy and that mark has not expired."""
        response = self.client.get_item(
            TableName=self.table_name, Key=_serialize({"pk": FLEET_PK, "sk": "RELAY_HEALTH"}), ConsistentRead=False
        )
        item = response.get("Item")
        if not item:
            return True
        data = _deserialize(item)
        if data.get("healthy", True):
            return True
        until = data.get("until")
        return bool(until and datetime.fromisoformat(until) <= (now or utc_now()))
