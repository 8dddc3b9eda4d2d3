"""Calls on business lines: with receptionist profiles published, the voice webhook answers each dialled number on
its own line (its seats, hours, human line), the record carries the profile id and version, transfers and outbound
calls follow the line, and a redeploy reaches the next call but not the live one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twilio.twiml.voice_response import VoiceResponse

from callcore.models import CallDirection, CallOutcome
from callcore.store.receptionist_profiles import CATALOG_CACHE_SECONDS, ReceptionistProfiles
from lambdas.handlers import incoming_call, outbound_call, transfer
from lambdas.logic.incoming_call import answer_call
from lambdas.logic.lines import Lines
from lambdas.models import VoiceWebhook
from lambdas.settings import load_settings
from lambdas.twiml import NOT_IN_SERVICE
from tests.unit.lambdas.events import (
    AGENT_NUMBER,
    API_BASE,
    HUMAN_NUMBER,
    TABLE,
    new_call_sid,
    outbound_event,
    parse_twiml,
    text,
    transfer_event,
    twilio_event,
    voice_params,
)
from tests.unit.lambdas.lines import (
    BISTRO_HUMAN,
    CLINIC_HUMAN,
    CLINIC_NUMBER,
    UNLISTED_NUMBER,
    bistro,
    clinic,
    publish,
)

PATH = "/twilio/incoming"
CALLEE = "+15005550177"
# Clinic hours are mon-fri 09:00-17:00 in New York.
TUESDAY_NOON_NEW_YORK = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
SATURDAY_NOON_NEW_YORK = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
CHRISTMAS_EVE_NOON_NEW_YORK = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)  # a Thursday, on the clinic's holidays


def call(invoke, to: str, *, caller: str = "+15005550123"):
    call_sid = new_call_sid()
    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid, To=to, From=caller)))
    assert answer.status == 200
    return call_sid, answer.body


def dials(xml: str) -> str | None:
    root = parse_twiml(xml)
    return text(root, "./Dial") if root.find("./Dial") is not None else None


def dial_only(number: str) -> str:
    expected = VoiceResponse()
    expected.dial(number)
    return str(expected.to_xml())


def connected(xml: str) -> bool:
    return parse_twiml(xml).find("./Connect/Stream") is not None


def answered_at(
    aws, when: datetime, to: str, *, caller: str = "+15005550123", lines: Lines | None = None
) -> tuple[str, str]:
    """The voice webhook's logic answering a call to `to` at `when` (the handler reads the wall clock)."""
    settings = load_settings()
    call_sid = new_call_sid()
    xml = answer_call(
        VoiceWebhook.model_validate(voice_params(call_sid, To=to, From=caller)),
        CallDirection.INBOUND,
        settings=settings,
        store=aws.store,
        lines=lines or Lines(ReceptionistProfiles(TABLE), settings),
        api_base_url=API_BASE,
        clock=when.timestamp,
    )
    return call_sid, xml


# ---- each number on its own line ---------------------------------------------------------------------------------


def test_each_number_is_answered_on_its_own_line_and_its_record_names_the_profile_version(aws, invoke):
    publish(bistro(), clinic())

    bistro_sid, bistro_xml = call(invoke, AGENT_NUMBER)
    clinic_sid, clinic_xml = answered_at(aws, TUESDAY_NOON_NEW_YORK, CLINIC_NUMBER)

    # Both reach the agent; if the relay drops the stream, each falls back to its own line's human.
    assert connected(bistro_xml)
    assert connected(clinic_xml)
    assert dials(bistro_xml) == BISTRO_HUMAN
    assert dials(clinic_xml) == CLINIC_HUMAN
    bistro_record, clinic_record = aws.store.require_call(bistro_sid), aws.store.require_call(clinic_sid)
    assert (bistro_record.profile_id, bistro_record.profile_version) == ("bistro", bistro().version)
    assert (clinic_record.profile_id, clinic_record.profile_version) == ("clinic", clinic().version)
    assert aws.store.active_calls() == 2
    assert (aws.store.active_calls("bistro"), aws.store.active_calls("clinic")) == (1, 1)


