"""Audio both ways, byte-exact, and barge-in: what the model remembers matches what the caller heard."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    answered,
    assert_clean,
    caller_turn,
    delta_bytes,
    scenario_tools,
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


async def test_coalesced_marks_still_truncate_within_40_ms_of_what_was_heard(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    """A mark only every 250 ms of audio: the clock between the echoes keeps the cut where the caller was."""
    relay = await start_cached_relay(relay_factory, openai_fake, env={"MARK_INTERVAL_MS": "250"})
    call = relay.new_call()
    session = await answered(relay, call, 1)
    marks_before_reply = len(call.marks_received)
    session.script(AudioResponse(tone(3000), "one two three four five six seven eight nine ten eleven twelve"))
    await caller_turn(session, "What are your hours?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + 3000 * BYTES_PER_MS)
    await wait_until(lambda: heard_of_reply(call) >= 1130)  # between two marks (every 250 ms of the reply)
    await session.speech_started()
    truncate = await session.wait_for_event("conversation.item.truncate")
    await wait_until(lambda: call.clears == 1)
    heard = heard_of_reply(call)
    assert abs(truncate["audio_end_ms"] - heard) <= TRUNCATION_TOLERANCE_MS, (truncate["audio_end_ms"], heard)
    reply_marks = len(call.marks_received) - marks_before_reply
    assert reply_marks <= 3000 // 250 + 1  # one per 250 ms of the reply (and its end), not one per delta
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_the_end_of_an_utterance_is_marked_so_it_is_recorded_as_heard_in_full(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    """A reply whose length is no multiple of the mark interval: its tail gets a mark of its own, whose echo says the
    caller heard all of it."""
    relay = await start_cached_relay(relay_factory, openai_fake, env={"MARK_INTERVAL_MS": "250"})
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(AudioResponse(tone(630), "We open at nine."))
    await caller_turn(session, "When do you open?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + 630 * BYTES_PER_MS)
    reply_item = session.responses[-1]["item_id"]
    await wait_until(lambda: any(t.item_id == reply_item for t in relay.storage.store.list_turns(call.call_sid)))
    assert f"{reply_item}:630" in call.marks_received
    turn = next(t for t in relay.storage.store.list_turns(call.call_sid) if t.item_id == reply_item)
    assert not turn.interrupted
    assert turn.text == "We open at nine."
    await call.stop()
    await relay.wait_idle()
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


async def test_audio_of_a_cut_item_still_arriving_after_barge_in_is_never_played(
    relay_factory: Any, openai_factory: Any
) -> None:
    # Paced chunks, and an interruption the service processes three chunks late: those deltas reach the relay after
    # speech_started, as they do when they were already in flight.
    openai = await openai_factory(audio_chunk_ms=100, chunk_interval=0.05, interrupt_lag_chunks=3)
    relay = await start_cached_relay(relay_factory, openai)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    reply, next_reply = tone(3000), tone(300, freq=800)
    session.script(AudioResponse(reply, "one two three four five six"), AudioResponse(next_reply, "Yes?"))
    await caller_turn(session, "What are your hours?")
    await wait_until(lambda: call.heard_ms() * BYTES_PER_MS >= len(GREETING_INBOUND_AUDIO) + 200 * BYTES_PER_MS)
    await session.speech_started()
    done = await session.wait_for_response_done(nth=1)
    assert done["response"]["status"] == "cancelled"
    cut_item = session.responses[0]["item_id"]
    started_at = max(i for i, e in enumerate(session.sent_events) if e["type"] == "input_audio_buffer.speech_started")
    before = delta_bytes(session.sent_events[:started_at], cut_item)
    after = delta_bytes(session.sent_events[started_at:], cut_item)
    assert after > 0, "no audio arrived after speech_started: the test did not exercise in-flight deltas"
    await session.speech_stopped("Are you open now?")
    # The next reply passed through the same event stream after the late deltas: they were handled by then.
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + before + len(next_reply))
    assert bytes(call.received_media) == GREETING_INBOUND_AUDIO + reply[:before] + next_reply
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_barge_in_cuts_an_answer_the_caller_heard_none_of_at_zero(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=scenario_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    first, second = tone(1500, freq=500), tone(800, freq=700)
    session.script(
        AudioResponse(first, "Let me check that for you.", then_call=FunctionCallResponse("get_business_hours", {})),
        AudioResponse(second, "We are open from nine to five."),
    )
    await caller_turn(session, "When are you open?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(first) + len(second))
    first_item, second_item = session.responses[0]["item_id"], session.responses[1]["item_id"]
    # The answer reached Twilio but waits behind the first sentence: none of it has played.
    assert call.queued_ms() > len(second) / BYTES_PER_MS
    await session.speech_started()
    await wait_until(lambda: call.clears == 1)
    played = call.timeline.played_bytes_at(time.monotonic_ns())
    assert played < len(GREETING_INBOUND_AUDIO) + len(first)
    await session.wait_for_event("conversation.item.truncate", lambda e: e["item_id"] == second_item)
    await call.stop()
    await relay.wait_idle()
    cuts = {t["item_id"]: t["audio_end_ms"] for t in session.truncations}
    assert set(cuts) == {first_item, second_item}
    assert 0 < cuts[first_item] < len(first) / BYTES_PER_MS  # the sentence: cut where the caller stopped hearing it
    assert cuts[second_item] == 0  # the answer nobody heard: the model must not believe it said it
    answer = next(item for item in session.items if item["id"] == second_item)
    assert answer["truncated_at_ms"] == 0
    turns = relay.storage.store.list_turns(call.call_sid)
    assert [t.heard_ms for t in turns if t.item_id == second_item] in ([], [None])
    assert_clean(relay)
