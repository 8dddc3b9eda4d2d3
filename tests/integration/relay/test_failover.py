"""When the agent cannot go on (the model is gone for good, an event the relay cannot handle, the process stops),
the caller is handed over through one path only: the relay closes the stream and Twilio runs the TwiML after
`<Connect>` (the human line, or an apology without one). The transfer endpoint is never also asked, so the human line
cannot ring twice; an agent transfer already on its way is waited for instead."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from relay.app import STATE
from tests.fakes.audio import tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    answered,
    caller_turn,
    scenario_tools,
    start_cached_relay,
    wait_until,
)
from tests.integration.relay.test_teardown import leftover_tasks

RECONNECT_SECONDS = 1.5


async def test_reconnect_refused_fails_over_within_the_bound(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(
        relay_factory,
        openai_fake,
        call_control=call_control_fake,
        env={"MODEL_RECONNECT_SECONDS": str(RECONNECT_SECONDS)},
    )
    call = relay.new_call()
    session = await answered(relay, call, 1)
    attempts_before = openai_fake.connection_attempts
    openai_fake.refuse_sessions = True  # an outage: every new session is refused
    await session.drop()
    await call.wait_closed(timeout=RECONNECT_SECONDS + 3)  # gave up by itself, within the bound
    assert call.close_code == 1001  # Twilio runs the TwiML after <Connect>: the human line
    tries = openai_fake.connection_attempts - attempts_before
    assert tries >= 3, tries  # at once, then with backoff, until the bound
    assert {status for status, _ in openai_fake.refusals} == {503}
    assert call_control_fake.calls_for("transfer") == []  # one path: the human line rings once
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "transferred"
    assert record.error is not None
    assert "agent unavailable" in record.error
    assert record.model_reconnects == 0
    assert relay.metric_values("Transfers") == [1]
    assert relay.metric_values("ModelErrors") == [1]
    assert relay.metric_values("ModelReconnects") == []
    assert leftover_tasks(call.call_sid) == []


async def test_a_model_event_the_relay_cannot_handle_hands_the_caller_over(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    # Not a valid GA event, but a JSON object: the reader hands it on and handling it raises.
    await session.send_raw('{"type":"response.done","response":"not an object"}')
    await call.wait_closed(timeout=3)  # no dead air: the caller goes to the human line
    assert call.close_code == 1001
    await asyncio.wait_for(session.closed.wait(), 3)
    await relay.wait_idle()
    assert call_control_fake.calls_for("transfer") == []
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "transferred"  # type: ignore[union-attr]
    assert leftover_tasks(call.call_sid) == []


async def test_without_a_human_line_the_fallback_is_the_apology(relay_factory: Any, openai_fake: Any) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, env={"MODEL_RECONNECT_SECONDS": "0.5"})
    call = relay.new_call()
    session = await answered(relay, call, 1)
    openai_fake.refuse_sessions = True
    await session.drop()
    await call.wait_closed(timeout=4)
    assert call.close_code == 1001  # the TwiML after <Connect> apologises and hangs up
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "error"  # type: ignore[union-attr]
    assert relay.metric_values("Transfers") == []


async def test_an_agent_transfer_under_way_when_the_model_fails_is_the_only_hand_over(
    relay_factory: Any,
    openai_fake: FakeRealtimeServer,
    call_control_fake: FakeCallControl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay")
    relay = await start_cached_relay(
        relay_factory,
        openai_fake,
        call_control=call_control_fake,
        tools=scenario_tools,
        env={"MODEL_RECONNECT_SECONDS": "0.3"},
    )
    call = relay.new_call()
    session = await answered(relay, call, 1)
    call_control_fake.set_response("transfer", delay=1.5)  # a cold Lambda: the redirect takes a while
    session.script(
        FunctionCallResponse("transfer_to_human", {"reason": "caller asked", "summary": "Wants a person."}),
        AudioResponse(tone(200), "Connecting you now."),
    )
    await caller_turn(session, "A person, please.")
    await call_control_fake.wait_for("transfer", timeout=5)
    openai_fake.refuse_sessions = True
    await session.drop()  # the model is gone for good while the transfer is still on its way
    await wait_until(lambda: relay.metric_values("ModelErrors") == [1], timeout=5)
    await wait_until(lambda: relay.metric_values("Transfers") == [1], timeout=5)  # the transfer answered
    call_sid = call.call_sid
    await wait_until(lambda: not [t for t in leftover_tasks(call_sid) if t.startswith("model:")], timeout=5)
    assert any("transfer is under way" in r.getMessage() for r in caplog.records)  # the fail-over waited for it
    assert not call.closed.is_set()  # the relay did not also close the stream: Twilio stops it after the redirect
    assert len(call_control_fake.calls_for("transfer")) == 1
    await call.stop()
    await relay.wait_idle()
    assert relay.storage.store.require_call(call_sid).outcome.value == "transferred"  # type: ignore[union-attr]
    assert relay.metric_values("Transfers") == [1]


async def test_shutdown_with_a_live_call_hands_it_over_and_writes_its_records(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    """The drain timed out and the process stops with a call still live: the stream closes so Twilio's fallback
    dials the human line (not cut off when aiohttp closes the connections), and the call's records are written
    before the process goes."""
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake, shutdown_timeout=2.0)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    relay.app[STATE].draining = True
    await relay.server.close()  # AppRunner.cleanup(): on_shutdown, close connections, then cleanup contexts
    await call.wait_closed(timeout=3)
    assert call.close_code == 1001
    assert session.closed.is_set()
    assert call_control_fake.calls_for("transfer") == []
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "transferred"
    assert record.transcript_key is not None
    assert leftover_tasks(call.call_sid) == []


async def test_a_call_with_nothing_to_play_is_handed_over_at_once_when_the_model_is_down(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    """No cached greeting (the model was down at start-up too): retrying would keep the caller in silence, so the
    first refusal hands them over."""
    openai_fake.refuse_sessions = True
    relay = await relay_factory(openai=openai_fake, call_control=call_control_fake)  # GREETING_CACHE=false
    call = relay.new_call()
    await call.connect()
    await call.wait_closed(timeout=3)
    assert call.close_code == 1001
    assert openai_fake.connection_attempts == 1
    await relay.wait_idle()
    outcome = relay.storage.store.require_call(call.call_sid).outcome
    assert outcome is not None
    assert outcome.value == "transferred"