def test_without_published_profiles_a_call_is_answered_from_the_settings(aws, invoke):
    call_sid, xml = call(invoke, UNLISTED_NUMBER)

    assert connected(xml)
    assert dials(xml) == HUMAN_NUMBER
    record = aws.store.require_call(call_sid)
    assert (record.profile_id, record.profile_version) == (None, None)


# ---- seats per line -----------------------------------------------------------------------------------------------


def test_a_full_line_sends_its_next_call_to_its_human_while_another_line_still_admits(aws, invoke):
    publish(bistro(), clinic())
    _, first = call(invoke, AGENT_NUMBER, caller="+15005550124")

    overflow_sid, overflow = call(invoke, AGENT_NUMBER, caller="+15005550125")  # the bistro has one seat
    _, other_line = answered_at(aws, TUESDAY_NOON_NEW_YORK, CLINIC_NUMBER)

    assert connected(first)
    assert overflow == dial_only(BISTRO_HUMAN)
    record = aws.store.require_call(overflow_sid)
    assert record.outcome is CallOutcome.OVERFLOW_TO_HUMAN
    assert record.stream_token_expiry is None
    assert connected(other_line)
    assert aws.store.active_calls() == 2
    assert (aws.store.active_calls("bistro"), aws.store.active_calls("clinic")) == (1, 1)


def test_the_deployment_limit_still_applies_over_the_lines(aws, invoke, monkeypatch):
    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "1")
    publish(bistro(), clinic())
    _, first = answered_at(aws, TUESDAY_NOON_NEW_YORK, CLINIC_NUMBER)

    call_sid, second = call(invoke, AGENT_NUMBER)  # the bistro's own seat is free, the deployment's is not

    assert connected(first)
    assert not connected(second)
    assert dials(second) == BISTRO_HUMAN
    assert aws.store.active_calls("bistro") == 0
    assert aws.store.require_call(call_sid).outcome is CallOutcome.OVERFLOW_TO_HUMAN


def test_a_released_call_gives_back_its_line_seat_and_the_deployment_seat_once(aws, invoke):
    publish(bistro())
    call_sid, _ = call(invoke, AGENT_NUMBER)

    assert aws.store.release_seat(call_sid) is True
    assert aws.store.release_seat(call_sid) is False

    assert (aws.store.active_calls(), aws.store.active_calls("bistro")) == (0, 0)
    _, next_call = call(invoke, AGENT_NUMBER)  # the line's one seat is free again
    assert connected(next_call)


def test_a_line_without_a_human_apologises_on_overflow(aws, invoke):
    publish(bistro(transfer={}, tools=["end_call"]))
    call(invoke, AGENT_NUMBER, caller="+15005550124")

    _, overflow = call(invoke, AGENT_NUMBER, caller="+15005550125")

    root = parse_twiml(overflow)
    assert root.find("./Dial") is None
    assert root.find("./Say") is not None
    assert root.find("./Hangup") is not None


# ---- numbers no line lists ----------------------------------------------------------------------------------------


def test_an_unknown_number_without_a_fallback_line_is_not_in_service(aws, invoke):
    publish(bistro(), clinic())

    call_sid, xml = call(invoke, UNLISTED_NUMBER)

    expected = VoiceResponse()
    expected.say(NOT_IN_SERVICE)
    expected.hangup()
    assert xml == str(expected.to_xml())
    record = aws.store.require_call(call_sid)
    assert record.outcome is CallOutcome.UNKNOWN_NUMBER
    assert (record.stream_token_expiry, record.profile_id) == (None, None)
    assert aws.store.active_calls() == 0
    assert call(invoke, UNLISTED_NUMBER)[1] == xml


