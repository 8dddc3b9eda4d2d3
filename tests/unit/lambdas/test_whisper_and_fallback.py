"""GET|POST /twilio/whisper (the human hears the summary) and POST /twilio/fallback (dial the human line)."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from lambdas.handlers import fallback, whisper
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    HUMAN_NUMBER,
    new_call_sid,
    parse_twiml,
    text,
    twilio_event,
)
from tests.unit.lambdas.lines import CLINIC_HUMAN, CLINIC_NUMBER, bistro, clinic, publish

WHISPER = "/twilio/whisper"
FALLBACK = "/twilio/fallback"


def human_leg_params() -> dict[str, str]:
    """What Twilio sends for the dialled human's leg (its own CallSid; the original call is in our query)."""
    return {"AccountSid": ACCOUNT_SID, "CallSid": new_call_sid(), "CallStatus": "in-progress", "To": HUMAN_NUMBER}


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_whisper_speaks_the_stored_reason_and_summary(aws, invoke, make_call, method):
    call = make_call(transfer_reason="wants a person", transfer_summary="Ana is moving her Friday booking.")
    params = human_leg_params()
    query = {"callSid": call.call_sid} if method == "POST" else {"callSid": call.call_sid, **params}
    event = twilio_event(WHISPER, params if method == "POST" else {}, method=method, query=query)

    answer = invoke(whisper.handler, event)

    assert answer.status == 200
    expected = VoiceResponse()
    expected.say("Incoming transfer from the voice assistant.")
    expected.say("Reason: wants a person.")
    expected.say("Ana is moving her Friday booking.")
    assert answer.body == str(expected.to_xml())
    parse_twiml(answer.body)


def test_whisper_without_a_summary_still_lets_the_human_connect(aws, invoke):
    event = twilio_event(WHISPER, human_leg_params(), query={"callSid": new_call_sid()})
    answer = invoke(whisper.handler, event)
    assert answer.status == 200
    assert [say.text for say in parse_twiml(answer.body)] == [
        "Incoming transfer from the voice assistant. No summary is available."
    ]


def test_whisper_refuses_bad_signatures_and_a_missing_call_sid(aws, invoke, make_call):
    call = make_call(transfer_summary="secret-ish summary")
    forged = twilio_event(
        WHISPER, human_leg_params(), query={"callSid": call.call_sid}, auth_token="another-auth-token"
    )
    refused = invoke(whisper.handler, forged)
    assert refused.status == 403
    assert "secret-ish" not in refused.body
    missing = invoke(whisper.handler, twilio_event(WHISPER, human_leg_params()))
    assert missing.status == 400
    assert missing.json()["field"] == "callSid"


def fallback_params() -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": new_call_sid(),
        "From": "+15005550123",
        "To": "+15005550001",
        "ErrorCode": "11200",
        "ErrorUrl": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/twilio/incoming",
    }


def test_fallback_dials_the_human_line(aws, invoke):
    answer = invoke(fallback.handler, twilio_event(FALLBACK, fallback_params()))
    assert answer.status == 200
    expected = VoiceResponse()
    expected.dial(HUMAN_NUMBER)
    assert answer.body == str(expected.to_xml())
    assert aws.written_items() == []


def test_fallback_without_a_human_line_apologises(aws, invoke, monkeypatch):
    monkeypatch.delenv("HUMAN_TRANSFER_NUMBER")
    answer = invoke(fallback.handler, twilio_event(FALLBACK, fallback_params()))
    assert [child.tag for child in parse_twiml(answer.body)] == ["Say", "Hangup"]


def test_fallback_dials_the_human_line_of_the_numbers_profile(aws, invoke):
    publish(bistro(), clinic())
    inbound = {**fallback_params(), "To": CLINIC_NUMBER}
    outbound = {**fallback_params(), "From": CLINIC_NUMBER, "To": "+15005550177", "Direction": "outbound-api"}

    for params in (inbound, outbound):
        answer = invoke(fallback.handler, twilio_event(FALLBACK, params))
        assert text(parse_twiml(answer.body), "./Dial") == CLINIC_HUMAN


def test_fallback_dials_the_settings_human_line_when_the_profiles_cannot_be_read(aws, invoke):
    aws.store.client.delete_table(TableName=aws.store.table_name)  # DynamoDB is why the voice URL failed
    answer = invoke(fallback.handler, twilio_event(FALLBACK, fallback_params()))
    assert answer.status == 200
    assert text(parse_twiml(answer.body), "./Dial") == HUMAN_NUMBER


def test_fallback_checks_the_signature(aws, invoke):
    forged = twilio_event(FALLBACK, fallback_params(), auth_token="another-auth-token")
    assert invoke(fallback.handler, forged).status == 403
