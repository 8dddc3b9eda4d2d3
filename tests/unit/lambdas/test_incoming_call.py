"""POST /twilio/incoming: signatures, the TwiML, the record, retries and the capacity guard."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from twilio.twiml.voice_response import VoiceResponse

from callcore import stream_token
from callcore.models import CallDirection, CallOutcome, CallStatus
from lambdas.handlers import incoming_call
from tests.unit.lambdas.conftest import answer_together, emitted_metrics
from tests.unit.lambdas.events import (
    AGENT_NUMBER,
    API_BASE,
    CALLER_NUMBER,
    HUMAN_NUMBER,
    RELAY_URL,
    STREAM_TOKEN_SECRET,
    attribute,
    new_call_sid,
    parse_twiml,
    public_url,
    sign,
    text,
    twilio_event,
    voice_params,
)

PATH = "/twilio/incoming"


def expected_agent_twiml(call_sid: str, expiry: int, *, human: str | None = HUMAN_NUMBER) -> str:
    """What twilio's own classes produce for the agent answer."""
    response = VoiceResponse()
    stream = response.connect().stream(
        url=RELAY_URL, status_callback=f"{API_BASE}/twilio/stream-status", status_callback_method="POST"
    )
    stream.parameter(name="token", value=stream_token.issue(STREAM_TOKEN_SECRET, call_sid, expiry=expiry))
    if human:
        response.dial(human)
    else:
        response.say("Sorry, we lost the connection to our assistant. Please call again later. Goodbye.")
        response.hangup()
    return str(response.to_xml())


def test_admits_the_call_with_a_stream_to_the_relay(aws, invoke, capsys):
    call_sid = new_call_sid()

    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))

    assert answer.status == 200
    assert answer.headers["content-type"] == "application/xml"
    root = parse_twiml(answer.body)
    assert urlsplit(attribute(root, "./Connect/Stream", "url")).scheme == "wss"
    assert attribute(root, "./Connect/Stream", "url") == RELAY_URL
    assert attribute(root, "./Connect/Stream", "statusCallback") == f"{API_BASE}/twilio/stream-status"
    token = attribute(root, "./Connect/Stream/Parameter[@name='token']", "value")
    expiry = stream_token.verify(STREAM_TOKEN_SECRET, token, call_sid)
    assert answer.body == expected_agent_twiml(call_sid, expiry)

    record = aws.store.require_call(call_sid)
    assert record.direction is CallDirection.INBOUND
    assert record.status is CallStatus.RINGING
    assert (record.from_number, record.to_number) == (CALLER_NUMBER, AGENT_NUMBER)
    assert record.stream_token_expiry == expiry
    assert record.outcome is None
    assert aws.store.active_calls() == 1
    assert emitted_metrics(capsys.readouterr().out).get("CallsStarted") == 1


def test_a_retried_webhook_gets_the_same_twiml_and_no_second_record(aws, invoke):
    call_sid = new_call_sid()
    first = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))
    second = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))

    assert first.status == second.status == 200
    assert second.body == first.body
    assert aws.store.active_calls() == 1
    assert len(aws.store.list_calls_by_day(aws.store.require_call(call_sid).day).calls) == 1


def test_without_a_human_line_the_after_stream_verbs_apologise(aws, invoke, monkeypatch):
    monkeypatch.delenv("HUMAN_TRANSFER_NUMBER")
    call_sid = new_call_sid()
    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))
    expiry = aws.store.require_call(call_sid).stream_token_expiry
    assert answer.body == expected_agent_twiml(call_sid, expiry, human=None)


# ---- signatures ------------------------------------------------------------------------------------------------


def _rejected(aws, invoke, capsys, event) -> None:
    answer = invoke(incoming_call.handler, event)
    assert answer.status == 403
    assert answer.json()["message"] == "invalid Twilio signature"
    call_sid = voice_params(new_call_sid())["CallSid"]  # any sid: the table must hold no call at all
    assert aws.store.get_call(call_sid) is None
    assert aws.store.active_calls() == 0
    assert aws.written_items() == []
    assert emitted_metrics(capsys.readouterr().out).get("RejectedSignatures") == 1


def test_wrong_auth_token_is_rejected(aws, invoke, capsys):
    event = twilio_event(PATH, voice_params(new_call_sid()), auth_token="another-auth-token")
    _rejected(aws, invoke, capsys, event)


