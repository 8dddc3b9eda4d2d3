"""Transcript turns: one item per completed utterance (`CALL#<CallSid>` / `TURN#<index>`), written as it completes so
a crash loses at most the turn in flight; given a TTL once the transcript is safe in S3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from callcore.models import TranscriptTurn
from callcore.store.keys import TTL_ATTRIBUTE, TURN_SK_PREFIX, call_pk, turn_sk
from callcore.store.retention import expires_at
from callcore.store.table import TableAccess, model_fields_of, serialize_item


def turn_key(call_sid: str, index: int) -> dict[str, Any]:
    return serialize_item({"pk": call_pk(call_sid), "sk": turn_sk(index)})


class Turns(TableAccess):
    """Store, list and expire a call's turns."""

    def put_turn(self, turn: TranscriptTurn) -> bool:
        """Store a completed turn. Idempotent on (call, index): a repeat returns False and changes nothing.

        Written with its TTL: a turn whose transcript never reaches S3 (the relay died, nobody recovered it) still
        expires; `expire_turns` restarts the clock once the transcript is safe."""
        item = serialize_item(
            {
                "pk": call_pk(turn.call_sid),
                "sk": turn_sk(turn.index),
                "entity": "turn",
                TTL_ATTRIBUTE: expires_at(turn.ended_at, timedelta(days=self.retention.turn_days)),
                **turn.model_dump(),
            }
        )
        return self._put_once(item, condition="attribute_not_exists(sk)")

    def list_turns(self, call_sid: str) -> list[TranscriptTurn]:
        return list(self._iter_turns(call_sid))

    def _iter_turns(self, call_sid: str) -> Iterator[TranscriptTurn]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
            ExpressionAttributeValues={":pk": {"S": call_pk(call_sid)}, ":turn": {"S": TURN_SK_PREFIX}},
            ConsistentRead=True,
        ):
            for item in page.get("Items", []):
                yield TranscriptTurn.model_validate(model_fields_of(item))

    def expire_turns(self, call_sid: str, expires_at: datetime) -> int:
        """Set the TTL on a call's turn items once its transcript is safe in S3. Returns how many were marked."""
        epoch = int(expires_at.timestamp())
        count = 0
        for turn in self._iter_turns(call_sid):
            self.client.update_item(
                TableName=self.table_name,
                Key=turn_key(call_sid, turn.index),
                UpdateExpression="SET #ttl = :ttl",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":ttl": {"N": str(epoch)}},
            )
            count += 1
        return count
