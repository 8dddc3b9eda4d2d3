"""Who is calling: one small profile per caller, so the agent knows a returning caller from a first-time one.

Single-table design (see `callcore.store`): the profiles live in the call table beside the call records.

| item | pk | sk |
| --- | --- | --- |
| caller profile | `CALLER#<keyed hash of the caller number>` | `PROFILE` |

The key is the keyed hash analysts already count repeat callers by (`caller_hash` in the S3 call summaries): the raw
number is never stored here, and without the key a hash cannot be matched to a number. Attributes: `call_count`,
`first_call_at`, `last_call_at`, `last_outcome`, optionally `booking_name` (the name on the caller's last booking),
and the table's TTL attribute, pushed forward by every call, so the profiles of people who stopped calling expire.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from callcore.masking import caller_hash
from callcore.models import E164_PATTERN, CallOutcome
from callcore.store.keys import PARTITION_KEY, PROFILE_SK, SORT_KEY, TTL_ATTRIBUTE, caller_pk_of_hash
from callcore.store.table import TableAccess

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 365
MAX_BOOKING_NAME_CHARS = 100
# Fixed width, so DynamoDB's string comparison orders the timestamps (the conditional update below relies on it).
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def caller_pk(hash_key: bytes, number: str) -> str:
    return caller_pk_of_hash(caller_hash(hash_key, number))


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return value.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


@dataclass(frozen=True)
class CallerProfile:
    call_count: int
    first_call_at: datetime
    last_call_at: datetime
    last_outcome: str | None = None
    booking_name: str | None = None


class CallerDirectory(TableAccess):
    """Reads a caller's profile when a call starts and counts the call when it ends."""

    def __init__(
        self,
        table_name: str,
        *,
        hash_key: bytes,
        client: DynamoDBClient | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> None:
        if len(hash_key) < 16:
            raise ValueError("the caller hash key needs at least 16 bytes")
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        super().__init__(table_name, client)
        self._hash_key = hash_key
        self._retention = timedelta(days=retention_days)

    @staticmethod
    def tracks(number: str) -> bool:
        """Only real phone numbers: withheld ("anonymous") and client identities would merge different people."""
        return bool(E164_PATTERN.match(number))

    def _key(self, number: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": caller_pk(self._hash_key, number)}, SORT_KEY: {"S": PROFILE_SK}}

    def get(self, number: str) -> CallerProfile | None:
        """The caller's profile; None for a first-time caller (or a number that is not tracked)."""
        if not self.tracks(number):
            return None
        item = self.client.get_item(TableName=self.table_name, Key=self._key(number)).get("Item")
        if not item or "call_count" not in item:
            return None
        name = item.get("booking_name", {}).get("S")
        return CallerProfile(
            call_count=int(item["call_count"]["N"]),
            first_call_at=datetime.strptime(item["first_call_at"]["S"], _TIMESTAMP_FORMAT).replace(tzinfo=UTC),
            last_call_at=datetime.strptime(item["last_call_at"]["S"], _TIMESTAMP_FORMAT).replace(tzinfo=UTC),
            last_outcome=item.get("last_outcome", {}).get("S"),
            booking_name=name or None,
        )

    def record_call(
        self,
        number: str,
        *,
        at: datetime,
        outcome: CallOutcome | None,
        booking_name: str | None = None,
    ) -> bool:
        """Count one call of `number` that started at `at`. Atomic (`ADD`), so concurrent calls from the same number
        never lose a count; the `last_*` fields only move forward in time. False when the number is not tracked."""
        if not self.tracks(number):
            return False
        when = _timestamp(at)
        count_only = "ADD call_count :one SET first_call_at = if_not_exists(first_call_at, :at), entity = :entity"
        values: dict[str, Any] = {":one": {"N": "1"}, ":at": {"S": when}, ":entity": {"S": "caller"}}
        expires = int((at + self._retention).timestamp())
        latest = f"{count_only}, last_call_at = :at, #ttl = :ttl"
        latest_values = {**values, ":ttl": {"N": str(expires)}}
        if outcome is not None:
            latest += ", last_outcome = :outcome"
            latest_values[":outcome"] = {"S": outcome.value}
        name = " ".join((booking_name or "").split())[:MAX_BOOKING_NAME_CHARS]
        if name:
            latest += ", booking_name = :name"
            latest_values[":name"] = {"S": name}
        if not self._update_unless_condition_fails(
            Key=self._key(number),
            UpdateExpression=latest,
            ConditionExpression="attribute_not_exists(last_call_at) OR last_call_at <= :at",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues=latest_values,
        ):
            # A later call of the same number already wrote its (newer) last_* fields and TTL: only count this one,
            # and let it move first_call_at back if it is the earliest call seen.
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(number),
                UpdateExpression=count_only,
                ExpressionAttributeValues=values,
            )
            self._update_unless_condition_fails(
                Key=self._key(number),
                UpdateExpression="SET first_call_at = :at",
                ConditionExpression="first_call_at > :at",
                ExpressionAttributeValues={":at": {"S": when}},
            )
        return True
