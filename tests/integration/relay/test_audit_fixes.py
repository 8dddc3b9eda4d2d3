"""Defects found in the relay audit, each over real sockets; every test here failed before its fix (or, for the
coverage gaps, fails when the guard it covers is removed)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from callcore.models import CallDirection, TurnRole
from relay.app import GREETINGS
from relay.call_control import CallControlClient
from relay.settings import RelaySettings
from relay.tools import Tool, ToolContext, ToolOutcome, ToolRegistry
from relay.tools.call_tools import EndCall
from relay.tools.hours import GetBusinessHours
from relay.tools.schedule import OpeningSchedule
from tests.fakes.audio import BYTES_PER_MS, silence, tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    GREETING_OUTBOUND_AUDIO,
    Relay,
    answered,
    assert_clean,
    start_cached_relay,
    wait_until,
)
from tests.integration.relay.test_tools import NoArgs

TRUNCATION_TOLERANCE_MS = 40


class ClockLookup(Tool[NoArgs]):
    """Returns a value JSON cannot encode: the failure happens after the registry, in the session."""

    name = "clock_lookup"
    description = "Tells the time."
    arguments = NoArgs

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        return ToolOutcome(output={"now": datetime.now(UTC)})


class GatedLookup(Tool[NoArgs]):
    """Runs until the test opens the gate; swallows cancellation when `stubborn` (the bug teardown must survive)."""

    name = "gated_lookup"
    description = "A lookup the test controls."
    arguments = NoArgs
    gate: ClassVar[asyncio.Event]
    entered: ClassVar[asyncio.Event]
    stubborn: ClassVar[bool] = False

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        GatedLookup.entered.set()
        while not GatedLookup.gate.is_set():
            try:
                await GatedLookup.gate.wait()
            except asyncio.CancelledError:
                if not GatedLookup.stubborn:
                    raise
        return ToolOutcome(output={"found": True})


@pytest.fixture
def gated() -> type[GatedLookup]:
    GatedLookup.gate = asyncio.Event()
    GatedLookup.entered = asyncio.Event()
    GatedLookup.stubborn = False
    return GatedLookup


def test_tools(settings: RelaySettings) -> ToolRegistry:
    schedule = OpeningSchedule(settings.weekly_hours, settings.timezone)
    return ToolRegistry([GetBusinessHours(schedule), EndCall(), ClockLookup(), GatedLookup()])


test_tools.__test__ = False  # type: ignore[attr-defined]  # a registry factory, not a test


async def caller_turn(session: Any, transcript: str) -> None:
    await session.speech_started()
    await session.speech_stopped(transcript)


def delta_bytes(events: list[dict[str, Any]], item_id: str) -> int:
    return sum(
        len(base64.b64decode(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta" and e["item_id"] == item_id
    )


# ---- 1. an interrupted cached greeting ------------------------------------------------------------------------------

LONG_GREETING = tone(2400, freq=350)


async def start_long_greeting_relay(relay_factory: Any, openai: FakeRealtimeServer, **kwargs: Any) -> Relay:
    openai.script(AudioResponse(LONG_GREETING, "Thanks for calling."), AudioResponse(GREETING_OUTBOUND_AUDIO, "Hi."))
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
    await session.wait_for_event("session.update")  # the call's instructions: the relay handles model events now
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


# ---- 3. a tool failure outside the registry -------------------------------------------------------------------------


async def test_a_tool_failing_outside_the_registry_still_answers_the_model(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    apology = tone(300, freq=620)
    session.script(FunctionCallResponse("clock_lookup", {}, call_id="call_clock"), AudioResponse(apology, "Sorry."))
    await caller_turn(session, "What time is it?")
    output = await session.wait_for_event(
        "conversation.item.create", lambda e: e["item"]["type"] == "function_call_output"
    )
    assert output["item"]["call_id"] == "call_clock"
    assert "failed" in json.loads(output["item"]["output"])["error"]
    await session.wait_for_event("response.create")  # the model is asked to put the failure into words
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(apology))  # no dead air
    await call.stop()
    await relay.wait_idle()
    [tool] = [t for turn in relay.storage.store.list_turns(call.call_sid) for t in turn.tool_calls]
    assert not tool.ok
    assert relay.metric_values("ToolErrors") == [1]
    assert_clean(relay)


# ---- 4. teardown is bounded even when a task ignores cancellation ---------------------------------------------------


async def test_a_task_ignoring_cancellation_does_not_keep_the_sockets_open(
    relay_factory: Any, openai_fake: FakeRealtimeServer, gated: type[GatedLookup]
) -> None:
    gated.stubborn = True
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(FunctionCallResponse("gated_lookup", {}))
    try:
        await caller_turn(session, "Can you look that up?")
        await asyncio.wait_for(gated.entered.wait(), 5)
        await session.drop()  # the model goes away; the relay ends the call while the tool still hangs
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
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools)
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


# ---- 5. the greeting seed sits at the start of the conversation -----------------------------------------------------


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


# ---- 6. a response the server started crosses the relay's response.create ------------------------------------------


async def test_a_crossing_response_create_is_not_reissued(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    answer = tone(1500, freq=560)
    session.script(
        FunctionCallResponse("get_business_hours", {}, call_id="call_hours"),
        AudioResponse(answer, "We are open from nine to five."),
        AudioResponse(tone(400, freq=700), "A second answer nobody asked for."),
    )
    # The caller speaks again just as the tool's result goes in: the server's VAD starts a response, and the relay's
    # own response.create arrives while that one is active (the service answers it with an error).
    session.before_next("response.create", lambda: caller_turn(session, "Hello? Are you there?"))
    await caller_turn(session, "When are you open?")
    done = await session.wait_for_response_done(nth=2)
    assert done["response"]["status"] == "completed"
    assert [e["error"]["code"] for e in session.errors_sent] == ["conversation_already_has_active_response"]
    answer_item = session.responses[1]["item_id"]
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(answer))
    await wait_until(lambda: call.heard_ms() * BYTES_PER_MS >= len(GREETING_INBOUND_AUDIO) + 200 * BYTES_PER_MS)
    # A marker: the relay handles events in order, so by the time it answers this barge-in with a truncate it has
    # handled the response.done above, where the duplicate response.create would have been sent.
    await session.speech_started()
    truncate = await session.wait_for_event("conversation.item.truncate")
    assert truncate["item_id"] == answer_item
    assert len([e for e in session.events if e["type"] == "response.create"]) == 1
    assert len(session.responses) == 2  # the tool call and the one answer
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_a_response_create_deferred_behind_the_tool_call_is_still_sent(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    """The other side of the rule: the tool's output is not answered yet when the relay has to wait, so it asks."""
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    first, second = tone(1200, freq=500), tone(600, freq=700)
    session.script(
        AudioResponse(first, "Let me check that.", then_call=FunctionCallResponse("get_business_hours", {})),
        AudioResponse(second, "We are open from nine to five."),
    )
    await caller_turn(session, "When are you open?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(first) + len(second))
    assert len(session.responses) == 2
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


# ---- 7. fail-over transfer: Twilio closes when the attempt ends, whatever happened ----------------------------------


async def test_failover_transfer_that_breaks_unexpectedly_still_closes_twilio(
    relay_factory: Any,
    openai_fake: FakeRealtimeServer,
    call_control_fake: FakeCallControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_transfer(self: CallControlClient, call_sid: str, *, reason: str, summary: str) -> Any:
        raise RuntimeError("Session is closed")

    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake)
    monkeypatch.setattr(CallControlClient, "transfer", broken_transfer)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await session.expire()
    await call.wait_closed(timeout=5)
    assert call.close_code == 1001
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "error"  # type: ignore[union-attr]


async def test_failover_transfer_that_hangs_closes_twilio_when_the_attempt_is_given_up(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    from relay.call_session import FAILOVER_TRANSFER_SECONDS

    call_control_fake.set_response("transfer", delay=FAILOVER_TRANSFER_SECONDS + 2)
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await session.expire()
    await call_control_fake.wait_for("transfer")
    await call.wait_closed(timeout=FAILOVER_TRANSFER_SECONDS + 2)
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "error"  # type: ignore[union-attr]


# ---- 8. the caller speaks over the goodbye --------------------------------------------------------------------------


async def test_barge_in_over_the_goodbye_cancels_the_hang_up(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake, tools=test_tools)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    goodbye, reply = tone(2000, freq=520), tone(400, freq=660)
    session.script(
        FunctionCallResponse("end_call", {"reason": "caller is done"}),
        AudioResponse(goodbye, "Thanks for calling, goodbye!"),
        AudioResponse(reply, "Of course, what else can I do?"),
    )
    await caller_turn(session, "That's all, bye!")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(goodbye))
    await wait_until(lambda: call.heard_ms() * BYTES_PER_MS >= len(GREETING_INBOUND_AUDIO) + 300 * BYTES_PER_MS)
    await session.speech_started()  # "oh wait..."
    note = await session.wait_for_event("conversation.item.create", lambda e: e["item"].get("role") == "system")
    assert "not ended" in note["item"]["content"][0]["text"]
    await session.speech_stopped("Oh wait, one more thing.")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(goodbye) + len(reply))
    await wait_until(lambda: call.queued_ms() == 0)  # the model's answer to the new turn was heard in full
    assert call_control_fake.calls_for("hangup") == []
    assert not call.closed.is_set()
    await call.stop()
    await relay.wait_idle()
    assert relay.storage.store.require_call(call.call_sid).outcome.value == "caller_hung_up"  # type: ignore[union-attr]
    assert_clean(relay)


