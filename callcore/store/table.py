"""What every module of the store shares: the table handle, the value conversion to and from DynamoDB attributes, and
the conditional-write helpers (a failed condition told apart from any other error, transactions retried on conflict).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from callcore.aws import dynamodb_client
from callcore.dynamo_types import deserialize, serialize
from callcore.store.keys import KEY_ATTRIBUTES
from callcore.store.retention import Retention

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Conflicts on the one counter item come in bursts (many calls starting or ending together): six tries with jittered
# backoff (at most ~0.6 s in all) before the error surfaces.
TRANSACTION_ATTEMPTS = 6
TRANSACTION_BACKOFF_SECONDS = 0.02


def to_attr(value: Any) -> Any:
    """Python/pydantic values -> what the serializer accepts (no floats, ISO timestamps, enum values)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, BaseModel):
        return to_attr(value.model_dump())
    if isinstance(value, Mapping):
        return {k: to_attr(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_attr(v) for v in value]
    return value


def from_attr(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: integral ones become int so pydantic int fields take them strictly."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: from_attr(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_attr(v) for v in value]
    return value


def serialize_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values (None dropped) -> DynamoDB attribute values."""
    return {k: serialize(to_attr(v)) for k, v in data.items() if v is not None}


def deserialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: from_attr(deserialize(v)) for k, v in item.items()}


def model_fields_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's own data, without its keys and bookkeeping attributes: what its model validates."""
    return {k: v for k, v in deserialize_item(item).items() if k not in KEY_ATTRIBUTES}


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def cancellation_codes(error: ClientError) -> list[str] | None:
    """Per-item reason codes of a cancelled transaction (`None` when the error is not a cancellation)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons: list[Mapping[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return [str(reason.get("Code") or "None") for reason in reasons]


def failed_item(error: ClientError, index: int) -> Mapping[str, Any] | None:
    """The old item a cancelled transaction returned for its `index`th action (ReturnValuesOnConditionCheckFailure)."""
    reasons: list[Mapping[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
    if index < len(reasons):
        item: Mapping[str, Any] | None = reasons[index].get("Item")
        return item
    return None


class TableAccess:
    """The table a store module reads and writes, its client, and how long the items it writes are kept."""

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, *, retention: Retention | None = None
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.retention = retention or Retention()

    @property
    def client(self) -> DynamoDBClient:
        # Resolved lazily so a store can be built at import time (Lambda init) before credentials are needed.
        if self._client is None:
            self._client = dynamodb_client()
        return self._client

    def _put_once(self, item: Mapping[str, Any], *, condition: str = "attribute_not_exists(pk)") -> bool:
        """Put `item` unless the condition fails (by default: an item with that key exists). False when it failed."""
        try:
            self.client.put_item(TableName=self.table_name, Item=dict(item), ConditionExpression=condition)
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def _update_unless_condition_fails(self, **request: Any) -> bool:
        """UpdateItem whose failed condition is an expected answer (False), not an error."""
        try:
            self.client.update_item(TableName=self.table_name, **request)
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retried when it only collided with a concurrent transaction on the same item (the
        counter is one item every admission touches): botocore does not retry `TransactionConflict` by itself."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
                return
            except ClientError as error:
                codes = cancellation_codes(error)
                retry = codes is not None and "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes
                if not retry or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, TRANSACTION_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
