"""Call records: one item per call (`CALL#<CallSid>` / `RECORD`), listed by day through the `by_day` index.

Every write that must happen once is conditional, so retried webhooks, duplicated callbacks and a relay that retries
after a timeout never double anything. Seats (the live-call counter moved together with a record) are in
`callcore.store.seats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any

from botocore.exceptions import ClientError
from pydantic import TypeAdapter, ValidationError

from callcore.masking import mask_phone
from callcore.models import TERMINAL_STATUSES, CallDirection, CallRecord, CallStatus, utc_now
from callcore.store.errors import CallAlreadyExists, CallNotFound
from callcore.store.keys import BY_DAY_INDEX, RECORD_SK, TTL_ATTRIBUTE, call_pk, day_pk
from callcore.store.retention import Retention, expires_at
from callcore.store.table import (
    TableAccess,
    is_conditional_failure,
    model_fields_of,
    serialize_item,
)


def record_from_item(item: Mapping[str, Any]) -> CallRecord:
    return CallRecord.model_validate(model_fields_of(item))


def call_item(record: CallRecord, retention: Retention) -> dict[str, Any]:
    """The stored record: its keys, its by-day index entry, its TTL (the record's retention from the call's start)."""
    return serialize_item(
        {
            "pk": call_pk(record.call_sid),
            "sk": RECORD_SK,
            "entity": "call",
            "gsi1pk": day_pk(record.day),
            "gsi1sk": f"{record.created_at.astimezone(UTC).isoformat()}#{record.call_sid}",
            TTL_ATTRIBUTE: expires_at(record.created_at, timedelta(days=retention.call_record_days)),
            **record.model_dump(),
        }
    )


def record_key(call_sid: str) -> dict[str, Any]:
    return serialize_item({"pk": call_pk(call_sid), "sk": RECORD_SK})


@cache
def _field_adapter(name: str) -> TypeAdapter[Any]:
    field = CallRecord.model_fields[name]
    annotated: Any = Annotated[field.annotation, field]
    return TypeAdapter(annotated)


@dataclass(frozen=True)
class CallPage:
    calls: list[CallRecord]
    next_token: dict[str, Any] | None


class CallRecords(TableAccess):
    """Create, read and advance call records."""

    def create_call(self, record: CallRecord) -> CallRecord:
        """Create the record once. A second create (a retried webhook) raises CallAlreadyExists with the first one."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=call_item(record, self.retention),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                old: Mapping[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                existing = record_from_item(old) if old else self.require_call(record.call_sid)
                raise CallAlreadyExists(existing) from None
            raise
        return record

    def get_call(self, call_sid: str, *, consistent: bool = True) -> CallRecord | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=record_key(call_sid),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return record_from_item(item) if item else None

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

    def claim_stream(self, call_sid: str, stream_sid: str, *, at: datetime | None = None) -> bool:
        """Admit exactly one media stream per call: True the first time, False for any later stream.

        The stream's start is when the agent answered: a number's status callback reports an inbound call only once
        it ends (no `in-progress` event), so the answer time of an inbound call comes from here. An earlier answer
        time (an outbound call's `in-progress` callback) is kept."""
        return self._update_if(
            call_sid,
            {"stream_sid": stream_sid, "answered_at": at or utc_now()},
            condition="attribute_not_exists(stream_sid)",
            keep_existing=("answered_at",),
        )

    def settle_status(
        self, call_sid: str, status: CallStatus, *, ended_at: datetime, duration_seconds: int | None
    ) -> bool:
        """Record a terminal status learnt from Twilio's REST API (its callback was lost), unless the record already
        has one: a callback that arrived meanwhile wins. The sequence number is left alone, so a late callback still
        applies. False when the record was already terminal."""
        if not status.is_terminal:
            raise ValueError(f"{status.value} is not a terminal status")
        terminal = [s.value for s in sorted(TERMINAL_STATUSES)]
        names = ", ".join(f":t{i}" for i in range(len(terminal)))
        changes: dict[str, Any] = {"status": status, "ended_at": ended_at}
        if duration_seconds is not None:
            changes["duration_seconds"] = duration_seconds
        return self._update_if(
            call_sid,
            changes,
            condition=f"NOT #status IN ({names})",
            extra_names={"#status": "status"},
            extra_values={f":t{i}": value for i, value in enumerate(terminal)},
        )

    def redact_caller_number(self, call_sid: str, *, at: datetime | None = None) -> bool:
        """Replace the caller's number on the record by its masked form, once. The keyed hash (`caller_hash`) stays,
        so the call can still be found for the caller (erasure) and counted with their other calls. False when the
        number was already redacted."""
        record = self.require_call(call_sid)
        side = "from_number" if record.direction is CallDirection.INBOUND else "to_number"
        return self._update_if(
            call_sid,
            {side: mask_phone(record.caller_number), "number_redacted_at": at or utc_now()},
            condition="attribute_not_exists(number_redacted_at)",
        )

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
        extra_names: Mapping[str, str] | None = None,
        extra_values: Mapping[str, Any] | None = None,
        keep_existing: tuple[str, ...] = (),
    ) -> bool:
        """Update an existing record only if `condition` holds: False when it does not, CallNotFound for no record."""
        try:
            self._update(
                call_sid,
                changes,
                condition=f"attribute_exists(pk) AND {condition}",
                extra_names=extra_names,
                extra_values=extra_values,
                keep_existing=keep_existing,
            )
        except ClientError as error:
            if is_conditional_failure(error):
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
            if is_conditional_failure(error):
                raise CallNotFound(call_sid) from None
            raise
        return record_from_item(attributes)

    def _update(
        self,
        call_sid: str,
        changes: Mapping[str, Any],
        *,
        condition: str,
        extra_names: Mapping[str, str] | None = None,
        extra_values: Mapping[str, Any] | None = None,
        keep_existing: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        names: dict[str, str] = dict(extra_names or {})
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
            "Key": record_key(call_sid),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:  # DynamoDB rejects an empty ExpressionAttributeValues
            kwargs["ExpressionAttributeValues"] = serialize_item(values)
        response = self.client.update_item(**kwargs)
        return dict(response.get("Attributes", {}))

    def list_calls_by_day(self, day: str, *, limit: int = 100, start: dict[str, Any] | None = None) -> CallPage:
        """Calls that started on a UTC day (`YYYY-MM-DD`), oldest first, a page at a time."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_DAY_INDEX,
            "KeyConditionExpression": "gsi1pk = :day",
            "ExpressionAttributeValues": {":day": {"S": day_pk(day)}},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        calls = [record_from_item(item) for item in response.get("Items", [])]
        return CallPage(calls=calls, next_token=response.get("LastEvaluatedKey"))
