"""Either side ending ends the other at once; nothing of the call outlives it."""

from __future__ import annotations

import asyncio
from typing import Any

from relay.app import STATE
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import FakeRealtimeServer
from tests.integration.relay.conftest import answered, assert_clean, start_cached_relay


def leftover_tasks(call_sid: str) -> list[str]:
    """The relay's tasks of this call still alive (the fake Twilio's own tasks, named fake-*, are not the relay's)."""
    return [
        task.get_name()
        for task in asyncio.all_tasks()
        if call_sid in task.get_name() and not task.get_name().startswith("fake-") and not task.done()
    ]


async def test_twilio_stop_closes_the_model_session(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await call.stop()
    await asyncio.wait_for(session.closed.wait(), 2)
    await relay.wait_idle()
    assert leftover_tasks(call.call_sid) == []
    assert relay.app[STATE].calls == set()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "caller_hung_up"  # type: ignore[union-attr]
    assert_clean(relay)


async def test_twilio_line_drop_closes_the_model_session(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await call.close()  # TCP abort, no stop, no close frame
    await asyncio.wait_for(session.closed.wait(), 2)
    await relay.wait_idle()
    assert leftover_tasks(call.call_sid) == []


async def test_model_drop_closes_twilio(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await session.drop()
    await call.wait_closed(timeout=2)
    await relay.wait_idle()
    assert leftover_tasks(call.call_sid) == []
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "error"  # type: ignore[union-attr]


async def test_model_failure_hands_the_caller_to_a_human(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await session.expire()  # the service ends the session for good
    call_sid, body = await call_control_fake.wait_for("transfer", timeout=5)
    assert call_sid == call.call_sid
    assert body["reason"] == "agent_unavailable"
    await call.wait_closed(timeout=3)
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "transferred"  # type: ignore[union-attr]
    assert leftover_tasks(call.call_sid) == []


async def test_unreachable_model_with_no_human_line_ends_the_stream(relay_factory: Any, openai_factory: Any) -> None:
    openai = await openai_factory(api_key="another-key")  # the relay's key is refused: 401 on every connect
    relay = await relay_factory(openai=openai)
    call = relay.new_call()
    await call.connect()
    await call.wait_closed(timeout=5)
    assert call.close_code == 1001
    await relay.wait_idle()
    assert leftover_tasks(call.call_sid) == []
