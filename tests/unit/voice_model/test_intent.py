"""The stand-in's dialogue rules: what it does with what it heard, and what it says with what the tools returned."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from local.voice_model.intent import (
    DID_NOT_CATCH,
    Context,
    Turn,
    business_name,
    infer_today,
    respond,
    verbatim,
)

TOOLS = frozenset({"get_business_hours", "check_availability", "book_appointment", "transfer_to_human", "end_call"})
INSTRUCTIONS = (
    "You are the phone receptionist of Harbor Bistro.\n- Local time at Harbor Bistro: 14:03 (Thursday, afternoon).\n"
    "- Opening hours: Monday: 11:00-22:00; Tuesday: 11:00-22:00; Sunday: closed."
)
TODAY = date(2026, 12, 3)  # a Thursday
TOMORROW = "2026-12-04"


def context(*turns: Turn, tools: frozenset[str] = TOOLS) -> Context:
    return Context(instructions=INSTRUCTIONS, tools=tools, turns=turns, today=TODAY)


def caller(text: str) -> Turn:
    return Turn("user", text)


def output(tool: str, value: dict[str, object]) -> Turn:
    return Turn("function_call_output", json.dumps(value, separators=(",", ":")), tool)


AVAILABLE = {"date": TOMORROW, "weekday": "Friday", "available_times": ["19:30", "20:00"], "requested_time": "20:00",
             "requested_time_available": True}  # fmt: skip
TAKEN = {"date": TOMORROW, "weekday": "Friday", "available_times": ["19:30", "20:30"], "requested_time": "20:00",
         "requested_time_available": False, "nearest_available_times": ["19:30", "20:30"]}  # fmt: skip
BOOKING = "sorry i would like to book a table for two tomorrow at eight in the evening"


def test_a_question_about_opening_hours_calls_the_hours_tool() -> None:
    reply = respond(context(caller("hello what are your opening hours today")))
    assert (reply.tool, reply.arguments, reply.speech) == ("get_business_hours", {}, None)


def test_hours_on_another_day_ask_the_tool_for_that_date() -> None:
    reply = respond(context(caller("are you open tomorrow")))
    assert reply.arguments == {"date": TOMORROW}


def test_the_hours_answer_is_built_from_the_tool_result_and_is_long_enough_to_talk_over() -> None:
    hours = {"weekly_hours": "Monday: 11:00-22:00; Tuesday: 11:00-22:00; Wednesday: closed", "open_now": True,
             "closes_at": "22:00"}  # fmt: skip
    reply = respond(context(caller("what are your hours"), output("get_business_hours", hours)))
    assert reply.speech is not None
    assert reply.speech.startswith("We're open right now, until ten at night today.")
    assert "Monday to Tuesday from eleven in the morning until ten at night, and closed on Wednesday" in reply.speech
    assert "how many people" in reply.speech


def test_a_booking_request_with_day_and_time_checks_availability_first() -> None:
    reply = respond(context(caller(BOOKING)))
    assert (reply.tool, reply.arguments) == ("check_availability", {"date": TOMORROW, "time": "20:00"})


def test_a_bare_hour_is_read_inside_the_opening_hours() -> None:
    reply = respond(context(caller("can i book a table for four tomorrow at eight")))
    assert reply.arguments["time"] == "20:00"  # eight in the morning is before the bistro opens


def test_a_booking_without_a_day_asks_for_one() -> None:
    reply = respond(context(caller("i would like to book a table")))
    assert reply.tool is None
    assert reply.speech == "Sure. For which day would you like the table?"


def test_a_free_time_is_confirmed_and_the_name_asked_for() -> None:
    reply = respond(context(caller(BOOKING), output("check_availability", AVAILABLE)))
    assert reply.speech == (
        "Good news: we have a table for two on Friday the fourth at eight in the evening. "
        "What name should I put the booking under?"
    )


def test_the_name_completes_the_booking_with_what_was_said_across_turns() -> None:
    turns = (caller(BOOKING), output("check_availability", AVAILABLE), caller("yes please my name is ada"))
    reply = respond(context(*turns))
    assert reply.tool == "book_appointment"
    assert reply.arguments == {"name": "Ada", "date": TOMORROW, "time": "20:00", "party_size": 2}


def test_a_taken_time_gets_alternatives_and_a_yes_books_the_first_one() -> None:
    offer = respond(context(caller(BOOKING), output("check_availability", TAKEN)))
    assert offer.speech is not None
    assert "eight in the evening on Friday the fourth is taken" in offer.speech
    assert "seven thirty in the evening, or eight thirty in the evening" in offer.speech
    answer = caller("yes please the name is grace")
    booked = respond(context(caller(BOOKING), output("check_availability", TAKEN), answer))
    assert booked.arguments == {"name": "Grace", "date": TOMORROW, "time": "19:30", "party_size": 2}


def test_the_booking_result_is_read_back_with_the_code_spelled() -> None:
    result = {"booked": True, "date": TOMORROW, "time": "20:00", "name": "Ada", "party_size": 2,
              "confirmation_code": "K7P"}  # fmt: skip
    reply = respond(context(caller(BOOKING), output("book_appointment", result)))
    assert reply.speech == (
        "You're all set, Ada: a table for two on Friday the fourth at eight in the evening. "
        "Your confirmation code is K 7 P. Is there anything else I can help you with?"
    )


def test_after_a_booking_a_new_request_starts_afresh() -> None:
    done = {"booked": True, "date": TOMORROW, "time": "20:00", "name": "Ada", "party_size": 2}
    reply = respond(context(caller(BOOKING), output("book_appointment", done), caller("can i book a table")))
    assert reply.speech == "Sure. For which day would you like the table?"


def test_goodbye_ends_the_call_and_the_goodbye_names_the_business() -> None:
    assert respond(context(caller("no thanks that is all goodbye"))).tool == "end_call"
    farewell = respond(context(caller("goodbye"), output("end_call", {"ending_call": True})))
    assert farewell.speech == "Thanks for calling Harbor Bistro. Goodbye!"


def test_asking_for_a_person_transfers_and_the_hand_off_is_said() -> None:
    reply = respond(context(caller("can i talk to a person please")))
    assert reply.tool == "transfer_to_human"
    assert set(reply.arguments) == {"reason", "summary"}
    said = respond(context(caller("a person"), output("transfer_to_human", {"transferring": True})))
    assert said.speech == "Of course. I'm connecting you to a member of the team now."


def test_a_tool_the_session_did_not_declare_is_never_called() -> None:
    reply = respond(context(caller("can i talk to a person"), tools=frozenset({"end_call"})))
    assert reply.tool is None
    assert reply.speech is not None


def test_nothing_recognised_or_nothing_understood_is_said_plainly() -> None:
    assert respond(context(caller(""))).speech == "Sorry, I didn't catch that. Could you say it again?"
    assert respond(context(caller("hello"))).speech == DID_NOT_CATCH


def test_a_tool_error_is_apologised_for() -> None:
    reply = respond(context(caller(BOOKING), output("check_availability", {"error": "the backend is down"})))
    assert reply.speech == "I'm sorry, that didn't work. Could we try another day or time?"


def test_words_a_response_is_told_to_say_are_said_as_they_are() -> None:
    rendered = "Say exactly the following, word for word, in a warm and natural tone: Thanks for calling Harbor Bistro."
    assert verbatim(rendered) == "Thanks for calling Harbor Bistro."
    assert verbatim('Greet the caller now by saying: "Hello there. How can I help?"') == "Hello there. How can I help?"
    assert verbatim("You are a receptionist.") is None


def test_the_business_is_read_from_the_instructions_or_the_greeting() -> None:
    assert business_name(INSTRUCTIONS) == "Harbor Bistro"
    greeting = (Turn("assistant", "Thanks for calling Dental Care. How can I help?"),)
    assert business_name("Be brief.", greeting) == "Dental Care"
    assert business_name("Be brief.") is None


def test_today_is_the_date_with_the_weekday_the_instructions_name() -> None:
    late_utc = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # already Friday in UTC, still Thursday evening in New York
    assert infer_today("Local time: 22:00 (Thursday, evening).", late_utc) == date(2026, 12, 3)
    assert infer_today("Local time: 04:00 (Friday, morning).", late_utc) == date(2026, 12, 4)
