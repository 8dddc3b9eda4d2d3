"""POST /calls (outbound) and the answer webhook it points Twilio at (`/twilio/incoming?direction=outbound`)."""

from __future__ import annotations

import pytest

from callcore import stream_token
from callcore.models import CallDirection, CallOutcome, CallStatus
from lambdas.handlers import incoming_call, outbound_call
from tests.unit.lambdas.conftest import emitted_metrics
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    AGENT_NUMBER,
    API_BASE,
    STREAM_TOKEN_SECRET,
    attribute,
    outbound_event,
    parse_twiml,
    text,
    twilio_event,
    voice_params,
)

CALLEE = "+15005550177"
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


def place(invoke, body):
    return invoke(outbound_call.handler, outbound_event(body))


def answered(call_sid: str, **extra: str) -> dict[str, str]:
    """What Twilio posts to the answer URL of an outbound call (From is us, To is the callee)."""
    return voice_params(
        call_sid, From=AGENT_NUMBER, To=CALLEE, Direction="outbound-api", CallStatus="in-progress", **extra
    )


def answer(invoke, call_sid: str, **extra: str):
    event = twilio_event("/twilio/incoming", answered(call_sid, **extra), query={"direction": "outbound"})
    return invoke(incoming_call.handler, event)


def test_places_the_call_through_twilio_and_records_it(aws, twilio, invoke, capsys):
    result = place(invoke, {"to": CALLEE, "context": "remind Ana of Saturday 7pm"})

    assert result.status == 201
    call_sid = result.json()["callSid"]
    [request] = twilio.requests
    assert (request.method, request.path) == ("POST", CALLS_PATH)
    assert request.value("To") == CALLEE
    assert request.value("From") == AGENT_NUMBER
    assert request.value("Url") == f"{API_BASE}/twilio/incoming?direction=outbound"
    assert request.value("Method") == "POST"
    assert request.value("StatusCallback") == f"{API_BASE}/twilio/status"
    assert request.values("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert request.value("FallbackUrl") == f"{API_BASE}/twilio/fallback"
    assert request.value("Twiml") is None
    assert request.value("MachineDetection") is None

    record = aws.store.require_call(call_sid)
    assert record.direction is CallDirection.OUTBOUND
    assert record.status is CallStatus.QUEUED
    assert (record.from_number, record.to_number) == (AGENT_NUMBER, CALLEE)
    assert record.context == "remind Ana of Saturday 7pm"
    assert record.stream_token_expiry is None
    assert aws.store.active_calls() == 0  # counted when answered, not when dialled
    assert emitted_metrics(capsys.readouterr().out).get("OutboundCalls") == 1


def test_the_answered_call_is_connected_to_the_agent_with_a_token(aws, twilio, invoke):
    call_sid = place(invoke, {"to": CALLEE}).json()["callSid"]

    first = answer(invoke, call_sid)
    retried = answer(invoke, call_sid)

    assert first.status == 200
    root = parse_twiml(first.body)
    assert attribute(root, "./Connect/Stream", "url").startswith("wss://")
    token = attribute(root, "./Connect/Stream/Parameter[@name='token']", "value")
    expiry = stream_token.verify(STREAM_TOKEN_SECRET, token, call_sid)
    assert expiry == aws.store.require_call(call_sid).stream_token_expiry
    assert retried.body == first.body
    assert aws.store.active_calls() == 1
    assert aws.store.require_call(call_sid).direction is CallDirection.OUTBOUND


def test_an_answer_webhook_ahead_of_the_record_creates_it(aws, invoke):
    call_sid = "CA" + "e" * 32
    assert answer(invoke, call_sid).status == 200
    record = aws.store.require_call(call_sid)
    assert record.direction is CallDirection.OUTBOUND
    assert record.stream_token_expiry is not None


@pytest.mark.parametrize(
    ("mode", "machine_detection", "expected_verbs"),
    [("hangup", "Enable", ["Hangup"]), ("message", "DetectMessageEnd", ["Say", "Hangup"])],
)
def test_answering_machine_detection(aws, twilio, invoke, monkeypatch, mode, machine_detection, expected_verbs):
    monkeypatch.setenv("ANSWERING_MACHINE_DETECTION", mode)
    monkeypatch.setenv("VOICEMAIL_MESSAGE", "Hello from the clinic, please call us back.")
    call_sid = place(invoke, {"to": CALLEE}).json()["callSid"]
    assert twilio.requests[0].value("MachineDetection") == machine_detection

    machine = answer(invoke, call_sid, AnsweredBy="machine_end_beep")

    root = parse_twiml(machine.body)
    assert [child.tag for child in root] == expected_verbs
    if mode == "message":
        assert text(root, "./Say") == "Hello from the clinic, please call us back."
    record = aws.store.require_call(call_sid)
    assert record.outcome is CallOutcome.VOICEMAIL
    assert record.stream_token_expiry is None
    assert aws.store.active_calls() == 0
    assert answer(invoke, call_sid, AnsweredBy="machine_end_beep").body == machine.body


def test_a_human_answer_with_detection_on_reaches_the_agent(aws, twilio, invoke, monkeypatch):
    monkeypatch.setenv("ANSWERING_MACHINE_DETECTION", "hangup")
    call_sid = place(invoke, {"to": CALLEE}).json()["callSid"]
    human = answer(invoke, call_sid, AnsweredBy="human")
    assert parse_twiml(human.body).find("./Connect/Stream") is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "0155 555 0177"}, "to"),
        ({"to": "+0123"}, "to"),
        ({}, "to"),
        ({"to": CALLEE, "context": "x" * 2001}, "context"),
        ({"to": CALLEE, "from": "+15005550002"}, "from"),
        ("not json", "body"),
    ],
)
def test_bad_destination_or_body_is_a_400_and_nothing_happens(aws, twilio, invoke, body, field):
    result = place(invoke, body)
    assert result.status == 400
    assert result.json()["field"] == field
    assert twilio.requests == []
    assert aws.written_items() == []


