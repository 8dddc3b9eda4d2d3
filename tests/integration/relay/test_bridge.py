"""Audio both ways, byte-exact, and barge-in: what the model remembers matches what the caller heard."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    answered,
    assert_clean,
    start_cached_relay,
    wait_until,
)

TRUNCATION_TOLERANCE_MS = 40


def heard_of_reply(call: Any) -> float:
    """Milliseconds of the model's replies the fake Twilio played (the greeting played in full before them)."""
    return (call.timeline.played_bytes_at(time.monotonic_ns()) - len(GREETING_INBOUND_AUDIO)) / BYTES_PER_MS


async def test_audio_passes_through_byte_exact_both_ways(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    caller_audio = os.urandom(160 * 25)  # 500 ms of arbitrary bytes: any transcoding would change them
    await call.send_audio(caller_audio)
    await session.wait_for_input_audio(len(caller_audio))
    assert bytes(session.input_audio).endswith(caller_audio)
    reply = os.urandom(8 * 700)
    session.script(AudioResponse(reply, "Sure, let me check."))
    await session.speech_started()
    await session.speech_stopped("Do you have a table tonight?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(reply))
    assert bytes(call.received_media) == GREETING_INBOUND_AUDIO + reply
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_barge_in_mid_sentence_truncates_at_what_was_heard(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(AudioResponse(tone(3000), "one two three four five six seven eight nine ten eleven twelve"))
    await session.speech_started()
    await session.speech_stopped("What are your hours?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + 3000 * BYTES_PER_MS)
    await wait_until(lambda: heard_of_reply(call) >= 900)
    await session.speech_started()  # the caller talks over the agent
    truncate = await session.wait_for_event("conversation.item.truncate")
    await wait_until(lambda: call.clears == 1)
    heard = heard_of_reply(call)
    reply_item = session.responses[-1]["item_id"]
    assert truncate["item_id"] == reply_item
    assert abs(truncate["audio_end_ms"] - heard) <= TRUNCATION_TOLERANCE_MS, (truncate["audio_end_ms"], heard)
    assert session.truncations == [
        {"item_id": reply_item, "content_index": 0, "audio_end_ms": truncate["audio_end_ms"]}
    ]
    assert heard < 3000  # the rest was cleared, never played
    await call.stop()
    await relay.wait_idle()
    turns = relay.storage.store.list_turns(call.call_sid)
    agent = [t for t in turns if t.item_id == reply_item]
    assert len(agent) == 1
    assert agent[0].interrupted
    assert agent[0].heard_ms == truncate["audio_end_ms"]
    assert 0 < len(agent[0].text.split()) < 12  # cut to what was heard
    assert relay.storage.store.require_call(call.call_sid).barge_in_count == 1
    assert relay.metric_values("BargeIns") == [1]
    assert len(relay.metric_values("TurnLatency")) == 1
    assert_clean(relay)


async def test_barge_in_before_any_reply_audio_was_heard_truncates_nothing(
    relay_factory: Any, openai_factory: Any
) -> None:
    openai = await openai_factory(first_audio_delay=0.5)
    relay = await start_cached_relay(relay_factory, openai)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(AudioResponse(tone(2000), "This will never be heard."))
    await session.speech_started()
    await session.speech_stopped("Hello?")
    await session.speech_started()  # before the reply's first audio: the server cancels it
    done = await session.wait_for_response_done(nth=1)
    assert done["response"]["status"] == "cancelled"
    await call.send_silence(200)
    await call.stop()
    await relay.wait_idle()
    assert session.truncations == []
    assert not [e for e in session.events if e["type"] == "conversation.item.truncate"]
    assert len(call.received_media) == len(GREETING_INBOUND_AUDIO)
    assert_clean(relay)


async def test_barge_in_across_two_responses_truncates_the_one_playing(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    first, second = tone(300, freq=500), tone(2500, freq=700)
    session.script(AudioResponse(first, "We open at nine."), AudioResponse(second, "And we close at five every day."))
    await session.speech_started()
    await session.speech_stopped("When do you open?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(first))
    await wait_until(lambda: call.queued_ms() == 0)
    first_item = session.responses[-1]["item_id"]
    await session.speech_started()
    await session.speech_stopped("And close?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(first) + len(second))
    await wait_until(lambda: heard_of_reply(call) >= 300 + 600)
    await session.speech_started()
    truncate = await session.wait_for_event("conversation.item.truncate")
    await wait_until(lambda: call.clears == 1)
    second_item = session.responses[-1]["item_id"]
    assert second_item != first_item
    assert truncate["item_id"] == second_item
    heard_second = heard_of_reply(call) - 300
    assert abs(truncate["audio_end_ms"] - heard_second) <= TRUNCATION_TOLERANCE_MS
    assert len(session.truncations) == 1
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)
