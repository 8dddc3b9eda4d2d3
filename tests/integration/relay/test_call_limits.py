"""The call's limits: silence on both sides (check in, then goodbye), the maximum length (warn, wrap up, end) and a
media stream gone quiet (a dead line). Each ends the call the way the agent's own hang-up does."""

from __future__ import annotations

import os
from typing import Any

from tests.fakes.audio import tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FakeRealtimeSession
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    answered,
    assert_clean,
    caller_turn,
    start_cached_relay,
)


def asked_with(session: FakeRealtimeSession, words: str) -> list[dict[str, Any]]:
    """The response.create events whose instructions contain `words`."""
    return [
        e
        for e in session.events
        if e["type"] == "response.create" and words in (e.get("response") or {}).get("instructions", "")
    ]


async def test_silence_gets_one_check_in_then_a_goodbye_and_the_call_ends_through_the_hang_up(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(
        relay_factory, openai_fake, call_control=call_control_fake, env={"SILENCE_TIMEOUT_SECONDS": "1"}
    )
    call = relay.new_call()
    session = await answered(relay, call, 1)
    check_in, goodbye = tone(400, freq=600), tone(500, freq=500)
    session.script(
        AudioResponse(check_in, "Are you still there?"),
        AudioResponse(goodbye, "I can't hear you, so I'll end the call. Please call back anytime."),
    )
    await session.wait_for_event("response.create", lambda e: "still there" in e["response"]["instructions"])
    await session.wait_for_event("response.create", lambda e: "ending the call" in e["response"]["instructions"])
    _, body = await call_control_fake.wait_for("hangup", timeout=5)
    assert body == {"reason": "silence"}
    # The goodbye was heard before the hang-up, and the stream closes with it.
    assert len(call.received_media) == len(GREETING_INBOUND_AUDIO) + len(check_in) + len(goodbye)
    await call.wait_closed(timeout=3)
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "silence"
    assert relay.metric_values("SilenceEnds") == [1]
    assert len(asked_with(session, "still there")) == 1  # one check-in, not one per silence
    assert_clean(relay)


async def test_the_caller_speaking_starts_the_silence_over(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(
        relay_factory, openai_fake, call_control=call_control_fake, env={"SILENCE_TIMEOUT_SECONDS": "1"}
    )
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(
        AudioResponse(tone(300, freq=600), "Are you still there?"),
        AudioResponse(tone(300, freq=650), "Great, how can I help?"),
        AudioResponse(tone(300, freq=600), "Are you still there?"),
    )
    await session.wait_for_event("response.create", lambda e: "still there" in e["response"]["instructions"])
    await session.wait_for_response_done(nth=1)
    await caller_turn(session, "Yes, sorry, I'm here.")
    await session.wait_for_response_done(nth=2)
    # After the caller spoke, the next silence gets a check-in again, never the goodbye.
    await session.wait_for_event(
        "response.create", lambda e: "still there" in e["response"]["instructions"], nth=2, timeout=5
    )
    assert asked_with(session, "ending the call") == []
    assert call_control_fake.calls_for("hangup") == []
    await call.stop()
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "caller_hung_up"  # type: ignore[union-attr]
    assert relay.metric_values("SilenceEnds") == []


async def test_the_maximum_call_length_warns_then_ends_through_the_hang_up(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(
        relay_factory,
        openai_fake,
        call_control=call_control_fake,
        env={"MAX_CALL_SECONDS": "3", "MAX_CALL_WARNING_SECONDS": "1.5"},
    )
    call = relay.new_call()
    session = await answered(relay, call, 1)
    wrap_up = tone(400, freq=520)
    session.script(AudioResponse(wrap_up, "We're almost out of time; thanks for calling, goodbye!"))
    note = await session.wait_for_event("conversation.item.create", lambda e: e["item"].get("role") == "system")
    assert "time limit" in note["item"]["content"][0]["text"]
    await session.wait_for_event("response.create")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(wrap_up))  # the agent wrapped up
    assert call_control_fake.calls_for("hangup") == []  # warned first, ended later
    _, body = await call_control_fake.wait_for("hangup", timeout=4)
    assert body == {"reason": "max_call_length"}
    await call.wait_closed(timeout=3)
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "max_duration"
    assert_clean(relay)


async def test_a_media_stream_that_sends_nothing_is_ended_as_a_dead_line(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, env={"STREAM_IDLE_TIMEOUT_SECONDS": "1"})
    live_call = relay.new_call()
    await answered(relay, live_call, 1)
    await live_call.send_audio(os.urandom(160 * 75))  # 1.5 s of real-time audio: a live line is never idle
    assert not live_call.closed.is_set()
    await live_call.stop()
    dead_call = relay.new_call()
    await answered(relay, dead_call, 2)  # then the peer goes quiet without closing (a half-open connection)
    await dead_call.wait_closed(timeout=4)
    assert dead_call.close_code == 1001
    await relay.wait_idle()
    record = relay.storage.store.require_call(dead_call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "error"
    assert record.error is not None
    assert "sent nothing" in record.error
    assert relay.storage.store.require_call(live_call.call_sid).outcome.value == "caller_hung_up"  # type: ignore[union-attr]