def test_a_number_twilio_refuses_is_a_422_naming_to(aws, twilio, invoke):
    twilio.refuse_number(CALLEE, code=21211)
    result = place(invoke, {"to": CALLEE})
    assert result.status == 422
    assert result.json()["field"] == "to"
    assert aws.written_items() == []


def test_twilio_failure_is_a_502(aws, twilio, invoke):
    twilio.fail_next(status=500, code=20500, message="internal error")
    assert place(invoke, {"to": CALLEE}).status == 502
    assert aws.written_items() == []


def test_no_outbound_calls_at_capacity_or_without_a_caller_id(aws, twilio, invoke, monkeypatch):
    aws.store.set_relay_health(False, reason="draining")
    busy = place(invoke, {"to": CALLEE})
    assert busy.status == 503
    assert "capacity" in busy.json()["message"]

    aws.store.set_relay_health(True)
    monkeypatch.delenv("TWILIO_PHONE_NUMBER")
    unconfigured = place(invoke, {"to": CALLEE})
    assert unconfigured.status == 503
    assert "TWILIO_PHONE_NUMBER" in unconfigured.json()["message"]
    assert twilio.requests == []


def test_outbound_logs_carry_the_call_sid_and_only_the_masked_callee(aws, twilio, invoke, logs):
    import json

    result = place(invoke, {"to": CALLEE, "context": "call back on +1 500 555 0166 about Saturday"})
    call_sid = result.json()["callSid"]
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    [placed] = [line for line in lines if line["message"] == "outbound call placed"]
    assert placed["correlation_id"] == call_sid
    assert placed["callee"] == "+1******0177"
    assert CALLEE not in logs.getvalue()
    assert "555 0166" not in logs.getvalue()


def test_an_answered_call_takes_its_seat_once_and_only_if_one_is_free(aws, twilio, invoke, monkeypatch):
    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "1")
    first = place(invoke, {"to": CALLEE}).json()["callSid"]
    second = place(invoke, {"to": CALLEE}).json()["callSid"]  # the pre-check passes: nobody is on the agent yet

    connected = answer(invoke, first)
    assert parse_twiml(connected.body).find("./Connect/Stream") is not None
    assert answer(invoke, first).body == connected.body  # Twilio's retry: same answer, no second seat
    assert aws.store.active_calls() == 1

    # The last seat went to the first callee: the second is sent to the human line, counted nowhere.
    full = answer(invoke, second)
    assert parse_twiml(full.body).find("./Connect") is None
    record = aws.store.require_call(second)
    assert record.outcome is CallOutcome.OVERFLOW_TO_HUMAN
    assert record.stream_token_expiry is None
    assert aws.store.active_calls() == 1