def test_an_unknown_number_is_answered_by_the_line_that_answers_unknown_numbers(aws, invoke):
    publish(bistro(answers_unknown_numbers=True), clinic())

    call_sid, xml = call(invoke, UNLISTED_NUMBER)

    assert connected(xml)
    assert dials(xml) == BISTRO_HUMAN
    assert aws.store.require_call(call_sid).profile_id == "bistro"


# ---- after hours ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("closed_at", [SATURDAY_NOON_NEW_YORK, CHRISTMAS_EVE_NOON_NEW_YORK])
def test_after_hours_a_transfer_line_sends_the_caller_to_its_human(aws, closed_at):
    publish(bistro(), clinic())

    call_sid, xml = answered_at(aws, closed_at, CLINIC_NUMBER)

    assert xml == dial_only(CLINIC_HUMAN)
    record = aws.store.require_call(call_sid)
    assert record.outcome is CallOutcome.AFTER_HOURS_TO_HUMAN
    assert record.stream_token_expiry is None
    assert record.profile_id == "clinic"
    assert aws.store.active_calls() == 0


def test_after_hours_a_message_line_says_its_message_and_hangs_up(aws):
    message = "{business_name} is closed for the weekend. Goodbye."
    publish(clinic(hours={"weekly": "mon-fri 09:00-17:00", "after_hours": "message", "after_hours_message": message}))

    call_sid, xml = answered_at(aws, SATURDAY_NOON_NEW_YORK, CLINIC_NUMBER)

    expected = VoiceResponse()
    expected.say("Dental Clinic is closed for the weekend. Goodbye.")
    expected.hangup()
    assert xml == str(expected.to_xml())
    assert aws.store.require_call(call_sid).outcome is CallOutcome.CLOSED
    assert aws.store.active_calls() == 0


def test_after_hours_an_agent_line_still_admits_and_open_lines_admit(aws):
    publish(clinic(hours={"weekly": "mon-fri 09:00-17:00", "after_hours": "agent"}))

    _, weekend = answered_at(aws, SATURDAY_NOON_NEW_YORK, CLINIC_NUMBER)

    assert connected(weekend)


# ---- a redeploy -----------------------------------------------------------------------------------------------------


def test_a_changed_profile_reaches_the_next_call_after_the_cache_time_and_not_the_live_one(aws, twilio, invoke):
    now = [1000.0]
    settings = load_settings()
    lines = Lines(ReceptionistProfiles(TABLE, clock=lambda: now[0]), settings)
    publish(bistro(), clinic())
    live_sid, live_xml = answered_at(aws, TUESDAY_NOON_NEW_YORK, CLINIC_NUMBER, lines=lines)

    moved = clinic(transfer={"human_number": "+15005550109"})
    publish(bistro(), moved)
    cached_sid, cached = answered_at(aws, TUESDAY_NOON_NEW_YORK, CLINIC_NUMBER, caller="+15005550124", lines=lines)
    aws.store.release_seat(cached_sid)  # the clinic has two seats
    now[0] += CATALOG_CACHE_SECONDS
    next_sid, next_xml = answered_at(aws, TUESDAY_NOON_NEW_YORK, CLINIC_NUMBER, caller="+15005550125", lines=lines)

    assert dials(live_xml) == dials(cached) == CLINIC_HUMAN  # within the cache time: the version it read
    assert dials(next_xml) == "+15005550109"
    assert aws.store.require_call(next_sid).profile_version == moved.version
    live = aws.store.require_call(live_sid)
    assert live.profile_version == clinic().version != moved.version

    # The live call, transferred after the redeploy, still reaches the human line of the version it started on.
    twilio.add_call(live_sid)
    answer = invoke(transfer.handler, transfer_event(live_sid, {"reason": "asked", "summary": "wants a person"}))
    assert answer.status == 200
    [request] = twilio.requests
    assert text(parse_twiml(request.value("Twiml") or ""), "./Dial/Number") == CLINIC_HUMAN
    assert aws.store.require_call(live_sid).transfer_target == CLINIC_HUMAN