def test_signature_over_another_url_is_rejected(aws, invoke, capsys):
    params = voice_params(new_call_sid())
    event = twilio_event(PATH, params, signed_url="https://attacker.example.test/prod/twilio/incoming")
    _rejected(aws, invoke, capsys, event)


def test_signature_over_the_url_without_the_stage_is_rejected(aws, invoke, capsys):
    params = voice_params(new_call_sid())
    event = twilio_event(PATH, params, signed_url=public_url(PATH, stage=None))
    _rejected(aws, invoke, capsys, event)


def test_tampered_parameter_is_rejected(aws, invoke, capsys):
    params = voice_params(new_call_sid())
    tampered = {**params, "From": "+15005550199"}
    _rejected(aws, invoke, capsys, twilio_event(PATH, tampered, signed_params=params))


def test_missing_signature_header_is_rejected(aws, invoke, capsys):
    _rejected(aws, invoke, capsys, twilio_event(PATH, voice_params(new_call_sid()), signature=""))


def test_public_api_base_url_is_what_twilio_signed(aws, invoke, monkeypatch):
    monkeypatch.setenv("PUBLIC_API_BASE_URL", "https://voice.example.test/api")
    call_sid = new_call_sid()
    params = voice_params(call_sid)
    signed_on_custom_domain = twilio_event(PATH, params, signed_url="https://voice.example.test/api/twilio/incoming")

    answer = invoke(incoming_call.handler, signed_on_custom_domain)

    assert answer.status == 200
    stream_status_url = attribute(parse_twiml(answer.body), "./Connect/Stream", "statusCallback")
    assert stream_status_url == "https://voice.example.test/api/twilio/stream-status"
    # The execute-api URL is no longer what Twilio signs: a request signed over it is refused.
    assert invoke(incoming_call.handler, twilio_event(PATH, voice_params(new_call_sid()))).status == 403


# ---- capacity guard ---------------------------------------------------------------------------------------------


def test_over_capacity_dials_the_human_line(aws, invoke, monkeypatch, capsys):
    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "2")
    aws.store.adjust_active_calls(+2)
    call_sid = new_call_sid()

    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))

    assert answer.status == 200
    expected = VoiceResponse()
    expected.dial(HUMAN_NUMBER)
    assert answer.body == str(expected.to_xml())
    assert parse_twiml(answer.body).find("./Connect") is None
    record = aws.store.require_call(call_sid)
    assert record.outcome is CallOutcome.OVERFLOW_TO_HUMAN
    assert record.stream_token_expiry is None
    assert aws.store.active_calls() == 2  # not counted: the agent never took it
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("OverflowCalls") == 1
    assert "CallsStarted" not in metrics

    # The retry answers the same even once capacity is free again.
    aws.store.adjust_active_calls(-2)
    assert invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid))).body == answer.body


def test_two_calls_racing_for_the_last_seat_take_it_once(aws, monkeypatch):
    """Capacity is checked and taken in one transaction: two webhooks deciding at the same moment cannot both take
    the last seat (a read-then-increment would let both through and exceed MAX_CONCURRENT_CALLS)."""
    from lambdas.models import VoiceWebhook

    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "2")
    aws.store.adjust_active_calls(+1)
    webhooks = [VoiceWebhook.model_validate(voice_params(new_call_sid())) for _ in range(2)]
    answers = answer_together(webhooks, aws.store.table_name, monkeypatch)

    connected = [xml for xml in answers if parse_twiml(xml).find("./Connect/Stream") is not None]
    assert len(connected) == 1
    assert aws.store.active_calls() == 2
    outcomes = sorted(str(aws.store.require_call(w.call_sid).outcome) for w in webhooks)
    assert outcomes == ["None", "overflow_to_human"]


def test_a_failed_admission_leaves_no_uncounted_record_and_the_retry_counts_it(aws, invoke, monkeypatch):
    from botocore.exceptions import ClientError

    def dynamodb_fails(**kwargs):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "TransactWriteItems")

    call_sid = new_call_sid()
    with monkeypatch.context() as patched:
        patched.setattr(aws.store.client, "transact_write_items", dynamodb_fails)
        assert invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid))).status == 500
    assert aws.store.get_call(call_sid) is None

    retried = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))
    assert parse_twiml(retried.body).find("./Connect/Stream") is not None
    assert aws.store.active_calls() == 1
    invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))  # Twilio retries again
    assert aws.store.active_calls() == 1


