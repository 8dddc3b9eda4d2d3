"""POST /twilio/stream-status: stream errors are recorded; start/stop never touch the relay's stream claim."""

from __future__ import annotations

from lambdas.handlers import stream_status
from tests.unit.lambdas.events import ACCOUNT_SID, new_call_sid, twilio_event

PATH = "/twilio/stream-status"


def stream_params(call_sid: str, event: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "StreamSid": "MZ" + "1" * 32,
        "StreamName": "MZ" + "1" * 32,
        "StreamEvent": event,
        "Timestamp": "2025-08-16T03:45:01.000Z",
        **extra,
    }


def test_stream_started_and_stopped_change_nothing(aws, invoke, make_call):
    call = make_call()
    for event in ("stream-started", "stream-stopped"):
        answer = invoke(stream_status.handler, twilio_event(PATH, stream_params(call.call_sid, event)))
        assert answer.status == 200
        assert answer.json() == {"recorded": False}
    assert aws.store.require_call(call.call_sid) == call
    # The relay's single-use claim of the stream is still open.
    assert aws.store.claim_stream(call.call_sid, "MZ" + "1" * 32) is True


def test_stream_error_is_recorded_once(aws, invoke, make_call):
    call = make_call()
    first = stream_params(call.call_sid, "stream-error", StreamError="31920 handshake failed")
    second = stream_params(call.call_sid, "stream-error", StreamError="31921 closed")

    assert invoke(stream_status.handler, twilio_event(PATH, first)).json() == {"recorded": True}
    invoke(stream_status.handler, twilio_event(PATH, second))

    assert aws.store.require_call(call.call_sid).error == "stream-error: 31920 handshake failed"


def test_stream_error_for_an_unknown_call_writes_nothing(aws, invoke):
    answer = invoke(stream_status.handler, twilio_event(PATH, stream_params(new_call_sid(), "stream-error")))
    assert answer.status == 200
    assert answer.json() == {"recorded": False}
    assert aws.written_items() == []


def test_bad_signature_and_bad_event_are_refused(aws, invoke, make_call):
    call = make_call()
    forged = twilio_event(PATH, stream_params(call.call_sid, "stream-error"), auth_token="another-auth-token")
    assert invoke(stream_status.handler, forged).status == 403
    unknown = invoke(stream_status.handler, twilio_event(PATH, stream_params(call.call_sid, "stream-paused")))
    assert unknown.status == 400
    assert unknown.json()["field"] == "StreamEvent"
    assert aws.store.require_call(call.call_sid).error is None
