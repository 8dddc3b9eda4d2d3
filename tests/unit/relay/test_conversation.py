"""What a new model session is told: the conversation as the caller heard it, in order, once, within a bound."""

from __future__ import annotations

from typing import Any

from openai.types.realtime import RealtimeClientEvent
from pydantic import TypeAdapter

from callcore.models import utc_now
from relay.conversation import AgentUtterance, ConversationMemory
from tests.fakes.openai_realtime import created_items

CLIENT_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)


def described(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    for event in events:
        CLIENT_EVENT.validate_python(event)  # each one a valid GA client event
    return created_items(events)


def utterance(text: str, generation: int = 0) -> AgentUtterance:
    return AgentUtterance(started_at=utc_now(), generation=generation, text=text)


def a_call(memory: ConversationMemory) -> AgentUtterance:
    """Greeting heard, a caller turn, a tool round, an answer cut short by a barge-in."""
    greeting = AgentUtterance(started_at=utc_now(), generation=-1, text="Thanks for calling.")
    memory.greeting(greeting)
    greeting.said = "Thanks for calling."
    memory.caller_turn("item_c1", 0)
    memory.function_call("call_1", "get_business_hours", "{}", 0)
    memory.caller_said("item_c1", "When are you open?", 0)  # the transcription arrives after the tool call began
    memory.function_output("call_1", '{"open_now":true}')
    answer = utterance("We are open from nine until five every day.")
    memory.agent_item("item_a1", answer)
    answer.said = "We are open from nine"  # what the caller heard before barging in
    return answer


def test_a_new_session_gets_the_conversation_as_heard_in_order() -> None:
    memory = ConversationMemory()
    a_call(memory)
    assert described(memory.pending(1)) == [
        ("assistant", "Thanks for calling."),
        ("user", "When are you open?"),  # where the turn was committed, though its text came later
        ("function_call", "get_business_hours"),
        ("function_call_output", "call_1"),
        ("assistant", "We are open from nine"),
    ]
    assert memory.pending(1) == []  # once
    assert memory.dropped(1) == 0


def test_the_session_that_made_the_items_gets_only_what_the_relay_added() -> None:
    memory = ConversationMemory()
    a_call(memory)
    assert described(memory.pending(0)) == [("assistant", "Thanks for calling."), ("function_call_output", "call_1")]
    memory.note("Wrap up.")
    memory.keypad("The caller pressed 7 on the keypad.")
    assert described(memory.pending(0)) == [("system", "Wrap up."), ("user", "The caller pressed 7 on the keypad.")]


def test_a_session_given_the_conversation_is_not_given_it_twice_nor_is_the_one_that_made_it() -> None:
    memory = ConversationMemory()
    a_call(memory)
    memory.pending(0)
    memory.pending(1)  # a rotation's session was seeded, then never switched to
    memory.note("Wrap up.")
    assert described(memory.pending(0)) == [("system", "Wrap up.")]  # the old session gets no repeat
    assert described(memory.pending(1)) == [("system", "Wrap up.")]


def test_the_greeting_waits_until_heard_and_goes_to_the_root() -> None:
    memory = ConversationMemory()
    greeting = AgentUtterance(started_at=utc_now(), generation=-1, text="Thanks for calling the office.")
    memory.greeting(greeting)
    assert memory.pending(0) == []  # still playing: the model must not believe more than the caller heard
    greeting.said = "Thanks for calling"
    [event] = memory.pending(0)
    assert event["previous_item_id"] == "root"
    assert event["item"]["content"][0]["text"] == "Thanks for calling"


def test_an_utterance_still_playing_counts_with_what_was_generated() -> None:
    memory = ConversationMemory()
    playing = utterance("Our menu has starters and", generation=0)
    memory.agent_item("item_a1", playing)
    assert described(memory.pending(1)) == [("assistant", "Our menu has starters and")]


def test_a_long_call_keeps_its_most_recent_turns_and_a_tool_call_with_its_output() -> None:
    memory = ConversationMemory(max_seed_chars=120)
    for index in range(6):
        memory.caller_turn(f"item_c{index}", 0)
        memory.caller_said(f"item_c{index}", f"caller line number {index} " + "x" * 10, 0)
    memory.function_call("call_big", "lookup", "{" + "a" * 30 + "}", 0)
    memory.function_output("call_big", "{" + "b" * 30 + "}")
    memory.caller_turn("item_last", 0)
    memory.caller_said("item_last", "the last thing said", 0)
    seeded = described(memory.pending(1))
    assert seeded[-1] == ("user", "the last thing said")
    assert ("function_call", "lookup") in seeded
    assert ("function_call_output", "call_big") in seeded
    assert seeded.index(("function_call", "lookup")) < seeded.index(("function_call_output", "call_big"))
    assert ("user", "caller line number 0 " + "x" * 10) not in seeded  # the oldest went first
    assert memory.dropped(1) > 0
    assert sum(len(text) for role, text in seeded if role == "user") <= 120


def test_a_tool_output_that_does_not_fit_drops_its_call_too() -> None:
    memory = ConversationMemory(max_seed_chars=40)
    memory.function_call("call_big", "lookup", "{}", 0)
    memory.function_output("call_big", "{" + "b" * 60 + "}")
    memory.caller_turn("item_last", 0)
    memory.caller_said("item_last", "short", 0)
    assert described(memory.pending(1)) == [("user", "short")]
