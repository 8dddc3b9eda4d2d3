"""Whether the caller is known: read at admission without delaying the greeting, counted once at the end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callcore.models import CallDirection
from callcore.store.callers import CallerDirectory, caller_pk
from tests.fakes.openai_realtime import FakeRealtimeServer
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    Relay,
    answered,
    assert_clean,
    start_cached_relay,
)

# Relay.new_call's record: from +15551230001 to +15559870002, whatever the direction. Inbound, the caller is the
# first; outbound, the second is the dialled party and the first is the business's caller id.
CALLER = "+15551230001"
DIALLED = "+15559870002"


def directory(relay: Relay) -> CallerDirectory:
    return CallerDirectory(relay.storage.table, hash_key=relay.settings.caller_hash_key)


def call_instructions(session: Any) -> list[str]:
    return [
        e["session"]["instructions"]
        for e in session.events
        if e["type"] == "session.update" and "already greeted" in e["session"].get("instructions", "")
    ]


async def test_a_returning_caller_is_known_in_the_instructions(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    callers = directory(relay)
    callers.record_call(CALLER, at=datetime(2026, 11, 18, 15, tzinfo=UTC), outcome=None, booking_name="Ada Lovelace")
    callers.record_call(CALLER, at=datetime(2026, 11, 20, 15, tzinfo=UTC), outcome=None)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    update = await session.wait_for_event(
        "session.update", lambda e: "returning caller" in e["session"].get("instructions", "")
    )
    instructions = update["session"]["instructions"]
    assert "returning caller, 2 previous calls, last on 2026-11-20" in instructions
    assert "Ada Lovelace" not in instructions  # kept on the profile, never given to the model
    assert CALLER not in instructions
    assert bytes(call.received_media[: len(GREETING_INBOUND_AUDIO)]) == GREETING_INBOUND_AUDIO
    await call.stop()
    await relay.wait_idle()
    profile = callers.get(CALLER)
    assert profile is not None
    assert profile.call_count == 3  # counted once, at the end of this call
    assert profile.last_outcome == "caller_hung_up"
    assert profile.booking_name == "Ada Lovelace"
    assert_clean(relay)


async def test_a_first_time_caller_is_said_to_be_one_and_gets_a_profile(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await session.wait_for_event(
        "session.update", lambda e: "first-time caller" in e["session"].get("instructions", "")
    )
    assert not [text for text in call_instructions(session) if "returning caller" in text]
    await call.stop()
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    item = relay.storage.store.client.get_item(
        TableName=relay.storage.table,
        Key={"pk": {"S": caller_pk(relay.settings.caller_hash_key, CALLER)}, "sk": {"S": "PROFILE"}},
    )["Item"]
    assert item["call_count"]["N"] == "1"
    assert "expires_at" in item
    assert CALLER not in str(item)
    profile = directory(relay).get(CALLER)
    assert profile is not None
    assert profile.first_call_at == record.created_at
    assert_clean(relay)


async def test_an_outbound_call_uses_the_dialled_party(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    callers = directory(relay)
    callers.record_call(DIALLED, at=datetime(2026, 11, 1, 15, tzinfo=UTC), outcome=None)
    call = relay.new_call(direction=CallDirection.OUTBOUND)
    await call.connect()
    session = await relay.openai.wait_for_session(1)
    update = await session.wait_for_event(
        "session.update", lambda e: "returning caller" in e["session"].get("instructions", "")
    )
    assert "1 previous call, last on 2026-11-01" in update["session"]["instructions"]
    await call.stop()
    await relay.wait_idle()
    dialled = callers.get(DIALLED)
    assert dialled is not None
    assert dialled.call_count == 2
    assert callers.get(CALLER) is None  # the business's own caller id is never profiled
    assert_clean(relay)
