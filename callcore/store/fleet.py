"""The relay fleet's health as admission sees it: an operator's (or an alarm's) mark (`FLEET` / `RELAY_HEALTH`) and
the freshest heartbeat of any relay task (`FLEET` / `RELAY_HEARTBEAT`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from callcore.models import utc_now
from callcore.store.keys import FLEET_PK, RELAY_HEALTH_SK, RELAY_HEARTBEAT_SK
from callcore.store.table import TableAccess, deserialize_item, serialize_item

# Every relay process writes its heartbeat this often while it takes calls; admission wants one newer than
# RELAY_HEARTBEAT_MAX_AGE (three missed beats: a relay that stopped, or cannot reach DynamoDB, or all draining).
RELAY_HEARTBEAT_INTERVAL = timedelta(seconds=10)
RELAY_HEARTBEAT_MAX_AGE = timedelta(seconds=30)
HEALTH_KEY = serialize_item({"pk": FLEET_PK, "sk": RELAY_HEALTH_SK})
HEARTBEAT_KEY = serialize_item({"pk": FLEET_PK, "sk": RELAY_HEARTBEAT_SK})


class FleetHealth(TableAccess):
    """Whether admission may send calls to the relay fleet at all."""

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
        self.client.put_item(TableName=self.table_name, Item=serialize_item(data))

    def record_heartbeat(self, task_id: str, *, at: datetime | None = None) -> None:
        """A relay process says it is up and taking calls. One item holds the freshest beat of any task (admission
        reads it with one GetItem); a beat older than the stored one (a task whose clock lags) changes nothing."""
        at = at or utc_now()
        self._update_unless_condition_fails(
            Key=HEARTBEAT_KEY,
            UpdateExpression="SET #at = :at, task_id = :task",
            ConditionExpression="attribute_not_exists(#at) OR #at < :at",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues=serialize_item({":at": at, ":task": task_id}),
        )

    def last_heartbeat(self) -> datetime | None:
        response = self.client.get_item(TableName=self.table_name, Key=HEARTBEAT_KEY, ConsistentRead=False)
        item = response.get("Item")
        at = deserialize_item(item).get("at") if item else None
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
        response = self.client.get_item(TableName=self.table_name, Key=HEALTH_KEY, ConsistentRead=False)
        item = response.get("Item")
        if not item:
            return False
        data = deserialize_item(item)
        if data.get("healthy", True):
            return False
        until = data.get("until")
        if not until:
            return True
        # Operators write this by hand (DEPLOY.md): a time without a zone is read as UTC rather than refused.
        expires = datetime.fromisoformat(str(until))
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        return expires > now
