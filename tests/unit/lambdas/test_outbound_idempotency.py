"""POST /calls with an `Idempotency-Key`: a client retry never dials twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcore.store import IDEMPOTENCY_SK, TTL_ATTRIBUTE, IdempotencyState
from lambdas.handlers import outbound_call
from tests.unit.lambdas.events import outbound_event

CALLEE = "+15005550177"
BODY = {"to": CALLEE, "context": "remind Ana of Saturday 7pm"}


def keyed(body: dict[str, Any] | str, key: str | None, header: str = "Idempotency-Key") -> dict[str, Any]:
    event = outbound_event(body)
    if key is not None:
        event["headers"][header] = key
        event["multiValueHeaders"][header] = [key]
    return event


def place(invoke, body: dict[str, Any] | str, key: str | None, **kwargs: Any):
    return invoke(outbound_call.handler, keyed(body, key, **kwargs))


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer_without_dialling(aws, twilio, invoke):
    first = place(invoke, BODY, "order-42-reminder")
    assert first.status == 201
    # Same request, written differently (key order, spacing): still the same request.
    retry = place(invoke, json.dumps({"context": BODY["context"], "to": CALLEE}, indent=2), "order-42-reminder")
    assert (retry.status, retry.body) == (201, first.body)
    assert len(twilio.requests) == 1
    # The header name is case-insensitive, like every HTTP header.
    assert place(invoke, BODY, "order-42-reminder", header="idempotency-key").body == first.body
    assert len(twilio.requests) == 1


def test_the_key_is_stored_for_24_hours(aws, twilio, invoke):
    before = datetime.now(UTC)
    place(invoke, BODY, "k-ttl")
    item = aws.store.client.get_item(
        TableName=aws.store.table_name, Key={"pk": {"S": "IDEMPOTENCY#k-ttl"}, "sk": {"S": IDEMPOTENCY_SK}}
    )["Item"]
    expires = datetime.fromtimestamp(int(item[TTL_ATTRIBUTE]["N"]), UTC)
    assert before + timedelta(hours=24) - timedelta(seconds=1) <= expires <= datetime.now(UTC) + timedelta(hours=24)
    assert item["state"]["S"] == IdempotencyState.DONE.value


def test_the_same_key_with_another_body_is_422(aws, twilio, invoke):
    place(invoke, BODY, "k-1")
    other = place(invoke, {**BODY, "to": "+15005550178"}, "k-1")
    assert other.status == 422
    assert other.json()["field"] == "Idempotency-Key"
    assert len(twilio.requests) == 1


def test_a_retry_while_the_first_request_runs_is_409_in_progress(aws, twilio, invoke):
    from lambdas.logic.outbound_call import IDEMPOTENCY_TTL, request_fingerprint
    from lambdas.models import OutboundCallRequest

    fingerprint = request_fingerprint(OutboundCallRequest.model_validate(BODY))
    assert aws.store.claim_idempotency_key("k-2", request_hash=fingerprint, ttl=IDEMPOTENCY_TTL).claimed
    answer = place(invoke, BODY, "k-2")
    assert answer.status == 409
    assert answer.json()["inProgress"] is True
    assert answer.headers["retry-after"] == "2"
    assert twilio.requests == []


def test_a_request_twilio_refused_releases_its_key_for_a_retry(aws, twilio, invoke):
    # A 4xx: Twilio answered that it did not create the call.
    twilio.fail_next(status=400, code=21210, message="'From' phone number not verified")
    assert place(invoke, BODY, "k-3").status == 502
    retry = place(invoke, BODY, "k-3")
    assert retry.status == 201
    assert len(twilio.requests) == 2
    assert place(invoke, BODY, "k-3").body == retry.body
    assert len(twilio.requests) == 2


def test_a_crash_after_dialling_never_dials_again(aws, twilio, invoke, monkeypatch):
    def dynamodb_down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("dynamodb is having a bad day")

    with monkeypatch.context() as patched:
        patched.setattr("callcore.store.CallStore.create_call", dynamodb_down)
        assert place(invoke, BODY, "k-4").status == 500
    retry = place(invoke, BODY, "k-4")
    assert retry.status == 201
    assert list(twilio.calls) == [retry.json()["callSid"]]  # the call placed by the crashed request
    assert len(twilio.requests) == 1


def test_an_expired_key_is_claimed_anew(aws, twilio, invoke):
    from lambdas.logic.outbound_call import IDEMPOTENCY_TTL, request_fingerprint
    from lambdas.models import OutboundCallRequest

    fingerprint = request_fingerprint(OutboundCallRequest.model_validate(BODY))
    long_ago = datetime.now(UTC) - IDEMPOTENCY_TTL - timedelta(minutes=1)
    aws.store.claim_idempotency_key("k-5", request_hash=fingerprint, ttl=IDEMPOTENCY_TTL, now=long_ago)
    assert place(invoke, BODY, "k-5").status == 201  # DynamoDB had not deleted the expired item yet


def test_without_a_key_every_request_dials(aws, twilio, invoke):
    place(invoke, BODY, None)
    place(invoke, BODY, None)
    assert len(twilio.requests) == 2


@pytest.mark.parametrize("key", ["", "x" * 129, "tab\there", "naïve"])
def test_a_malformed_key_is_a_400_naming_the_header(aws, twilio, invoke, key):
    answer = place(invoke, BODY, key)
    assert answer.status == 400
    assert answer.json()["field"] == "Idempotency-Key"
    assert twilio.requests == []


def test_a_key_of_128_printable_characters_is_accepted(aws, twilio, invoke):
    assert place(invoke, BODY, "k" * 127 + "~").status == 201


def test_when_twilio_may_have_placed_the_call_a_retry_is_told_so_and_never_dials(aws, twilio, invoke):
    # A 5xx (like a timeout after sending): Twilio may have created the call. Dialling again could ring the person
    # twice; inviting the client to keep polling would never end. The retry gets a final 409 instead.
    twilio.fail_next(status=503, code=20503, message="unavailable")
    assert place(invoke, BODY, "k-6").status == 502
    retry = place(invoke, BODY, "k-6")
    assert retry.status == 409
    assert "unknown" in retry.json()["message"]
    assert "inProgress" not in retry.json()
    assert "Retry-After" not in retry.headers
    assert len(twilio.requests) == 1


def test_a_key_held_past_its_lease_by_a_request_that_died_is_final(aws, twilio, invoke):
    from lambdas.logic.outbound_call import IDEMPOTENCY_LEASE, IDEMPOTENCY_TTL, request_fingerprint
    from lambdas.models import OutboundCallRequest

    fingerprint = request_fingerprint(OutboundCallRequest.model_validate(BODY))
    died_at = datetime.now(UTC) - IDEMPOTENCY_LEASE - timedelta(seconds=5)
    aws.store.claim_idempotency_key("k-7", request_hash=fingerprint, ttl=IDEMPOTENCY_TTL, now=died_at)
    retry = place(invoke, BODY, "k-7")
    assert retry.status == 409
    assert "unknown" in retry.json()["message"]
    assert len(twilio.requests) == 0