def test_a_transfer_dials_the_human_line_of_the_calls_own_profile(aws, twilio, invoke):
    publish(bistro(), clinic())
    call_sid, _ = call(invoke, AGENT_NUMBER)
    twilio.add_call(call_sid)

    answer = invoke(transfer.handler, transfer_event(call_sid, {"reason": "asked", "summary": "wants a person"}))

    assert answer.status == 200
    [request] = twilio.requests
    assert text(parse_twiml(request.value("Twiml") or ""), "./Dial/Number") == BISTRO_HUMAN


# ---- outbound calls -----------------------------------------------------------------------------------------------


def test_an_outbound_call_for_a_profile_is_placed_from_its_number_and_seated_on_its_line(aws, twilio, invoke):
    publish(bistro(), clinic())

    placed = invoke(outbound_call.handler, outbound_event({"to": CALLEE, "profileId": "clinic"}))

    assert placed.status == 201
    call_sid = placed.json()["callSid"]
    [request] = twilio.requests
    assert request.value("From") == CLINIC_NUMBER
    record = aws.store.require_call(call_sid)
    assert (record.profile_id, record.profile_version) == ("clinic", clinic().version)
    answered = voice_params(call_sid, From=CLINIC_NUMBER, To=CALLEE, Direction="outbound-api")
    xml = invoke(incoming_call.handler, twilio_event(PATH, answered, query={"direction": "outbound"})).body
    assert connected(xml)
    assert dials(xml) == CLINIC_HUMAN
    assert (aws.store.active_calls(), aws.store.active_calls("clinic")) == (1, 1)
    assert aws.store.release_seat(call_sid) is True
    assert (aws.store.active_calls(), aws.store.active_calls("clinic")) == (0, 0)


def test_an_outbound_call_is_refused_when_its_line_is_full(aws, twilio, invoke):
    publish(bistro(), clinic())
    call(invoke, AGENT_NUMBER)  # the bistro's one seat

    refused = invoke(outbound_call.handler, outbound_event({"to": CALLEE, "profileId": "bistro"}))

    assert refused.status == 503
    assert twilio.requests == []


def test_an_outbound_call_for_an_unknown_profile_is_a_422_naming_the_field(aws, twilio, invoke):
    publish(bistro(), clinic())

    refused = invoke(outbound_call.handler, outbound_event({"to": CALLEE, "profileId": "spa"}))

    assert refused.status == 422
    assert refused.json()["field"] == "profileId"
    assert "spa" in refused.json()["message"]
    assert "bistro, clinic" in refused.json()["message"]
    assert twilio.requests == []


def test_an_outbound_call_naming_no_profile_uses_the_fallback_line_or_is_refused(aws, twilio, invoke):
    publish(bistro(), clinic())
    refused = invoke(outbound_call.handler, outbound_event({"to": CALLEE}))
    assert refused.status == 422
    assert refused.json()["field"] == "profileId"

    publish(bistro(answers_unknown_numbers=True), clinic())
    receptionist_profiles_cache_expired()
    placed = invoke(outbound_call.handler, outbound_event({"to": CALLEE}))
    assert placed.status == 201
    assert aws.store.require_call(placed.json()["callSid"]).profile_id == "bistro"


def test_an_outbound_call_naming_a_profile_without_profiles_deployed_is_a_422(aws, twilio, invoke):
    refused = invoke(outbound_call.handler, outbound_event({"to": CALLEE, "profileId": "bistro"}))

    assert refused.status == 422
    assert refused.json()["field"] == "profileId"


def receptionist_profiles_cache_expired() -> None:
    """A new Lambda container: its catalog cache is empty."""
    from lambdas.logic.lines import receptionist_profiles_of

    receptionist_profiles_of.cache_clear()