# ---- 9. coverage gaps -----------------------------------------------------------------------------------------------


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


async def test_barge_in_with_an_answer_queued_but_unheard_truncates_only_what_played(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools)
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
    await call.stop()
    await relay.wait_idle()
    assert [t["item_id"] for t in session.truncations] == [first_item]  # the queued answer: nothing heard, no cut
    assert not [e for e in session.events if e.get("item_id") == second_item]
    turns = relay.storage.store.list_turns(call.call_sid)
    assert [t.heard_ms for t in turns if t.item_id == second_item] in ([], [None])
    assert_clean(relay)


async def test_model_audio_keeps_flowing_while_a_slow_tool_runs(
    relay_factory: Any, openai_fake: FakeRealtimeServer, gated: type[GatedLookup]
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=test_tools, env={"TOOL_TIMEOUT_SECONDS": "10"})
    call = relay.new_call()
    session = await answered(relay, call, 1)
    hold, answer = tone(600, freq=450), tone(300, freq=750)
    session.script(
        FunctionCallResponse("gated_lookup", {}, call_id="call_gated"),
        AudioResponse(hold, "Still there? One moment please."),
        AudioResponse(answer, "Found it."),
    )
    try:
        await caller_turn(session, "Can you look that up?")
        await asyncio.wait_for(gated.entered.wait(), 5)
        await caller_turn(session, "Hello?")  # the model answers while the tool is still running
        await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(hold))
        assert not gated.gate.is_set()  # ordering: that audio reached the caller before the tool finished
    finally:
        gated.gate.set()
    output = await session.wait_for_event(
        "conversation.item.create", lambda e: e["item"]["type"] == "function_call_output"
    )
    assert json.loads(output["item"]["output"]) == {"found": True}
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + len(hold) + len(answer))
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_a_transcript_turn_is_stored_before_the_call_ends(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(AudioResponse(tone(200), "Sure."))
    await caller_turn(session, "A table for two, please.")

    def stored() -> bool:
        return any(t.text == "A table for two, please." for t in relay.storage.store.list_turns(call.call_sid))

    await wait_until(stored)
    assert relay.live_calls == 1  # the call is still going
    assert not call.closed.is_set()
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)
