"""Idempotency keys of client requests (POST /calls): one item per key (`IDEMPOTENCY#<key>` / `REQUEST`), claimed
with a conditional put, settled once, expired by the table's TTL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from callcore.models import utc_now
from callcore.store.keys import IDEMPOTENCY_SK, TTL_ATTRIBUTE, idempotency_pk
from callcore.store.table import TableAccess, deserialize_item, is_conditional_failure, serialize_item


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


def _key(key: str) -> dict[str, Any]:
    return serialize_item({"pk": idempotency_pk(key), "sk": IDEMPOTENCY_SK})


class IdempotencyKeys(TableAccess):
    """Claim, settle and read back the idempotency keys of POST /calls."""

    def claim_idempotency_key(
        self, key: str, *, request_hash: str, ttl: timedelta, now: datetime | None = None
    ) -> IdempotencyClaim:
        """Hold `key` for this request, or say who holds it. A key that expired (its TTL item not yet deleted by
        DynamoDB, which can take days) or was released by a failed request is claimed anew."""
        now = now or utc_now()
        item = serialize_item(
            {
                "pk": idempotency_pk(key),
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
            if not is_conditional_failure(error):
                raise
            old: Mapping[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
            data = deserialize_item(old)
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
            Key=_key(key),
            UpdateExpression="SET #state = :done, #result = :result",
            ExpressionAttributeNames={"#state": "state", "#result": "result"},
            ExpressionAttributeValues=serialize_item({":done": IdempotencyState.DONE.value, ":result": dict(result)}),
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
        self._update_unless_condition_fails(
            Key=_key(key),
            UpdateExpression="SET #state = :state",
            ConditionExpression="#state = :in_progress",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":state": {"S": state.value},
                ":in_progress": {"S": IdempotencyState.IN_PROGRESS.value},
            },
        )
