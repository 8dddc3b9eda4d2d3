"""The one error mapping, and what an unexpected failure looks like to Twilio."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from lambdas.api import STATUS_BY_ERROR, status_for
from lambdas.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    UpstreamError,
)
from lambdas.handlers import incoming_call
from lambdas.twilio_calls import CallNotLive, NumberRefused, TwilioFailure
from tests.unit.lambdas.events import new_call_sid, twilio_event, voice_params


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest("x", field="f"), 400),
        (Forbidden("x"), 403),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (CallNotLive("x"), 409),
        (Unprocessable("x", field="f"), 422),
        (NumberRefused("x", field="to"), 422),
        (UpstreamError("x"), 502),
        (TwilioFailure("x"), 502),
        (ServiceUnavailable("x"), 503),
        (ApiError("x"), 500),
    ],
)
def test_every_refusal_has_one_status(error, status):
    assert status_for(error) == HTTPStatus(status)


def test_the_mapping_covers_every_refusal_class():
    assert set(STATUS_BY_ERROR) == {c for c in ApiError.__subclasses__() if c.__module__ == "lambdas.errors"}


def test_an_unexpected_failure_is_a_500_so_twilio_uses_the_fallback_url(aws, invoke, monkeypatch, logs):
    def broken(*args, **kwargs):
        raise RuntimeError("dynamodb is having a bad day")

    monkeypatch.setattr("callcore.store.CallStore.create_call", broken)
    monkeypatch.setattr("callcore.store.CallStore.admit_call", broken)
    answer = invoke(incoming_call.handler, twilio_event("/twilio/incoming", voice_params(new_call_sid())))
    assert answer.status == 500
    assert answer.json()["message"] == "unexpected error"
    assert "dynamodb is having a bad day" not in answer.body
    assert "dynamodb is having a bad day" in logs.getvalue()
