"""A model session that dies mid-call (a TCP drop, a close, `session_expired`) is replaced: the call keeps its
conversation and the caller's audio, and nobody is transferred."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from relay.app import STATE
from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import (
    AudioResponse,
    FakeRealtimeServer,
    FakeRealtimeSession,
    FunctionCallResponse,
    created_items,
)
from tests.integration.relay.conftest import (
    FILLER_AUDIO,
    GREETING_INBOUND_AUDIO,
    Relay,
    answered,
    assert_clean,
    caller_turn,
    scenario_tools,
    start_cached_relay,
    wait_until,
)


def seeded_items(session: FakeRealtimeSession) -> list[tuple[str, str]]:
    """What the relay told a session about the conversation, in order."""
    return created_items(session.events)


async def link_down(relay: Relay) -> None:
    """Until the relay noticed the loss (the caller audio sent from now on waits for the next session)."""
    [live] = relay.app[STATE].calls
    await wait_until(lambda: not live.link.ready.is_set())


async def test_drop_mid_sentence_reconnects_with_the_conversation_re_seeded_and_the_callers_audio(
    relay_factory: Any, openai_factory: Any, call_control_fake: FakeCallControl
) -> None:
    openai: FakeRealtimeServer = await openai_factory(audio_chunk_ms=100, chunk_interval=0.1)
    relay = await start_cached_relay(relay_factory, openai, call_control=call_control_fake, tools=scenario_tools)
    call = relay.new_call()
    first = await answered(relay, call, 1)
    hours, long_reply = tone(600, freq=500), tone(4000, freq=640)
    first.script(
        FunctionCallResponse("get_business_hours", {}, call_id="call_hours"),
        AudioResponse(hours, "We are open every day from nine."),
        AudioResponse(long_reply, "Our menu has starters, then mains, then a long list of desserts and wines."),
    )
    await caller_turn(first, "When are you open?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(hours))
    await wait_until(lambda: call.queued_ms() == 0)  # heard in full
    await caller_turn(first, "And what is on the menu?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(hours) + 1000 * BYTES_PER_MS)
    openai.connect_delay = 0.5  # the next session takes a moment: the caller's words meanwhile must not be lost
    await first.drop()  # mid-sentence: the TCP connection dies, no close frame
    await link_down(relay)
    heard_before = len(call.received_media)
    meanwhile = os.urandom(160 * 15)  # 300 ms of the caller, said while no session exists
    await call.send_audio(meanwhile, realtime=False)
    second = await openai.wait_for_session(2)
    carry_on = tone(500, freq=720)
    second.script(AudioResponse(carry_on, "...and that is the menu."))
    update = await second.wait_for_event(
        "session.update", lambda e: "already under way" in e["session"].get("instructions", "")
    )
    assert relay.settings.business_name in update["session"]["instructions"]  # the call's own instructions
    assert [tool["name"] for tool in update["session"]["tools"]][:1] == ["get_business_hours"]
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    await second.wait_for_input_audio(len(meanwhile))
    assert bytes(second.input_audio) == meanwhile  # every frame, in order, after the conversation
    seeded = seeded_items(second)
    said_so_far = seeded[-1]
    assert seeded[:-1] == [
        ("assistant", "Thanks for calling the office. This is the virtual assistant. How can I help you today?"),
        ("user", "When are you open?"),
        ("function_call", "get_business_hours"),
        ("function_call_output", "call_hours"),
        ("assistant", "We are open every day from nine."),
        ("user", "And what is on the menu?"),
    ]
    assert said_so_far[0] == "assistant"
    assert 0 < len(said_so_far[1]) < len("Our menu has starters, then mains, then a long list of desserts and wines.")
    creates = [i for i, e in enumerate(second.events) if e["type"] == "conversation.item.create"]
    appends = [i for i, e in enumerate(second.events) if e["type"] == "input_audio_buffer.append"]
    assert max(creates) < min(appends)  # the conversation first: a turn the audio completes lands after it
    # The agent owed the caller the rest of its sentence: the new session is asked to carry on.
    request = await second.wait_for_event("response.create")
    assert "short break" in request["response"]["instructions"]
    await call.wait_for_media(heard_before + len(carry_on), timeout=10)
    assert bytes(call.received_media[heard_before:]) == carry_on
    assert not call.closed.is_set()
    await call.stop()
    await relay.wait_idle()
    assert call_control_fake.requests == []  # nobody was transferred
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "caller_hung_up"
    assert record.model_reconnects == 1
    assert record.error is None
    assert relay.metric_values("ModelReconnects") == [1]
    assert relay.metric_values("ModelErrors") == []
    assert_clean(relay)


async def test_session_expired_mid_call_is_replaced_and_the_call_goes_on(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake)
    call = relay.new_call()
    first = await answered(relay, call, 1)
    first.script(AudioResponse(tone(300), "Yes, we have a table tonight."))
    await caller_turn(first, "Do you have a table tonight?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + 300 * BYTES_PER_MS)
    await wait_until(lambda: call.queued_ms() == 0)
    await first.expire()  # the service's 60-minute limit: error session_expired, then a 1001 close
    second = await openai_fake.wait_for_session(2)
    await second.wait_for_event("conversation.item.create", lambda e: e["item"].get("role") == "user")
    assert ("user", "Do you have a table tonight?") in seeded_items(second)
    answer = tone(400, freq=610)
    second.script(AudioResponse(answer, "Booked for eight."))
    await caller_turn(second, "Great, book it for eight.")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + 300 * BYTES_PER_MS + len(answer))
    assert [e for e in second.events if e["type"] == "response.create"] == []  # nothing was owed: no extra reply
    await call.stop()
    await relay.wait_idle()
    assert call_control_fake.requests == []
    record = relay.storage.store.require_call(call.call_sid)
    assert record.model_reconnects == 1
    assert relay.metric_values("ModelErrors") == []  # an expiry the relay recovers from is not an error
    assert_clean(relay)


async def test_a_gap_longer_than_a_moment_plays_the_cached_filler_not_the_model(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    first = await answered(relay, call, 1)
    openai_fake.connect_delay = 2.5  # the new session takes longer than the caller should wait in silence
    await first.drop()
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(FILLER_AUDIO), timeout=5)
    assert bytes(call.received_media) == GREETING_INBOUND_AUDIO + FILLER_AUDIO  # from the cache, byte for byte
    assert len(openai_fake.sessions) == 2  # played before the next session even existed
    second = await openai_fake.wait_for_session(2, timeout=5)
    await second.wait_for_event("session.update")
    await asyncio.sleep(0.1)
    await call.stop()
    await relay.wait_idle()
    agent_turns = [t.text for t in relay.storage.store.list_turns(call.call_sid) if t.role.value == "agent"]
    assert not any("moment" in text for text in agent_turns)  # the relay's filler is not the agent's words
    assert not any("moment" in text for _, text in seeded_items(second))
    assert_clean(relay)
