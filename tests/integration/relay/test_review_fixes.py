"""Defects found in review: each test failed before its fix."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from callcore.store import CallStore
from relay.app import STATE
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import FakeRealtimeServer
from tests.integration.relay.conftest import answered, start_cached_relay
from tests.integration.relay.test_teardown import leftover_tasks


async def test_a_model_event_the_relay_cannot_handle_ends_the_call_instead_of_dead_air(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    # Not a valid GA event, but a JSON object: the reader hands it on and handling it raises.
    await session.send_raw('{"type":"response.done","response":"not an object"}')
    call_sid, body = await call_control_fake.wait_for("transfer", timeout=5)
    assert call_sid == call.call_sid
    assert body["reason"] == "agent_unavailable"
    await call.wait_closed(timeout=3)
    await asyncio.wait_for(session.closed.wait(), 3)
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "transferred"  # type: ignore[union-attr]
    assert leftover_tasks(call.call_sid) == []


async def test_shutdown_with_a_live_call_hands_it_to_a_human_and_writes_its_records(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    """The drain timed out and the process stops with a call still live: the caller is transferred (not cut off
    when aiohttp closes the connections) and the call's records are written before the process goes."""
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake, shutdown_timeout=2.0)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    relay.app[STATE].draining = True
    await relay.server.close()  # AppRunner.cleanup(): on_shutdown, close connections, then cleanup contexts
    assert [sid for sid, _ in call_control_fake.calls_for("transfer")] == [call.call_sid]
    await call.wait_closed(timeout=3)
    assert session.closed.is_set()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "transferred"
    assert record.transcript_key is not None
    assert leftover_tasks(call.call_sid) == []


async def test_a_store_failure_during_admission_closes_the_stream_1011_with_a_log_line(
    relay_factory: Any,
    openai_fake: FakeRealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from botocore.exceptions import ClientError

    def throttled(self: CallStore, call_sid: str, stream_sid: str) -> bool:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    relay = await relay_factory(openai=openai_fake)
    monkeypatch.setattr(CallStore, "claim_stream", throttled)
    call = relay.new_call()
    with caplog.at_level(logging.WARNING):
        await call.connect()
        await call.wait_closed(timeout=3)
    assert call.close_code == 1011
    assert openai_fake.connection_attempts == 0
    assert any("stream refused" in r.getMessage() and "ClientError" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "a stack trace was logged"


async def test_dtmf_digits_never_reach_the_log(
    relay_factory: Any, openai_fake: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Keypad digits can be card numbers or PINs: the relay ignores them and must not write them down."""
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    await answered(relay, call, 1)
    with caplog.at_level(logging.DEBUG, logger="relay"):
        for digit in "9999":
            await call.send_dtmf(digit)
        await call.stop()
        await relay.wait_idle()
    relay_lines = [r.getMessage().replace(call.call_sid, "") for r in caplog.records if r.name.startswith("relay")]
    assert any("DTMF" in line for line in relay_lines)
    assert not [line for line in relay_lines if "DTMF" in line and "9" in line]
