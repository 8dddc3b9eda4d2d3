"""DynamoDB single-table access: call records, transcript turns, bookings and the little shared state of the fleet.

Key design (one table, `pk`/`sk` strings):

| item | pk | sk | by_day GSI (gsi1pk / gsi1sk) |
| --- | --- | --- | --- |
| call record | `CALL#<CallSid>` | `RECORD` | `DAY#<YYYY-MM-DD>` / `<created_at ISO>#<CallSid>` |
| transcript turn | `CALL#<CallSid>` | `TURN#<index, 6 digits>` | - |
| booking | `BOOKING#<YYYY-MM-DD>` | `SLOT#<HH:MM>` | - |
| fleet counter | `FLEET` | `ACTIVE_CALLS` | - |
| relay health (operator mark) | `FLEET` | `RELAY_HEALTH` | - |
| relay heartbeat (the freshest of any task) | `FLEET` | `RELAY_HEARTBEAT` | - |
| outbound idempotency key | `IDEMPOTENCY#<key>` | `REQUEST` | - |

Agent seats: the `ACTIVE_CALLS` counter moves only inside a transaction with the call record, so the counter and the
records agree: a seat is taken together with the stream token (`admit_call`, `seat_call`) under the condition
`active < max`, and given back together with `seat_released_at` (`release_seat`), at most once per call.

Every write that must happen once is a conditional write, so retried webhooks, duplicated callbacks and a relay that
retries after a timeout never double anything.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, TypeAdapter, ValidationError

from callcore.aws import dynamodb_client
from callcore.dynamo_types import deserialize, serialize
from callcore.models import Booking, CallAnalysis, CallRecord, CallStatus, TranscriptTurn, utc_now

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
ACTIVE_CALLS_SK = "ACTIVE_CALLS"
RELAY_HEALTH_SK = "RELAY_HEALTH"
RELAY_HEARTBEAT_SK = "RELAY_HEARTBEAT"
# Every relay process writes its heartbeat this often while it takes calls; admission wants one newer than
# RELAY_HEARTBEAT_MAX_AGE (three missed beats: a relay that stopped, or cannot reach DynamoDB, or all draining).
RELAY_HEARTBEAT_INTERVAL = timedelta(seconds=10)
RELAY_HEARTBEAT_MAX_AGE = timedelta(seconds=30)
IDEMPOTENCY_SK = "REQUEST"
# Conflicts on the one counter item come in bursts (many calls starting or ending together): six tries with jittered
# backoff (at most ~0.6 s in all) before the error surfaces.
TRANSACTION_ATTEMPTS = 6
TRANSACTION_BACKOFF_SECONDS = 0.02


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


def _cancellation_codes(error: ClientError) -> list[str] | None:
    """Per-item reason codes of a cancelled transaction (`None` when the error is not a cancellation)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons: list[Mapping[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return [str(reason.get("Code") or "None") for reason in reasons]


def _failed_item(error: ClientError, index: int) -> Mapping[str, Any] | None:
    reasons: list[Mapping[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    if index < len(reasons):
        item: Mapping[str, Any] | None = reasons[index].get("Item")
        return item
    return None


class SeatResult(Enum):
    """What `seat_call` did."""

    TAKEN = "taken"  # the stream token and a seat were stored together
    FULL = "full"  # MAX_CONCURRENT_CALLS calls are live: nothing was written
    ALREADY_DECIDED = "already_decided"  # an earlier request decided this call: nothing was written


class IdempotencyState(Enum):
    IN_PROGRESS = "in_progress"  # a request holds the key and is doing the work
    DONE = "done"  # the work succeeded: `result` is what it answered
    RELEASED = "released"  # the work failed before it took effect: the key may be claimed again
    UNKNOWN = "unknown"  # the work may or may not have taken effect (no answer from upstream): never redone


@dataclass(frozen=True)
class IdempotencyClaim:
    """An idempotency key as found (or just created): `claimed` is True when this request now holds it."""

    claimed: bool
    request_hash: str
    state: IdempotencyState
    result: dict[str, str] | None = None
    claimed_at: datetime | None = None


def _call_item(record: CallRecord) -> dict[str, Any]:
    return _serialize(
        {
            "pk": call_pk(record.call_sid),
            "sk": RECORD_SK,
            "entity": "call",
            "gsi1pk": f"DAY#{record.day}",
            "gsi1sk": f"{record.created_at.astimezone(UTC).isoformat()}#{record.call_sid}",
            **record.model_dump(),
        }
    )


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
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_call_item(record),
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

    def claim_transfer(
        self, call_sid: str, *, reason: str, summary: str, lease: timedelta, at: datetime | None = None
    ) -> bool:
        """Start a transfer once: True for this request, False while another one holds the claim or after success.

        Stores the reason and summary with the claim: the whisper URL is fetched when the human answers and must find
        the summary. `release_transfer` undoes the claim when the transfer failed, so a later request can try again.
        A claim older than `lease` belongs to an attempt that died (crash, timeout) without releasing it: it may be
        taken over. Timestamps are stored as UTC ISO strings, which sort in time order, so `<` compares times.
        """
        now = at or utc_now()
        return self._update_if(
            call_sid,
            {"transfer_requested_at": now, "transfer_reason": reason, "transfer_summary": summary},
            condition=(
                "attribute_not_exists(transfer_target) "
                "AND (attribute_not_exists(transfer_requested_at) OR transfer_requested_at < :stale)"
            ),
            extra_values={":stale": now - lease},
        )

    def release_transfer(self, call_sid: str) -> None:
        """Undo a failed transfer's claim and everything it stored, so the record says no transfer happened."""
        self.update_call(
            call_sid,
            {"transfer_requested_at": None, "transfer_reason": None, "transfer_summary": None, "transfer_target": None},
        )

    def mark_finished(self, call_sid: str, at: datetime | None = None) -> CallRecord:
        """Record that the end-of-call work is done; until then a repeated terminal callback runs it again."""
        return self.update_call(call_sid, {"finished_at": at or utc_now()}, only_if_unset=("finished_at",))

    def _update_if(
        self,
        call_sid: str,
        changes: Mapping[str, Any],
        *,
        condition: str,
        extra_values: Mapping[str, Any] | None = None,
        keep_existing: tuple[str, ...] = (),
        add: Mapping[str, Decimal] | None = None,
    ) -> bool:
        """Update an existing record only if `condition` holds: False when it does not, CallNotFound for no record."""
        try:
            self._update(
                call_sid,
                changes,
                condition=f"attribute_exists(pk) AND {condition}",
                extra_values=extra_values,
                keep_existing=keep_existing,
                add=add,
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
        add: Mapping[str, Decimal] | None = None,
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
        # Numbers added in place (the same write as the other changes): `field = field + delta`, from 0 when unset.
        for j, (field, delta) in enumerate((add or {}).items()):
            names[f"#a{j}"] = field
            values[f":a{j}"] = delta
            values[":zero"] = Decimal(0)
            sets.append(f"#a{j} = if_not_exists(#a{j}, :zero) + :a{j}")
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

    def list_calls_by_day(
        self, day: str, *, limit: int = 100, start: dict[str, Any] | None = None, newest_first: bool = False
    ) -> CallPage:
        """Calls that started on a UTC day (`YYYY-MM-DD`), oldest first (or newest first), a page at a time."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_DAY_INDEX,
            "KeyConditionExpression": "gsi1pk = :day",
            "ExpressionAttributeValues": {":day": {"S": f"DAY#{day}"}},
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        calls = [_record_from_item(item) for item in response.get("Items", [])]
        return CallPage(calls=calls, next_token=response.get("LastEvaluatedKey"))

    def record_analysis(self, call_sid: str, analysis: CallAnalysis) -> bool:
        """Store the post-call analysis and add its cost to the call's, once: False (nothing written) when the call
        already has an analysis, so a repeated event never adds the cost twice. CallNotFound for no record."""
        return self._update_if(
            call_sid,
            {"analysis": analysis},
            condition="attribute_not_exists(analysis)",
            add={"estimated_cost_usd": analysis.cost_usd},
        )

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

    # ---- idempotency keys of client requests (POST /calls) -------------------------------------------------------

    def claim_idempotency_key(
        self, key: str, *, request_hash: str, ttl: timedelta, now: datetime | None = None
    ) -> IdempotencyClaim:
        """Hold `key` for this request, or say who holds it. A key that expired (its TTL item not yet deleted by
        DynamoDB, which can take days) or was released by a failed request is claimed anew."""
        now = now or utc_now()
        item = _serialize(
            {
                "pk": f"IDEMPOTENCY#{key}",
                "sk": IDEMPOTENCY_SK,
                "entity": "idempotency",
                "request_hash": request_hash,
                "state": IdempotencyState.IN_PROGRESS.value,
                "claimed_at": now,
                TTL_ATTRIBUTE: int((now + ttl).timestamp()),
            }
        )
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #ttl < :now OR #state = :released",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE, "#state": "state"},
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now.timestamp()))},
                    ":released": {"S": IdempotencyState.RELEASED.value},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise
            old: Mapping[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
            data = _deserialize(old)
            result = data.get("result")
            claimed_at = data.get("claimed_at")
            return IdempotencyClaim(
                claimed=False,
                request_hash=str(data.get("request_hash", "")),
                state=IdempotencyState(data.get("state", IdempotencyState.IN_PROGRESS.value)),
                result={str(k): str(v) for k, v in result.items()} if isinstance(result, dict) else None,
                claimed_at=datetime.fromisoformat(claimed_at) if isinstance(claimed_at, str) else None,
            )
        return IdempotencyClaim(
            claimed=True, request_hash=request_hash, state=IdempotencyState.IN_PROGRESS, claimed_at=now
        )

    def complete_idempotency_key(self, key: str, result: Mapping[str, str]) -> None:
        """Store what the request that holds `key` answered; a retry with the key gets the same."""
        self.client.update_item(
            TableName=self.table_name,
            Key=_serialize({"pk": f"IDEMPOTENCY#{key}", "sk": IDEMPOTENCY_SK}),
            UpdateExpression="SET #state = :done, #result = :result",
            ExpressionAttributeNames={"#state": "state", "#result": "result"},
            ExpressionAttributeValues=_serialize({":done": IdempotencyState.DONE.value, ":result": dict(result)}),
        )

    def release_idempotency_key(self, key: str) -> None:
        """The request holding `key` failed before it took effect: let a retry with the key try again. (An update,
        not a delete: the roles that claim keys hold no DeleteItem.)"""
        self._settle_idempotency_key(key, IdempotencyState.RELEASED)

    def mark_idempotency_unknown(self, key: str) -> None:
        """The request holding `key` cannot tell whether it took effect: a retry with the key is told so, and does
        not do the work again."""
        self._settle_idempotency_key(key, IdempotencyState.UNKNOWN)

    def _settle_idempotency_key(self, key: str, state: IdempotencyState) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": f"IDEMPOTENCY#{key}", "sk": IDEMPOTENCY_SK}),
                UpdateExpression="SET #state = :state",
                ConditionExpression="#state = :in_progress",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":state": {"S": state.value},
                    ":in_progress": {"S": IdempotencyState.IN_PROGRESS.value},
                },
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    # ---- fleet state: how many calls are live, whether the relay is healthy ---------------------------------------

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retried when it only collided with a concurrent transaction on the same item (the
        counter is one item every admission touches): botocore does not retry `TransactionConflict` by itself."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
                return
            except ClientError as error:
                codes = _cancellation_codes(error)
                retry = codes is not None and "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes
                if not retry or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, TRANSACTION_BACKOFF_SECONDS * 2**attempt))  # noqa: S311

    def _take_seat(self, max_active: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _serialize({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK}),
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
                "Item": _call_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        try:
            self._transact([put, self._take_seat(max_active)])
        except ClientError as error:
            codes = _cancellation_codes(error)
            if codes is None or len(codes) < 2:
                raise
            if codes[0] == "ConditionalCheckFailed":
                old = _failed_item(error, 0)
                existing = _record_from_item(old) if old else self.require_call(record.call_sid)
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
                "Key": _serialize({"pk": call_pk(call_sid), "sk": RECORD_SK}),
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
            codes = _cancellation_codes(error)
            if codes is None or len(codes) < 2:
                raise
            if codes[0] == "ConditionalCheckFailed":
                if _failed_item(error, 0) is None:
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
                "Key": _serialize({"pk": call_pk(call_sid), "sk": RECORD_SK}),
                "UpdateExpression": "SET seat_released_at = :at",
                "ConditionExpression": (
                    "attribute_exists(stream_token_expiry) AND attribute_not_exists(seat_released_at)"
                ),
                "ExpressionAttributeValues": _serialize({":at": at or utc_now()}),
            }
        }
        give_back = {
            "Update": {
                "TableName": self.table_name,
                "Key": _serialize({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK}),
                "UpdateExpression": "ADD active :minus_one",
                "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
            }
        }
        try:
            self._transact([mark, give_back])
        except ClientError as error:
            codes = _cancellation_codes(error)
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
            Key=_serialize({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK}),
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
                Key=_serialize({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK}),
                UpdateExpression="SET active = :zero",
                ConditionExpression="active < :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    def active_calls(self) -> int:
        response = self.client.get_item(
            TableName=self.table_name, Key=_serialize({"pk": FLEET_PK, "sk": ACTIVE_CALLS_SK}), ConsistentRead=True
        )
        item = response.get("Item")
        return max(0, int(item["active"]["N"])) if item and "active" in item else 0

    def set_relay_health(self, healthy: bool, *, reason: str = "", until: datetime | None = None) -> None:
        """Mark the relay fleet healthy or not (an alarm action or an operator sets this); `until` bounds a mark."""
        data: dict[str, Any] = {
            "pk": FLEET_PK,
            "sk": RELAY_HEALTH_SK,
            "healthy": healthy,
            "reason": reason,
            "updated_at": utc_now(),
        }
        if until is not None:
            data["until"] = until
        self.client.put_item(TableName=self.table_name, Item=_serialize(data))

    def record_heartbeat(self, task_id: str, *, at: datetime | None = None) -> None:
        """A relay process says it is up and taking calls. One item holds the freshest beat of any task (admission
        reads it with one GetItem); a beat older than the stored one (a task whose clock lags) changes nothing."""
        at = at or utc_now()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": FLEET_PK, "sk": RELAY_HEARTBEAT_SK}),
                UpdateExpression="SET #at = :at, task_id = :task",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues=_serialize({":at": at, ":task": task_id}),
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    def last_heartbeat(self) -> datetime | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=_serialize({"pk": FLEET_PK, "sk": RELAY_HEARTBEAT_SK}), ConsistentRead=False
        )
        item = response.get("Item")
        at = _deserialize(item).get("at") if item else None
        return datetime.fromisoformat(at) if isinstance(at, str) else None

    def relay_is_healthy(self, *, now: datetime | None = None) -> bool:
        """False when an operator (or an alarm) marked the relay unhealthy and that mark has not expired, or when no
        relay process has sent a heartbeat within RELAY_HEARTBEAT_MAX_AGE."""
        now = now or utc_now()
        if self._marked_unhealthy(now):
            return False
        last = self.last_heartbeat()
        return last is not None and now - last <= RELAY_HEARTBEAT_MAX_AGE

    def _marked_unhealthy(self, now: datetime) -> bool:
        response = self.client.get_item(
            TableName=self.table_name, Key=_serialize({"pk": FLEET_PK, "sk": RELAY_HEALTH_SK}), ConsistentRead=False
        )
        item = response.get("Item")
        if not item:
            return False
        data = _deserialize(item)
        if data.get("healthy", True):
            return False
        until = data.get("until")
        if not until:
            return True
        # Operators write this by hand (DEPLOY.md): a time without a zone is read as UTC rather than refused.
        expires = datetime.fromisoformat(str(until))
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        return expires > now
