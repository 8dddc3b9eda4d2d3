"""Transfer, hang-up, outbound calls and the sweep's reading of a call against the fake Twilio REST API over a
loopback socket: the SDK's real HTTP client, the real form encoding and Basic auth, Twilio's JSON errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from callcore.models import CallOutcome, CallStatus
from lambdas.handlers import hangup, outbound_call, transfer
from lambdas.handlers import sweep as sweep_handler
from lambdas.logic import reconcile
from lambdas.settings import load_settings
from lambdas.twilio_calls import CallNotLive, twilio_calls
from tests.unit.lambdas.conftest import Handler
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    AGENT_NUMBER,
    API_BASE,
    AUTH_TOKEN,
    HUMAN_NUMBER,
    FakeLambdaContext,
    hangup_event,
    node,
    outbound_event,
    parse_twiml,
    transfer_event,
)


def test_the_twilio_sdk_talks_to_the_fake_over_loopback(twilio_server):
    assert urlsplit(twilio_server.base_url).hostname == "127.0.0.1"


def test_outbound_call_on_the_wire(aws, invoke, twilio_server):
    result = invoke(outbound_call.handler, outbound_event({"to": "+15005550177", "context": "follow-up"}))

    assert result.status == 201
    [request] = twilio_server.fake.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.form["To"] == ["+15005550177"]
    assert request.form["From"] == [AGENT_NUMBER]
    assert request.form["Url"] == [f"{API_BASE}/twilio/incoming?direction=outbound"]
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    call_sid = result.json()["callSid"]
    assert call_sid in twilio_server.fake.calls
    assert aws.store.require_call(call_sid).context == "follow-up"


def test_transfer_and_hangup_on_the_wire(aws, invoke, make_call, twilio_server):
    call = make_call()
    twilio_server.fake.add_call(call.call_sid)

    moved = invoke(transfer.handler, transfer_event(call.call_sid, {"reason": "billing", "summary": "Refund query."}))
    assert moved.status == 200
    [redirect] = twilio_server.fake.requests_for(call.call_sid)
    number = node(parse_twiml(redirect.form["Twiml"][0]), "./Dial/Number")
    assert number.text == HUMAN_NUMBER
    assert number.get("url") == f"{API_BASE}/twilio/whisper?callSid={call.call_sid}"

    other = make_call()
    twilio_server.fake.add_call(other.call_sid)
    ended = invoke(hangup.handler, hangup_event(other.call_sid, {"reason": "goodbye"}))
    assert ended.status == 200
    assert twilio_server.fake.requests_for(other.call_sid)[0].form == {"Status": ["completed"]}
    assert aws.store.require_call(other.call_sid).outcome is CallOutcome.COMPLETED_BY_AGENT


def test_twilio_json_errors_are_mapped(aws, invoke, make_call, twilio_server):
    call = make_call()
    twilio_server.fake.add_call(call.call_sid, status="completed")
    assert invoke(hangup.handler, hangup_event(call.call_sid, {"reason": "goodbye"})).status == 409
    twilio_server.fake.fail_next(status=500, code=20500, message="internal")
    assert invoke(transfer.handler, transfer_event(call.call_sid, {"reason": "r", "summary": "s"})).status == 502


def test_twilio_unreachable_is_a_502(aws, invoke, make_call, twilio_server):
    call = make_call()
    twilio_server.stop()  # TWILIO_API_BASE_URL now points at a closed loopback port
    answer = invoke(hangup.handler, hangup_event(call.call_sid, {"reason": "goodbye"}))
    assert answer.status == 502
    assert "did not answer" in answer.json()["message"]
    assert aws.store.require_call(call.call_sid).outcome is None


def test_a_number_twilio_refuses_is_a_422_over_the_wire(aws, invoke, twilio_server):
    refused = "+15005550009"
    twilio_server.fake.refuse_number(refused, code=21217)
    answer = invoke(outbound_call.handler, outbound_event({"to": refused}))
    assert answer.status == 422
    assert answer.json()["field"] == "to"
    assert "21217" in answer.json()["message"]
    [request] = twilio_server.fake.requests
    assert request.form["To"] == [refused]
    assert aws.written_items() == []  # no call record for a call not made


def test_a_call_twilio_no_longer_knows_is_409_over_the_wire(aws, invoke, make_call, twilio_server):
    call = make_call()  # never added to the fake: Twilio answers its real 404 / 20404 JSON
    moved = invoke(transfer.handler, transfer_event(call.call_sid, {"reason": "r", "summary": "s"}))
    assert moved.status == 409
    assert "20404" in moved.json()["message"]
    ended = invoke(hangup.handler, hangup_event(call.call_sid, {"reason": "goodbye"}))
    assert ended.status == 409
    assert "20404" in ended.json()["message"]
    record = aws.store.require_call(call.call_sid)
    assert (record.transfer_requested_at, record.transfer_summary, record.outcome) == (None, None, None)


def test_twilio_throttling_is_a_502_over_the_wire_and_a_retry_succeeds(aws, invoke, make_call, twilio_server):
    call = make_call()
    twilio_server.fake.add_call(call.call_sid)
    twilio_server.fake.fail_next(status=429, code=20429, message="Too Many Requests")
    throttled = invoke(transfer.handler, transfer_event(call.call_sid, {"reason": "r", "summary": "s"}))
    assert throttled.status == 502
    assert "20429" in throttled.json()["message"]
    assert aws.store.require_call(call.call_sid).transfer_requested_at is None  # released: a retry may try again
    again = invoke(transfer.handler, transfer_event(call.call_sid, {"reason": "r", "summary": "s"}))
    assert again.status == 200
    assert len(twilio_server.fake.requests_for(call.call_sid)) == 2


def test_a_lost_final_callback_is_recovered_over_the_wire_by_the_sweep(aws, make_call, twilio_server, monkeypatch):
    # The sweep's GET of the call resource through the SDK's own HTTP client: Twilio's RFC 2822 times, its string
    # duration, and the seat back once Twilio says the call ended.
    monkeypatch.setattr(reconcile, "INDEX_SETTLE", timedelta(0))
    started = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    call = make_call(created_at=started)
    twilio_server.fake.add_call(call.call_sid, started_at=started)
    twilio_server.fake.end_call(call.call_sid, at=started + timedelta(seconds=95))

    handler: Handler = sweep_handler.handler
    report = handler({"source": "aws.events"}, FakeLambdaContext())

    assert report["reconciled"] == 1
    [request] = twilio_server.fake.requests_for(call.call_sid)
    assert (request.method, request.path) == ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.call_sid}.json")
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)
    record = aws.store.require_call(call.call_sid)
    assert (record.status, record.duration_seconds) == (CallStatus.COMPLETED, 95)
    assert record.ended_at == started + timedelta(seconds=95)
    assert aws.store.active_calls() == 0


def test_reading_a_call_twilio_does_not_know_is_a_call_not_live(twilio_server):
    calls = twilio_calls(load_settings())
    with pytest.raises(CallNotLive):
        calls.call_state("CA" + "e" * 32)
