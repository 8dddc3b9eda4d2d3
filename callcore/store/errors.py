"""The store's refusals: what a caller of the store may expect and handle (anything else is a DynamoDB error)."""

from __future__ import annotations

from callcore.models import CallRecord


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
