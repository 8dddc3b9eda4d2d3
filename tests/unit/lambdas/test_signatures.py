"""Every Twilio route refuses a request Twilio did not sign, the same way: 403, the RejectedSignatures metric, and
nothing read or written. The API Gateway no longer filters a missing header, so the Lambda sees (and counts) it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from callcore.models import CallStatus
from lambdas.handlers import call_status, fallback, incoming_call, stream_status, whisper
from tests.unit.lambdas.conftest import emitted_metrics
from tests.unit.lambdas.events import ACCOUNT_SID, HUMAN_NUMBER, status_params, twilio_event, voice_params

# (handler, path, method, params and query for a call) for each Twilio route.
RouteCase = tuple[Any, str, str, Callable[[str], tuple[dict[str, str], dict[str, str] | None]]]
ROUTES: dict[str, RouteCase] = {
    "incoming": (incoming_call.handler, "/twilio/incoming", "POST", lambda sid: (voice_params(sid), None)),
    "incoming-outbound": (
        incoming_call.handler,
        "/twilio/incoming",
        "POST",
        lambda sid: (voice_params(sid, Direction="outbound-api"), {"direction": "outbound"}),
    ),
    "status": (call_status.handler, "/twilio/status", "POST", lambda sid: (status_params(sid, "completed", 9), None)),
    "stream-status": (
        stream_status.handler,
        "/twilio/stream-status",
        "POST",
        lambda sid: (
            {
                "AccountSid": ACCOUNT_SID,
                "CallSid": sid,
                "StreamSid": "MZ" + "4" * 32,
                "StreamEvent": "stream-error",
                "StreamError": "boom",
                "Timestamp": "2025-08-16T03:45:01Z",
            },
            None,
        ),
    ),
    "fallback": (fallback.handler, "/twilio/fallback", "POST", lambda sid: (voice_params(sid), None)),
    "whisper-post": (
        whisper.handler,
        "/twilio/whisper",
        "POST",
        lambda sid: ({"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "5" * 32, "To": HUMAN_NUMBER}, {"callSid": sid}),
    ),
    "whisper-get": (whisper.handler, "/twilio/whisper", "GET", lambda sid: ({}, {"callSid": sid, "To": HUMAN_NUMBER})),
}
FORGERIES: dict[str, dict[str, Any]] = {
    "missing header": {"signature": ""},
    "another auth token": {"auth_token": "another-auth-token"},
    "forged header": {"signature": "bm90IGEgc2lnbmF0dXJl"},
    "signed over another host": {"signed_url": "https://attacker.example.test/prod/twilio/x"},
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_every_twilio_route_refuses_an_unsigned_request(aws, invoke, make_call, capsys, route, forgery):
    handler, path, method, build = route
    call = make_call(status=CallStatus.IN_PROGRESS, transfer_reason="asked", transfer_summary="summary")
    before = aws.written_items()
    params, query = build(call.call_sid)
    capsys.readouterr()

    answer = invoke(handler, twilio_event(path, params, method=method, query=query, **forgery))

    assert answer.status == 403
    assert answer.json() == {"error": "Forbidden", "message": "invalid Twilio signature"}
    assert emitted_metrics(capsys.readouterr().out).get("RejectedSignatures") == 1
    assert aws.written_items() == before


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_the_same_request_signed_is_accepted(aws, invoke, make_call, route):
    # The refusals above are about the signature alone: the same requests, signed, pass.
    handler, path, method, build = route
    call = make_call(status=CallStatus.IN_PROGRESS, transfer_reason="asked", transfer_summary="summary")
    params, query = build(call.call_sid)
    assert invoke(handler, twilio_event(path, params, method=method, query=query)).status == 200
