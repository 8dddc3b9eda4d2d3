"""Per-caller limits in the admission transaction: one number cannot hold every seat, withheld numbers share a lower
limit, and the caller's history rides on the record only as a keyed hash and the carrier's attestation."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from callcore.masking import caller_hash
from callcore.models import CallDirection, CallOutcome, is_withheld_number
from callcore.store import TTL_ATTRIBUTE
from callcore.store.seats import WITHHELD_SLOT, live_calls_key
from lambdas.handlers import call_status, incoming_call
from lambdas.models import VoiceWebhook
from lambdas.settings import load_settings
from tests.unit.lambdas.conftest import answer_together, emitted_metrics
from tests.unit.lambdas.events import (
    CALLER_NUMBER,
    new_call_sid,
    parse_twiml,
    status_params,
    twilio_event,
    voice_params,
)

PATH = "/twilio/incoming"
OTHER_CALLER = "+15005550777"


def busy() -> str:
    response = VoiceResponse()
    response.reject(reason="busy")
    return str(response.to_xml())


def call_in(invoke, *, from_number: str = CALLER_NUMBER, **extra: str) -> tuple[str, str]:
    call_sid = new_call_sid()
    answer = invoke(incoming_call.handler, twilio_event(PATH, voice_params(call_sid, From=from_number, **extra)))
    assert answer.status == 200
    return call_sid, answer.body


def admitted(body: str) -> bool:
    return parse_twiml(body).find("./Connect/Stream") is not None


def end(invoke, call_sid: str) -> None:
    callback = twilio_event("/twilio/status", status_params(call_sid, "completed", 1, CallDuration="30"))
    assert invoke(call_status.handler, callback).status == 200


def test_a_caller_with_their_most_live_calls_is_answered_busy(aws, invoke, capsys):
    first, second = (call_in(invoke) for _ in range(2))
    assert admitted(first[1])
    assert admitted(second[1])

    third_sid, third = call_in(invoke)

    assert third == busy()
    record = aws.store.require_call(third_sid)
    assert record.outcome is CallOutcome.CALLER_LIMIT
    assert record.stream_token_expiry is None
    assert record.caller_slot is None
    assert aws.store.active_calls() == 2  # the refused call took no seat
    assert emitted_metrics(capsys.readouterr().out).get("CallsOverCallerLimit") == 1
    # Someone else still gets the agent, and the refused caller's retried webhook is answered the same.
    assert admitted(call_in(invoke, from_number=OTHER_CALLER)[1])
    retry = invoke(incoming_call.handler, twilio_event(PATH, voice_params(third_sid)))
    assert retry.body == busy()


def test_a_call_that_ends_gives_its_place_back_to_the_caller(aws, invoke):
    first_sid, _ = call_in(invoke)
    call_in(invoke)
    assert call_in(invoke)[1] == busy()
    hashed = caller_hash(load_settings().caller_hash_key, CALLER_NUMBER)
    assert len(aws.store.caller_live_calls(hashed)) == 2

    end(invoke, first_sid)

    assert first_sid not in aws.store.caller_live_calls(hashed)
    assert len(aws.store.caller_live_calls(hashed)) == 1
    assert admitted(call_in(invoke)[1])


def test_the_limit_is_a_setting(aws, invoke, monkeypatch):
    monkeypatch.setenv("MAX_LIVE_CALLS_PER_CALLER", "1")
    assert admitted(call_in(invoke)[1])
    assert call_in(invoke)[1] == busy()


@pytest.mark.parametrize("withheld", ["anonymous", "Anonymous", "+266696687", "+7378742833", "client:alice"])
def test_withheld_numbers_share_one_lower_limit(aws, invoke, withheld):
    assert is_withheld_number(withheld)
    sid, body = call_in(invoke, from_number="+2562533")  # BLOCKED, spelt on a keypad
    assert admitted(body)
    assert aws.store.require_call(sid).caller_slot == WITHHELD_SLOT
    assert aws.store.require_call(sid).caller_hash is None  # a shared identity says nothing about anyone

    assert call_in(invoke, from_number=withheld)[1] == busy()  # another withheld caller: over MAX_LIVE_WITHHELD_CALLS
    assert admitted(call_in(invoke)[1])  # a caller who shows their number is not affected


def test_withheld_callers_can_be_kept_from_the_agent_altogether(aws, invoke, monkeypatch):
    monkeypatch.setenv("MAX_LIVE_WITHHELD_CALLS", "0")
    assert call_in(invoke, from_number="anonymous")[1] == busy()
    assert aws.store.active_calls() == 0


def test_the_record_carries_the_keyed_hash_and_the_attestation_never_a_second_number(aws, invoke):
    sid, _ = call_in(invoke, StirVerstat="TN-Validation-Passed-B")
    record = aws.store.require_call(sid)
    settings = load_settings()
    assert record.caller_hash == caller_hash(settings.caller_hash_key, CALLER_NUMBER)
    assert record.caller_slot == record.caller_hash
    assert record.stir_verstat == "TN-Validation-Passed-B"
    assert not record.caller_id_verified
    # The live-calls item holds CallSids and a TTL, not the number.
    item = aws.store.client.get_item(TableName=aws.store.table_name, Key=live_calls_key(record.caller_hash))["Item"]
    assert CALLER_NUMBER not in str(item)
    assert int(item[TTL_ATTRIBUTE]["N"]) > 0


def test_two_calls_from_one_number_racing_for_its_last_place_take_it_once(aws, invoke, monkeypatch):
    """The caller's limit is checked and taken in the admission transaction: two calls from one number arriving at
    the same moment cannot both take the last place (a read-then-write check would let both through)."""
    call_in(invoke)  # one live call already: one place left of MAX_LIVE_CALLS_PER_CALLER=2
    webhooks = [VoiceWebhook.model_validate(voice_params(new_call_sid())) for _ in range(2)]

    answers = answer_together(webhooks, aws.store.table_name, monkeypatch)

    assert sorted(admitted(xml) for xml in answers) == [False, True]
    assert busy() in answers
    hashed = caller_hash(load_settings().caller_hash_key, CALLER_NUMBER)
    assert len(aws.store.caller_live_calls(hashed)) == 2
    assert aws.store.active_calls() == 2
    outcomes = sorted(str(aws.store.require_call(w.call_sid).outcome) for w in webhooks)
    assert outcomes == ["None", "caller_limit"]


def test_with_no_caller_limit_two_racing_calls_would_both_be_admitted(aws, invoke, monkeypatch):
    # The race above is real: with room for both, both are admitted, so the refusal there came from the limit.
    monkeypatch.setenv("MAX_LIVE_CALLS_PER_CALLER", "3")
    call_in(invoke)
    webhooks = [VoiceWebhook.model_validate(voice_params(new_call_sid())) for _ in range(2)]
    assert all(admitted(xml) for xml in answer_together(webhooks, aws.store.table_name, monkeypatch))


@pytest.mark.parametrize(
    ("verstat", "verified"),
    [
        ("TN-Validation-Passed-A", True),
        ("TN-Validation-Passed-B", False),
        ("TN-Validation-Passed-C", False),
        ("TN-Validation-Failed-A", False),
        ("No-TN-Validation", False),
        (None, False),
    ],
)
def test_only_full_attestation_makes_an_inbound_number_trustworthy(aws, invoke, verstat, verified):
    extra = {"StirVerstat": verstat} if verstat else {}
    sid, _ = call_in(invoke, **extra)
    record = aws.store.require_call(sid)
    assert record.stir_verstat == verstat
    assert record.caller_id_verified is verified


def test_a_call_the_agent_placed_reached_the_number_it_dialled(aws, make_call):
    assert make_call(direction=CallDirection.OUTBOUND).caller_id_verified
