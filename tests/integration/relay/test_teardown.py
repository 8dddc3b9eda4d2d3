"""Either side ending ends the other at once; nothing of the call outlives it."""

from __future__ import annotations

import asyncio
from typing import Any

from relay.app import STATE
from tests.fakes.openai_realtime import FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    GatedLookup,
    answered,
    assert_clean,
    caller_turn,
    scenario_tools,
    start_cached_relay,
)

# A short reconnect budget: these tests are about what a call leaves behind, not how long it tries.
GIVE_UP_SOON = {"MODEL_RECONNECT_SECONDS": "0.5"}


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


async def test_a_model_lost_for_good_closes_twilio(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, env=GIVE_UP_SOON)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    openai_fake.refuse_sessions = True
    await session.drop()
    await call.wait_closed(timeout=5)
    await relay.wait_idle()
    assert leftover_tasks(call.call_sid) == []
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "error"  # type: ignore[union-attr]


async def test_unreachable_model_with_no_human_line_ends_the_stream(relay_factory: Any, openai_factory: Any) -> None:
    openai = await openai_factory(api_key="another-key")  # the relay's key is refused: 401 on every connect
    relay = await relay_factory(openai=openai)
    call = relay.new_call()
    await call.connect()
    await call.wait_closed(timeout=5)
    assert call.close_code == 1001
    assert openai.connection_attempts == 1  # a refused key is not retried: nothing another try could change
    await relay.wait_idle()
    assert leftover_tasks(call.call_sid) == []


async def test_a_task_ignoring_cancellation_does_not_keep_the_sockets_open(
    relay_factory: Any, openai_fake: FakeRealtimeServer, gated: type[GatedLookup]
) -> None:
    gated.stubborn = True
    relay = await start_cached_relay(relay_factory, openai_fake, tools=scenario_tools, env=GIVE_UP_SOON)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(FunctionCallResponse("gated_lookup", {}))
    try:
        await caller_turn(session, "Can you look that up?")
        await asyncio.wait_for(gated.entered.wait(), 5)
        openai_fake.refuse_sessions = True
        await session.drop()  # the model goes away for good; the relay ends the call while the tool still hangs
        await call.wait_closed(timeout=5)
        await relay.wait_idle()  # the records were written too
        assert not gated.gate.is_set()  # ordering: all of this happened while the tool still ignored its cancel
        record = relay.storage.store.require_call(call.call_sid)
        assert record.outcome is not None
        assert record.outcome.value == "error"
    finally:
        gated.gate.set()


async def test_teardown_closes_the_model_session_while_a_task_ignores_cancellation(
    relay_factory: Any, openai_fake: FakeRealtimeServer, gated: type[GatedLookup]
) -> None:
    gated.stubborn = True
    relay = await start_cached_relay(relay_factory, openai_fake, tools=scenario_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(FunctionCallResponse("gated_lookup", {}))
    try:
        await caller_turn(session, "Can you look that up?")
        await asyncio.wait_for(gated.entered.wait(), 5)
        await call.stop()
        await asyncio.wait_for(session.closed.wait(), 5)  # the model session does not wait for the stuck tool
        await relay.wait_idle()
        assert not gated.gate.is_set()
        assert relay.storage.store.require_call(call.call_sid).transcript_key is not None
    finally:
        gated.gate.set()
