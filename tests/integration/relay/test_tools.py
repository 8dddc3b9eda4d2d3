"""Tools run off the audio path; transfer and hang-up go through call control after the agent's words were heard."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

from relay.settings import RelaySettings
from relay.tools import Tool, ToolContext, ToolOutcome, ToolRegistry
from relay.tools.booking import BookAppointment, BookingRules, CheckAvailability
from relay.tools.booking_backends import LocalBookingStore
from relay.tools.call_tools import EndCall, TransferToHuman
from relay.tools.hours import GetBusinessHours
from relay.tools.schedule import OpeningSchedule
from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    GatedLookup,
    NoArgs,
    answered,
    assert_clean,
    caller_turn,
    scenario_tools,
    start_cached_relay,
    wait_until,
)


class SlowLookup(Tool[NoArgs]):
    name = "slow_lookup"
    description = "A lookup whose backend hangs."
    arguments = NoArgs

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        await asyncio.sleep(30)
        return ToolOutcome(output={"never": True})


class BrokenLookup(Tool[NoArgs]):
    name = "broken_lookup"
    description = "A lookup whose backend is broken."
    arguments = NoArgs
    calls: ClassVar[int] = 0

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        raise RuntimeError("backend exploded")


def registry_with_test_tools(settings: RelaySettings) -> ToolRegistry:
    schedule = OpeningSchedule(settings.weekly_hours, settings.timezone)
    backend = LocalBookingStore(schedule)
    rules = BookingRules(schedule)
    return ToolRegistry(
        [
            GetBusinessHours(schedule),
            CheckAvailability(rules, backend),
            BookAppointment(rules, backend),
            TransferToHuman(),
            EndCall(),
            SlowLookup(),
            BrokenLookup(),
        ]
    )


async def _relay(relay_factory: Any, openai: FakeRealtimeServer, call_control: FakeCallControl | None = None) -> Any:
    return await start_cached_relay(relay_factory, openai, call_control=call_control, tools=registry_with_test_tools)


async def _tool_round(relay: Any, name: str, arguments: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """The caller asks; the model calls `name`; returns (call, session, the function_call_output item sent)."""
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(FunctionCallResponse(name, arguments, call_id="call_test_1"), AudioResponse(tone(200), "Done."))
    await session.speech_started()
    await session.speech_stopped("Can you help?")
    output = await session.wait_for_event(
        "conversation.item.create", lambda e: e["item"]["type"] == "function_call_output", timeout=5
    )
    # After the output, the relay asks for the spoken answer (never while a response is active: the fake refuses).
    await session.wait_for_event("response.create", lambda e: True)
    await session.wait_for_response_done(nth=2)
    return call, session, output


async def test_business_hours_tool(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await _relay(relay_factory, openai_fake)
    call, _session, output = await _tool_round(relay, "get_business_hours", {})
    assert output["item"]["call_id"] == "call_test_1"
    result = json.loads(output["item"]["output"])
    assert "error" not in result
    await call.stop()
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.tool_call_count == 1
    turns = relay.storage.store.list_turns(call.call_sid)
    calls = [tool for turn in turns for tool in turn.tool_calls]
    assert [c.name for c in calls] == ["get_business_hours"]
    assert calls[0].ok
    assert_clean(relay)


async def test_booking_tools_use_the_call_table(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await _relay(relay_factory, openai_fake)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 3 * 86400))
    call, _session, output = await _tool_round(
        relay, "book_appointment", {"name": "Ada Lovelace", "date": day, "time": "10:00", "party_size": 2}
    )
    result = json.loads(output["item"]["output"])
    assert "error" not in result, result
    bookings = relay.storage.store.list_bookings(day)
    assert [(b.name, b.time, b.party_size) for b in bookings] == [("Ada Lovelace", "10:00", 2)]
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_slow_tool_times_out_with_a_graceful_error(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await _relay(relay_factory, openai_fake)
    call, session, output = await _tool_round(relay, "slow_lookup", {})
    result = json.loads(output["item"]["output"])
    assert "timed out" in result["error"]
    # The audio path kept flowing while the tool hung: caller audio still reached the model.
    before = len(session.input_audio)
    await call.send_silence(100)
    await session.wait_for_input_audio(before + 800)
    await call.stop()
    await relay.wait_idle()
    [tool] = [t for turn in relay.storage.store.list_turns(call.call_sid) for t in turn.tool_calls]
    assert not tool.ok
    assert_clean(relay)


async def test_failing_tool_gives_the_model_an_error_to_put_into_words(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await _relay(relay_factory, openai_fake)
    call, _session, output = await _tool_round(relay, "broken_lookup", {})
    result = json.loads(output["item"]["output"])
    assert "failed" in result["error"]
    assert "exploded" not in result["error"]  # internals never reach the model
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_transfer_after_the_agent_said_so(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await _relay(relay_factory, openai_fake, call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    handoff_words = tone(600, freq=600)
    session.script(
        FunctionCallResponse(
            "transfer_to_human", {"reason": "billing dispute", "summary": "Caller disputes an invoice."}
        ),
        AudioResponse(handoff_words, "I'm connecting you to a colleague now."),
    )
    await session.speech_started()
    await session.speech_stopped("I want to talk to a person about my bill.")
    snapshot = _snapshot_when_requested(call_control_fake, "transfer", call)
    call_sid, body = await call_control_fake.wait_for("transfer", timeout=10)
    assert call_sid == call.call_sid
    assert body == {"reason": "billing dispute", "summary": "Caller disputes an invoice."}
    heard_bytes, received_bytes = await snapshot
    assert received_bytes >= len(handoff_words)
    assert heard_bytes == received_bytes  # the hand-off sentence had been heard in full before the transfer
    await call.stop()
    await relay.wait_idle()
    record = relay.storage.store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "transferred"
    assert_clean(relay)


async def test_end_call_hangs_up_only_after_the_goodbye_was_heard(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await _relay(relay_factory, openai_fake, call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    goodbye = tone(800, freq=520)
    session.script(
        FunctionCallResponse("end_call", {"reason": "caller is done"}),
        AudioResponse(goodbye, "Thanks for calling, goodbye!"),
    )
    await session.speech_started()
    await session.speech_stopped("That's all, thanks. Bye!")
    snapshot = _snapshot_when_requested(call_control_fake, "hangup", call)
    call_sid, body = await call_control_fake.wait_for("hangup", timeout=10)
    assert (call_sid, body) == (call.call_sid, {"reason": "caller is done"})
    heard_bytes, received_bytes = await snapshot
    assert heard_bytes == received_bytes
    goodbye_marks = [m for m in call.marks_received if m.startswith(session.responses[-1]["item_id"])]
    echoed = {name: cleared for name, _, cleared in call.marks_echoed}
    assert goodbye_marks
    assert echoed.get(goodbye_marks[-1]) is False  # the goodbye's last mark was echoed as played, not cleared
    await call.stop()
    await relay.wait_idle()
    outcome = relay.storage.store.require_call(call.call_sid).outcome
    assert outcome is not None
    assert outcome.value == "completed_by_agent"
    assert_clean(relay)


async def test_the_stream_stopping_while_the_hangup_is_answered_still_records_the_agents_hangup(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    """Twilio completes the call (and stops the stream) before the hang-up request's answer reaches the relay: the
    stream's end is the hang-up's own doing, not the caller hanging up."""
    relay = await _relay(relay_factory, openai_fake, call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(
        FunctionCallResponse("end_call", {"reason": "caller is done"}),
        AudioResponse(tone(300, freq=520), "Goodbye!"),
    )
    call_control_fake.set_response("hangup", delay=3.0)
    await session.speech_started()
    await session.speech_stopped("That's all, bye!")
    await call_control_fake.wait_for("hangup", timeout=10)
    await call.stop()  # while the hang-up request is still waiting for its answer
    await relay.wait_idle()
    outcome = relay.storage.store.require_call(call.call_sid).outcome
    assert outcome is not None
    assert outcome.value == "completed_by_agent"
    assert_clean(relay)


async def test_the_stream_stopping_while_the_transfer_is_answered_records_the_transfer(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await _relay(relay_factory, openai_fake, call_control_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(
        FunctionCallResponse("transfer_to_human", {"reason": "billing", "summary": "Caller disputes an invoice."}),
        AudioResponse(tone(300, freq=600), "Connecting you now."),
    )
    call_control_fake.set_response("transfer", delay=3.0)
    await session.speech_started()
    await session.speech_stopped("A person please.")
    await call_control_fake.wait_for("transfer", timeout=10)
    await call.stop()  # Twilio redirected the call before the transfer endpoint answered
    await relay.wait_idle()
    outcome = relay.storage.store.require_call(call.call_sid).outcome
    assert outcome is not None
    assert outcome.value == "transferred"
    assert_clean(relay)


async def test_a_tool_failing_outside_the_registry_still_answers_the_model(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=scenario_tools)
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


async def test_model_audio_keeps_flowing_while_a_slow_tool_runs(
    relay_factory: Any, openai_fake: FakeRealtimeServer, gated: type[GatedLookup]
) -> None:
    relay = await start_cached_relay(
        relay_factory, openai_fake, tools=scenario_tools, env={"TOOL_TIMEOUT_SECONDS": "10"}
    )
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


async def test_barge_in_over_the_goodbye_cancels_the_hang_up(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, call_control=call_control_fake, tools=scenario_tools)
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


def _snapshot_when_requested(control: FakeCallControl, action: str, call: Any) -> asyncio.Task[tuple[int, int]]:
    """(bytes the caller had heard, bytes the relay had sent) at the moment `action` reached call control."""

    async def watch() -> tuple[int, int]:
        await wait_until(lambda: bool(control.calls_for(action)), timeout=10)
        return call.timeline.played_bytes_at(time.monotonic_ns()), len(call.received_media)

    return asyncio.create_task(watch())
