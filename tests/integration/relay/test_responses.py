"""One model response at a time: the relay asks for one only when none is active, and asks again after the active one
only when something it added is still unanswered (so the agent never talks twice)."""

from __future__ import annotations

from typing import Any

from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    answered,
    assert_clean,
    caller_turn,
    scenario_tools,
    start_cached_relay,
    wait_until,
)


async def test_a_crossing_response_create_is_not_reissued(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, tools=scenario_tools)
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
    relay = await start_cached_relay(relay_factory, openai_fake, tools=scenario_tools)
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
