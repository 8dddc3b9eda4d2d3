"""POST /calls/{callSid}/transfer and /hangup: the Twilio REST calls on the wire (the fake records them), the record,
idempotency and the mapping of Twilio's errors."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from twilio.twiml.voice_response import VoiceResponse

from callcore.models import CallOutcome, CallStatus, utc_now
from lambdas.handlers import hangup, transfer
from lambdas.logic.call_control import TRANSFER_CLAIM_LEASE
from tests.unit.lambdas.conftest import emitted_metrics
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    API_BASE,
    AUTH_TOKEN,
    HUMAN_NUMBER,
    hangup_event,
    new_call_sid,
    parse_twiml,
    text,
    transfer_event,
)

TRANSFER = {"reason": "caller asked for a person", "summary": "Ana wants to move her booking from Friday to Saturday."}
CALL_PATH = "/2010-04-01/Accounts/{account}/Calls/{sid}.json"


@pytest.fixture
def live_call(make_call, twilio):
    call = make_call()
    twilio.add_call(call.call_sid)
    return call


def test_transfer_redirects_the_live_call_to_the_human_with_a_whisper(aws, twilio, invoke, live_call, capsys):
    answer = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))

    assert answer.status == 200
    assert answer.json() == {"callSid": live_call.call_sid, "status": "transferred", "target": "+1******0100"}
    [request] = twilio.requests
    assert request.method == "POST"
    assert request.path == CALL_PATH.format(account=ACCOUNT_SID, sid=live_call.call_sid)
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)
    expected = VoiceResponse()
    expected.dial(timeout=25).number(
        HUMAN_NUMBER, url=f"{API_BASE}/twilio/whisper?callSid={live_call.call_sid}", method="POST"
    )
    expected.say("Sorry, nobody could take your call right now. Please call us again later. Goodbye.")
    assert request.value("Twiml") == str(expected.to_xml())
    assert text(parse_twiml(request.value("Twiml") or ""), "./Dial/Number") == HUMAN_NUMBER
    assert request.value("Url") is None

    record = aws.store.require_call(live_call.call_sid)
    assert record.transfer_target == HUMAN_NUMBER
    assert record.transfer_reason == TRANSFER["reason"]
    assert record.transfer_summary == TRANSFER["summary"]
    assert record.outcome is CallOutcome.TRANSFERRED
    assert emitted_metrics(capsys.readouterr().out).get("Transfers") == 1


def test_a_repeated_transfer_answers_the_same_and_does_not_call_twilio_again(twilio, invoke, live_call):
    first = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    second = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    assert second.status == 200
    assert second.body == first.body
    assert len(twilio.requests) == 1


def test_a_retry_while_the_first_transfer_waits_on_twilio_is_409_in_progress(aws, twilio, invoke, live_call):
    # The first request claimed the transfer and is still waiting on Twilio when the relay's retry arrives: the retry
    # must not report a transfer that has not happened (the first attempt may still fail), nor dial a second time.
    assert aws.store.claim_transfer(
        live_call.call_sid, reason="first", summary="first summary", lease=TRANSFER_CLAIM_LEASE
    )
    retry = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    assert retry.status == 409
    assert retry.json()["message"] == "a transfer of this call is in progress: retry to learn whether it succeeded"
    assert retry.json()["inProgress"] is True
    assert retry.headers["retry-after"] == "2"
    assert twilio.requests == []
    assert aws.store.require_call(live_call.call_sid).transfer_summary == "first summary"


def test_a_claim_left_by_a_crashed_attempt_is_taken_over_after_its_lease(aws, twilio, invoke, live_call):
    crashed_at = utc_now() - TRANSFER_CLAIM_LEASE - timedelta(seconds=1)
    assert aws.store.claim_transfer(
        live_call.call_sid, reason="first", summary="stale", lease=TRANSFER_CLAIM_LEASE, at=crashed_at
    )
    answer = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    assert answer.status == 200
    assert answer.json()["status"] == "transferred"
    assert len(twilio.requests) == 1
    record = aws.store.require_call(live_call.call_sid)
    assert record.transfer_summary == TRANSFER["summary"]
    assert record.transfer_target == HUMAN_NUMBER


def test_a_transfer_that_succeeded_answers_200_even_when_the_claim_looks_stale(aws, twilio, invoke, live_call):
    first = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    long_ago = utc_now() - timedelta(hours=1)
    aws.store.update_call(live_call.call_sid, {"transfer_requested_at": long_ago})
    again = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    assert (again.status, again.body) == (200, first.body)
    assert len(twilio.requests) == 1


def test_the_claim_lease_outlives_the_transfer_function():
    from infra.constants import ROUTES_BY_ID

    # A lease shorter than the function timeout would let a retry take over a claim whose holder still runs.
    assert timedelta(seconds=ROUTES_BY_ID["Transfer"].timeout_seconds + 5) < TRANSFER_CLAIM_LEASE


def test_the_relay_waits_on_a_transfer_in_progress_until_a_dead_attempts_claim_is_free():
    import inspect

    from relay.call_control import CallControlClient

    wait = inspect.signature(CallControlClient).parameters["in_progress_wait_seconds"].default
    assert timedelta(seconds=wait) > TRANSFER_CLAIM_LEASE


def test_transfer_keeps_an_outcome_set_earlier(aws, twilio, invoke, make_call):
    call = make_call(outcome=CallOutcome.MAX_DURATION)
    twilio.add_call(call.call_sid)
    assert invoke(transfer.handler, transfer_event(call.call_sid, TRANSFER)).status == 200
    record = aws.store.require_call(call.call_sid)
    assert record.outcome is CallOutcome.MAX_DURATION
    assert record.transfer_target == HUMAN_NUMBER


def test_transfer_of_an_ended_call_is_409_without_calling_twilio(aws, twilio, invoke, make_call):
    call = make_call(status=CallStatus.COMPLETED)
    answer = invoke(transfer.handler, transfer_event(call.call_sid, TRANSFER))
    assert answer.status == 409
    assert "ended" in answer.json()["message"]
    assert twilio.requests == []
    assert aws.store.require_call(call.call_sid).transfer_summary is None


def test_transfer_of_an_unknown_call_is_404(aws, twilio, invoke):
    answer = invoke(transfer.handler, transfer_event(new_call_sid(), TRANSFER))
    assert answer.status == 404
    assert twilio.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x"}, "summary"),
        ({"summary": "y"}, "reason"),
        ({"reason": "x", "summary": ""}, "summary"),
        ({"reason": "x", "summary": "y", "sumary": "typo"}, "sumary"),
        ("{not json", "body"),
        ('["a", "list"]', "body"),
        (None, "body"),
    ],
)
def test_bad_transfer_body_is_a_400_naming_the_field_and_writes_nothing(aws, twilio, invoke, live_call, body, field):
    answer = invoke(transfer.handler, transfer_event(live_call.call_sid, body))
    assert answer.status == 400
    assert answer.json()["field"] == field
    assert twilio.requests == []
    assert aws.store.require_call(live_call.call_sid) == live_call


@pytest.mark.parametrize("handler_event", [transfer_event, hangup_event])
def test_malformed_call_sid_is_a_400(aws, twilio, invoke, handler_event):
    handler = transfer.handler if handler_event is transfer_event else hangup.handler
    answer = invoke(handler, handler_event("CA123", {**TRANSFER}))
    assert answer.status == 400
    assert answer.json()["field"] == "callSid"
    assert twilio.requests == []


@pytest.mark.parametrize(
    ("twilio_status", "code", "expected"),
    [
        (400, 21220, 409),  # call not in-progress
        (404, 20404, 409),  # Twilio no longer knows the call
        (400, 13223, 422),  # Dial: invalid phone number format
        (500, 20500, 502),  # Twilio internal error
        (429, 20429, 502),  # too many requests
    ],
)
def test_twilio_errors_on_transfer_are_mapped(aws, twilio, invoke, live_call, twilio_status, code, expected):
    twilio.fail_next(status=twilio_status, code=code, message="scripted")
    answer = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    assert answer.status == expected
    assert str(code) in answer.json()["message"]
    if expected == 422:
        assert answer.json()["field"] == "HUMAN_TRANSFER_NUMBER"
    record = aws.store.require_call(live_call.call_sid)
    assert record.transfer_target is None
    assert record.transfer_requested_at is None  # the claim was released
    assert record.transfer_reason is None  # and what it stored: the record shows no transfer
    assert record.transfer_summary is None
    assert record.outcome is None
    assert aws.store.active_calls() == 1  # the caller is still on the agent
    # A later attempt is not mistaken for a repeat: it reaches Twilio again.
    assert invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER)).status == 200
    assert len(twilio.requests) == 2


def test_transfer_without_a_human_line_is_503(aws, twilio, invoke, live_call, monkeypatch):
    monkeypatch.delenv("HUMAN_TRANSFER_NUMBER")
    answer = invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    assert answer.status == 503
    assert "HUMAN_TRANSFER_NUMBER" in answer.json()["message"]
    assert twilio.requests == []


# ---- hang-up ----------------------------------------------------------------------------------------------------


def test_hangup_completes_the_call_on_twilio(aws, twilio, invoke, live_call, capsys):
    answer = invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": "caller said goodbye"}))

    assert answer.status == 200
    assert answer.json() == {"callSid": live_call.call_sid, "status": "completed"}
    [request] = twilio.requests
    assert request.path == CALL_PATH.format(account=ACCOUNT_SID, sid=live_call.call_sid)
    assert request.form == {"Status": ["completed"]}
    assert twilio.calls[live_call.call_sid].status == "completed"
    assert aws.store.require_call(live_call.call_sid).outcome is CallOutcome.COMPLETED_BY_AGENT
    assert emitted_metrics(capsys.readouterr().out).get("HangUps") == 1


def test_a_repeated_hangup_is_200_with_one_twilio_request(aws, twilio, invoke, live_call):
    first = invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": "goodbye"}))
    # The completed status callback may arrive in between: the repeat is still recognised.
    aws.store.apply_status(live_call.call_sid, CallStatus.COMPLETED, 5)
    second = invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": "goodbye"}))
    assert second.status == 200
    assert second.body == first.body
    assert len(twilio.requests) == 1


def test_hangup_of_a_call_that_ended_otherwise_is_409(aws, twilio, invoke, make_call):
    call = make_call(status=CallStatus.COMPLETED, outcome=CallOutcome.CALLER_HUNG_UP)
    answer = invoke(hangup.handler, hangup_event(call.call_sid, {"reason": "goodbye"}))
    assert answer.status == 409
    assert answer.json()["message"] == "the call has already ended"
    assert twilio.requests == []
    assert aws.store.require_call(call.call_sid).outcome is CallOutcome.CALLER_HUNG_UP


def test_hangup_when_twilio_says_the_call_already_ended_is_409(aws, twilio, invoke, live_call):
    twilio.calls[live_call.call_sid].status = "completed"  # ended; the status callback has not arrived yet
    answer = invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": "goodbye"}))
    assert answer.status == 409
    assert aws.store.require_call(live_call.call_sid).outcome is None


def test_hangup_after_a_transfer_is_refused(aws, twilio, invoke, live_call):
    invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))
    answer = invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": "goodbye"}))
    assert answer.status == 409
    assert "transferred" in answer.json()["message"]
    assert len(twilio.requests) == 1


def test_hangup_of_an_unknown_call_is_404_and_twilio_failure_is_502(aws, twilio, invoke, live_call):
    assert invoke(hangup.handler, hangup_event(new_call_sid(), {"reason": "goodbye"})).status == 404
    twilio.fail_next(status=503, code=20503, message="service unavailable")
    answer = invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": "goodbye"}))
    assert answer.status == 502
    assert aws.store.require_call(live_call.call_sid).outcome is None


def test_hangup_needs_a_reason(aws, twilio, invoke, live_call):
    answer = invoke(hangup.handler, hangup_event(live_call.call_sid, {}))
    assert answer.status == 400
    assert answer.json()["field"] == "reason"
    assert twilio.requests == []


def test_a_transfer_gives_the_agent_seat_back_once(aws, twilio, invoke, live_call):
    from lambdas.handlers import call_status
    from tests.unit.lambdas.events import status_params, twilio_event

    assert aws.store.active_calls() == 1  # live_call was admitted to the agent
    assert invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER)).status == 200
    assert aws.store.active_calls() == 0  # the caller now talks to a person
    invoke(transfer.handler, transfer_event(live_call.call_sid, TRANSFER))  # a repeat frees nothing more
    assert aws.store.active_calls() == 0
    aws.store.adjust_active_calls(+1)  # another caller on the agent
    completed = status_params(live_call.call_sid, "completed", 5, CallDuration="300")
    invoke(call_status.handler, twilio_event("/twilio/status", completed))
    assert aws.store.active_calls() == 1  # the transferred call's end is not counted out a second time


# ---- logs: the correlation id, and no phone number, not even inside the model's free-text reason -----------------

REASON_WITH_NUMBER = "caller wants a callback on +1 415-555-0199 or 4155550188"


def _log_lines(logs) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]


def test_transfer_logs_carry_the_call_sid_and_mask_numbers_in_the_reason(aws, twilio, invoke, live_call, logs):
    body = {"reason": REASON_WITH_NUMBER, "summary": "callback wanted"}
    assert invoke(transfer.handler, transfer_event(live_call.call_sid, body)).status == 200
    output = logs.getvalue()
    for number in ("555-0199", "4155550188", "15005550100"):
        assert number not in output
    [done] = [line for line in _log_lines(logs) if line["message"] == "call transferred to the human line"]
    assert done["correlation_id"] == live_call.call_sid
    assert done["reason"] == "caller wants a callback on +1******0199 or ******0188"
    assert done["target"] == "+1******0100"


def test_hangup_logs_carry_the_call_sid_and_mask_numbers_in_the_reason(aws, twilio, invoke, live_call, logs):
    assert invoke(hangup.handler, hangup_event(live_call.call_sid, {"reason": REASON_WITH_NUMBER})).status == 200
    output = logs.getvalue()
    for number in ("555-0199", "4155550188"):
        assert number not in output
    [done] = [line for line in _log_lines(logs) if line["message"] == "call hung up by the agent"]
    assert done["correlation_id"] == live_call.call_sid
    assert done["reason"] == "caller wants a callback on +1******0199 or ******0188"


def test_hangup_of_an_ended_call_is_409_and_the_status_callback_gives_it_an_outcome(aws, twilio, invoke, make_call):
    from lambdas.handlers import call_status
    from tests.unit.lambdas.events import status_params, twilio_event

    call = make_call(status=CallStatus.IN_PROGRESS)
    aws.archive.write_transcript(call, [])  # the relay wrote its transcript but died before writing the outcome
    aws.store.apply_status(call.call_sid, CallStatus.COMPLETED, 4)
    assert invoke(hangup.handler, hangup_event(call.call_sid, {"reason": "goodbye"})).status == 409
    assert aws.store.require_call(call.call_sid).outcome is None
    # Twilio's retry of the terminal callback finishes the call.
    completed = status_params(call.call_sid, "completed", 4, CallDuration="20")
    assert invoke(call_status.handler, twilio_event("/twilio/status", completed)).json() == {"applied": True}
    assert aws.store.require_call(call.call_sid).outcome is CallOutcome.CALLER_HUNG_UP
