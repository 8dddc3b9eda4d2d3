"""Before a model session gets old (MODEL_SESSION_MAX_SECONDS; OpenAI ends one at 60 minutes), the call moves to a
fresh session at a turn boundary: configured and seeded in the background, no caller frame lost, no utterance cut,
the old session closed. Past the limit with no boundary, the move happens when the caller starts speaking.

The fake server here ends sessions at its own age limit (as the service does): a relay that did not rotate in time
would lose its session to `session_expired`."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from relay.app import STATE
from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FakeRealtimeSession
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    Relay,
    answered,
    assert_clean,
    caller_turn,
    start_cached_relay,
    wait_until,
)
from tests.integration.relay.test_reconnect import seeded_items

SERVICE_LIMIT_SECONDS = 9.0  # the fake service's own session age limit
ROTATE_BEFORE_SECONDS = 4  # MODEL_SESSION_MAX_SECONDS: the next session is opened a quarter of it earlier


async def rotating_relay(relay_factory: Any, openai_factory: Any) -> tuple[Relay, FakeRealtimeServer]:
    openai: FakeRealtimeServer = await openai_factory(session_max_seconds=SERVICE_LIMIT_SECONDS)
    relay = await start_cached_relay(
        relay_factory, openai, env={"MODEL_SESSION_MAX_SECONDS": str(ROTATE_BEFORE_SECONDS)}
    )
    return relay, openai


def appended(session: FakeRealtimeSession) -> bytes:
    return bytes(session.input_audio)


async def test_rotation_moves_a_multi_turn_call_at_a_turn_boundary_without_losing_a_frame(
    relay_factory: Any, openai_factory: Any
) -> None:
    relay, openai = await rotating_relay(relay_factory, openai_factory)
    call = relay.new_call()
    old = await answered(relay, call, 1)
    base = len(old.input_audio)
    # A reply that is still playing when the next session is ready: the move must wait until it was heard.
    long_reply = tone(3500, freq=600)
    old.script(AudioResponse(long_reply, "We have starters, mains and desserts, and a fine list of wines."))
    caller_audio = os.urandom(160 * 175)  # 3.5 s of the caller, in real time, across the move
    streaming = asyncio.create_task(call.send_audio(caller_audio))
    await caller_turn(old, "What is on the menu?")
    new = await openai.wait_for_session(2, timeout=ROTATE_BEFORE_SECONDS + 2)
    await new.wait_for_event("session.update", lambda e: "already under way" in e["session"].get("instructions", ""))
    # Seeded in the background while the reply still played: nothing of the caller's reached it yet.
    assert seeded_items(new)[1:] == [("user", "What is on the menu?")] or not new.input_audio
    await wait_until(lambda: len(new.input_audio) > 0, timeout=ROTATE_BEFORE_SECONDS + 2)
    played = call.timeline.played_bytes_at(time.monotonic_ns())
    assert played >= len(GREETING_INBOUND_AUDIO) + len(long_reply)  # moved only after the reply was heard in full
    assert old.truncations == []  # no utterance cut
    await streaming
    await asyncio.wait_for(old.closed.wait(), 3)  # the old session is closed after the move
    answer = tone(300, freq=700)
    new.script(AudioResponse(answer, "About thirty euros."))
    await caller_turn(new, "And what does it cost?")  # the next turn is the new session's
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(long_reply) + len(answer))
    assert seeded_items(new)[:3] == [
        ("assistant", "Thanks for calling the office. This is the virtual assistant. How can I help you today?"),
        ("user", "What is on the menu?"),
        ("assistant", "We have starters, mains and desserts, and a fine list of wines."),
    ]
    # Every caller frame reached a session: the old one up to the move, the new one from (a little before) it on.
    before, after = appended(old)[base:], appended(new)
    assert caller_audio.startswith(before)
    assert caller_audio.endswith(after)
    assert len(before) + len(after) >= len(caller_audio)
    assert len(before) + len(after) - len(caller_audio) <= 1000 * BYTES_PER_MS  # only the second replayed
    await wait_until(lambda: call.queued_ms() == 0)
    await call.stop()
    await relay.wait_idle()
    assert not any(session.expired_by_age for session in openai.sessions)
    record = relay.storage.store.require_call(call.call_sid)
    assert record.model_rotations >= 1
    assert record.model_reconnects == 0
    assert relay.metric_values("ModelRotations") == [1] * record.model_rotations
    assert not [t for t in relay.storage.store.list_turns(call.call_sid) if t.interrupted]
    assert_clean(relay)


async def test_past_the_limit_without_a_boundary_the_move_happens_when_the_caller_speaks(
    relay_factory: Any, openai_factory: Any
) -> None:
    relay, openai = await rotating_relay(relay_factory, openai_factory)
    call = relay.new_call()
    old = await answered(relay, call, 1)
    endless = tone(8000, freq=560)  # the agent talks past the limit: no turn boundary comes
    old.script(AudioResponse(endless, "A very long story about the history of the restaurant and its founders."))
    await caller_turn(old, "Tell me about the restaurant.")
    new = await openai.wait_for_session(2, timeout=ROTATE_BEFORE_SECONDS + 2)
    [live] = relay.app[STATE].calls
    await wait_until(lambda: live.link.switching_at_next_speech, timeout=ROTATE_BEFORE_SECONDS + 2)
    assert not new.input_audio  # still waiting: the agent is speaking
    onset = os.urandom(160 * 10)  # the caller starts talking over the agent
    heard_before = len(old.input_audio)
    await call.send_audio(onset, realtime=False)
    await old.wait_for_input_audio(heard_before + len(onset))
    await old.speech_started()  # the barge-in is where the call moves
    await wait_until(lambda: len(new.input_audio) >= len(onset))
    assert onset in appended(new)  # the start of their words reached the new session too
    truncate = await old.wait_for_event("conversation.item.truncate")  # the old item cut where it was heard
    await asyncio.wait_for(old.closed.wait(), 3)
    said = seeded_items(new)
    assert said[-1][0] == "assistant"
    assert 0 < len(said[-1][1]) < len("A very long story about the history of the restaurant and its founders.")
    assert truncate["audio_end_ms"] > 0
    await call.stop()
    await relay.wait_idle()
    assert not any(session.expired_by_age for session in openai.sessions)
    assert relay.storage.store.require_call(call.call_sid).model_rotations == 1
    assert_clean(relay)
