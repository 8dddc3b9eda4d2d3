"""Keypad keys: the agent reads them as text (menus, numbers), the transfer key hands the caller over at once, and
no digit ever reaches a log line, a metric or the transcript."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    answered,
    assert_clean,
    caller_turn,
    start_cached_relay,
    wait_until,
)


async def test_keys_reach_the_model_as_text_and_never_a_log_line_metric_or_transcript(
    relay_factory: Any, openai_fake: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    answer = tone(300, freq=640)
    session.script(AudioResponse(answer, "Thanks, I have your booking number."))
    with caplog.at_level(logging.DEBUG, logger="relay"):
        for digit in "4817#":  # quickly, as a caller keys in a number; # sends at once
            await call.send_dtmf(digit)
        item = await session.wait_for_event(
            "conversation.item.create", lambda e: e["item"].get("role") == "user", timeout=3
        )
        assert item["item"]["content"][0]["text"] == "The caller pressed 4, 8, 1, 7, # on the keypad."
        await session.wait_for_event("response.create")  # the agent answers what was keyed in
        await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(answer))
        await call.stop()
        await relay.wait_idle()
    relay_lines = [r.getMessage() for r in caplog.records if r.name.startswith("relay")]
    assert any("keypad" in line for line in relay_lines)
    assert not [line for line in relay_lines if "4817" in line or "4, 8" in line]
    assert "4817" not in relay.metrics_out.getvalue()
    texts = [turn.text for turn in relay.storage.store.list_turns(call.call_sid)]
    assert "(pressed 5 key(s) on the keypad)" in texts
    assert not [text for text in texts if "4817" in text or "4, 8" in text]
    assert_clean(relay)


async def test_the_transfer_key_hands_the_caller_over_at_once(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(
        relay_factory, openai_fake, call_control=call_control_fake, env={"DTMF_TRANSFER_DIGIT": "0"}
    )
    call = relay.new_call()
    session = await answered(relay, call, 1)
    long_reply = tone(4000, freq=600)
    session.script(AudioResponse(long_reply, "Let me tell you about every dish on our menu in great detail."))
    await caller_turn(session, "What do you serve?")
    await wait_until(lambda: call.heard_ms() * BYTES_PER_MS >= len(GREETING_INBOUND_AUDIO) + 500 * BYTES_PER_MS)
    await call.send_dtmf("0")  # mid-sentence: the caller wants a person now
    _, body = await call_control_fake.wait_for("transfer", timeout=3)
    assert "keypad" in body["reason"]
    assert call.clears == 1  # the agent stopped talking at once
    await session.wait_for_event("conversation.item.truncate")  # and remembers only what was heard
    assert not [e for e in session.events if e["type"] == "conversation.item.create" and "pressed" in str(e)]
    await call.stop()
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "transferred"
    assert relay.metric_values("Transfers") == [1]
    assert_clean(relay)
