"""The caller hears the agent first, from the cache, without waiting for the model."""

from __future__ import annotations

import asyncio
from typing import Any

from callcore.models import CallDirection, TurnRole
from relay.app import GREETINGS
from tests.fakes.audio import silence, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    Relay,
    answered,
    assert_clean,
    greeting_renders,
    start_cached_relay,
    wait_until,
)

TRUNCATION_TOLERANCE_MS = 40
LONG_GREETING = tone(2400, freq=350)


async def test_cached_greeting_plays_before_the_slow_model_session_even_answers(
    relay_factory: Any, openai_factory: Any
) -> None:
    openai = await openai_factory(connect_delay=0.3, first_audio_delay=0.4)
    relay = await start_cached_relay(relay_factory, openai)
    assert len(openai.sessions) == 1  # the render session only; no pool (MODEL_POOL_SIZE=0)
    call = relay.new_call()
    await call.connect()
    await call.wait_for_media(1)
    # Ordering, not wall-clock: the greeting reached Twilio while the call's model session was still connecting.
    assert len(openai.sessions) == 1
    session = await openai.wait_for_session(1)
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO))
    assert bytes(call.received_media) == GREETING_INBOUND_AUDIO  # byte-exact, never re-encoded
    # Once heard, the model is told it already greeted (so it does not greet again).
    seed = await session.wait_for_event("conversation.item.create")
    assert seed["item"]["role"] == "assistant"
    assert seed["item"]["content"][0]["text"] == relay.app[GREETINGS].text_for(CallDirection.INBOUND)
    instructions = (
        await session.wait_for_event(
            "session.update", lambda e: "already greeted" in e["session"].get("instructions", "")
        )
    )["session"]["instructions"]
    assert relay.settings.business_name in instructions
    await call.stop()
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.latencies.greeting_ms is not None
    assert_clean(relay)


async def test_cold_cache_asks_the_model_to_greet(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    greeting = bytes(range(256)) * 4
    openai_fake.script(AudioResponse(greeting, "Thanks for calling."))
    relay = await relay_factory(openai=openai_fake)  # GREETING_CACHE=false: cold
    call = relay.new_call()
    await call.connect()
    session = await openai_fake.wait_for_session(0)
    create = await session.wait_for_event("response.create")
    assert "Thanks for calling the office" in create["response"]["instructions"]
    await call.wait_for_media(len(greeting))
    assert bytes(call.received_media) == greeting
    await wait_until(lambda: call.queued_ms() == 0)
    await call.stop()
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).latencies.greeting_ms is not None
    assert_clean(relay)


async def test_recording_announcement_is_part_of_the_greeting(relay_factory: Any, openai_fake: Any) -> None:
    openai = openai_fake
    relay = await start_cached_relay(relay_factory, openai, env={"CALL_RECORDING_ENABLED": "true"})
    render = await openai.sessions[0].wait_for_event("response.create")
    assert "This call may be recorded." in render["response"]["instructions"]
    call = relay.new_call()
    session = await answered(relay, call, 1)
    seed = await session.wait_for_event("conversation.item.create")
    assert seed["item"]["content"][0]["text"].startswith("This call may be recorded.")
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_warm_pool_session_serves_the_call_and_is_replaced(relay_factory: Any, openai_fake: Any) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, env={"MODEL_POOL_SIZE": "1"})
    await relay.wait_pool(1)
    warm = openai_fake.sessions[-1]
    assert warm.events[0]["type"] == "session.update"  # configured while waiting: pcmu, voice, VAD, tools
    assert warm.config["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert [tool["name"] for tool in warm.config["tools"]][:1] == ["get_business_hours"]
    sessions_before = len(openai_fake.sessions)
    call = relay.new_call()
    await call.connect()
    # The call's own instructions go to the session that was already warm.
    await warm.wait_for_event("session.update", lambda e: "already greeted" in e["session"].get("instructions", ""))
    await relay.wait_pool(1)  # and the pool refills behind it
    assert len(openai_fake.sessions) == sessions_before + 1
    await call.stop()
    await relay.wait_idle()
    await asyncio.wait_for(warm.closed.wait(), 2)
    assert_clean(relay)


async def start_long_greeting_relay(relay_factory: Any, openai: FakeRealtimeServer, **kwargs: Any) -> Relay:
    openai.script(*greeting_renders(LONG_GREETING))
    relay: Relay = await relay_factory(openai=openai, env={"GREETING_CACHE": "true"}, **kwargs)
    await relay.wait_greeting_cache()
    return relay


async def test_barge_in_over_the_cached_greeting_records_and_seeds_only_what_was_heard(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_long_greeting_relay(relay_factory, openai_fake)
    call = relay.new_call()
    await call.connect()
    session = await openai_fake.wait_for_session(1)
    # The call's own instructions (not the pool's base configuration): the relay handles model events from here.
    await session.wait_for_event("session.update", lambda e: "already greeted" in e["session"].get("instructions", ""))
    await wait_until(lambda: call.heard_ms() >= 800)
    await session.speech_started()
    seed = await session.wait_for_event("conversation.item.create")
    await wait_until(lambda: call.clears == 1)
    heard = call.heard_ms()  # frozen by the clear
    full_text = relay.app[GREETINGS].text_for(CallDirection.INBOUND)
    seed_text = seed["item"]["content"][0]["text"]
    assert seed["item"]["role"] == "assistant"
    assert 0 < len(seed_text) < len(full_text)
    assert full_text.startswith(seed_text)  # the model is told only the words the caller heard
    await call.stop()
    await relay.wait_idle()
    [greeting] = [t for t in relay.storage.store.list_turns(call.call_sid) if t.role is TurnRole.AGENT]
    assert greeting.interrupted
    assert greeting.heard_ms is not None
    assert abs(greeting.heard_ms - heard) <= TRUNCATION_TOLERANCE_MS, (greeting.heard_ms, heard)
    assert greeting.text == seed_text
    assert_clean(relay)


async def test_greeting_seed_goes_before_a_caller_turn_committed_first(relay_factory: Any, openai_factory: Any) -> None:
    # The call's model session connects after the 400 ms greeting has played; the caller said "hello?" meanwhile, so
    # the backlog flushed on connect commits their turn (server VAD) before the seed is sent.
    openai = await openai_factory(connect_delay=0.6, vad=True)
    relay = await start_cached_relay(relay_factory, openai)
    call = relay.new_call()
    await call.connect()
    await call.send_audio(tone(300) + silence(700), realtime=False)
    session = await openai.wait_for_session(1)
    seed = await session.wait_for_event(
        "conversation.item.create", lambda e: e["item"].get("role") == "assistant", timeout=5
    )
    committed = [e for e in session.sent_events if e["type"] == "input_audio_buffer.committed"]
    assert committed, "the caller's turn was not committed before the seed: the test did not set up the race"
    assert seed["previous_item_id"] == "root"
    first = session.items[0]
    assert (first["type"], first.get("role"), first["source"]) == ("message", "assistant", "client")
    assert any(item.get("source") == "caller" for item in session.items[1:])
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)