def test_an_overflow_call_ending_gives_back_no_seat(aws, invoke, monkeypatch):
    from lambdas.handlers import call_status
    from tests.unit.lambdas.events import status_params

    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "1")
    admitted, overflow = new_call_sid(), new_call_sid()
    invoke(incoming_call.handler, twilio_event(PATH, voice_params(admitted)))
    invoke(incoming_call.handler, twilio_event(PATH, voice_params(overflow)))
    assert aws.store.require_call(overflow).outcome is CallOutcome.OVERFLOW_TO_HUMAN
    completed = status_params(overflow, "completed", 3, CallDuration="30")
    invoke(call_status.handler, twilio_event("/twilio/status", completed))
    assert aws.store.active_calls() == 1  # the admitted call still holds its seat


def test_unhealthy_relay_sends_the_call_to_the_human_line(aws, invoke):
    aws.store.set_relay_health(False, reason="alarm: relay 5xx")
    call_sid = new_call_sid()
    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))
    assert text(parse_twiml(answer.body), "./Dial") == HUMAN_NUMBER
    assert aws.store.require_call(call_sid).outcome is CallOutcome.OVERFLOW_TO_HUMAN
    assert aws.store.active_calls() == 0


def test_without_a_recent_relay_heartbeat_the_call_goes_to_the_human_line(aws, invoke):
    from callcore.models import utc_now
    from callcore.store import FLEET_PK, RELAY_HEARTBEAT_MAX_AGE, RELAY_HEARTBEAT_SK

    # The only relay stopped beating (crashed, or cannot reach DynamoDB): no operator mark is needed.
    aws.store.client.delete_item(
        TableName=aws.store.table_name, Key={"pk": {"S": FLEET_PK}, "sk": {"S": RELAY_HEARTBEAT_SK}}
    )
    aws.store.record_heartbeat("relay-task-1", at=utc_now() - RELAY_HEARTBEAT_MAX_AGE - timedelta(seconds=5))
    call_sid = new_call_sid()
    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))
    assert text(parse_twiml(answer.body), "./Dial") == HUMAN_NUMBER
    assert aws.store.require_call(call_sid).outcome is CallOutcome.OVERFLOW_TO_HUMAN
    assert aws.store.active_calls() == 0

    aws.store.record_heartbeat("relay-task-2")  # a relay is back
    admitted = invoke(incoming_call.handler, twilio_event(PATH, voice_params(new_call_sid())))
    assert parse_twiml(admitted.body).find("./Connect/Stream") is not None


def test_over_capacity_without_a_human_line_apologises_and_hangs_up(aws, invoke, monkeypatch):
    monkeypatch.delenv("HUMAN_TRANSFER_NUMBER")
    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "0")
    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(new_call_sid())))
    root = parse_twiml(answer.body)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert text(root, "./Say").startswith("Sorry")


# ---- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({k: v for k, v in voice_params(new_call_sid()).items() if k != "CallSid"}, "CallSid"),
        (voice_params("CA-not-a-call-sid"), "CallSid"),
        ({k: v for k, v in voice_params(new_call_sid()).items() if k != "From"}, "From"),
        (voice_params(new_call_sid(), AccountSid="ACnothex"), "AccountSid"),
    ],
)
def test_missing_or_malformed_parameter_is_a_400_naming_it(aws, invoke, params, field):
    answer = invoke(incoming_call.handler, twilio_event(PATH, params))
    assert answer.status == 400
    assert answer.json()["field"] == field
    assert field in answer.json()["message"]
    assert aws.written_items() == []


def test_unknown_direction_query_is_a_400(aws, invoke):
    event = twilio_event(PATH, voice_params(new_call_sid()), query={"direction": "sideways"})
    answer = invoke(incoming_call.handler, event)
    assert answer.status == 400
    assert answer.json()["field"] == "direction"
    assert aws.written_items() == []


def test_logs_carry_the_call_sid_and_never_a_full_number(aws, invoke, logs):
    call_sid = new_call_sid()
    invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid)))
    text = logs.getvalue()
    assert f'"correlation_id":"{call_sid}"' in text
    assert CALLER_NUMBER not in text
    assert "+1******0123" in text
    assert STREAM_TOKEN_SECRET not in text


def test_a_signature_is_checked_on_the_exact_public_url(aws, invoke):
    # Sanity of the test helper itself: the URL it signs is the stage URL API Gateway was reached on.
    params = voice_params(new_call_sid())
    event = twilio_event(PATH, params)
    assert event["headers"]["X-Twilio-Signature"] == sign(f"{API_BASE}{PATH}", params)
