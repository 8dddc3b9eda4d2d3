"""The sweep finishes the calls whose end-of-call work failed, reconciles calls whose last callback was lost by asking
Twilio's REST API (the in-process fake), corrects a drifted seat counter and masks the numbers of finished calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcore.masking import caller_hash, mask_phone
from callcore.models import CallDirection, CallOutcome, CallStatus, TranscriptTurn, TurnRole
from callcore.transcripts import call_summary_key
from lambdas.handlers import sweep as sweep_handler
from lambdas.logic import reconcile
from lambdas.logic.reconcile import OPEN_CALL_MARGIN
from lambdas.logic.sweep import SWEEP_AFTER, sweep
from lambdas.settings import load_settings
from lambdas.twilio_calls import twilio_calls
from tests.unit.lambdas.conftest import Handler, emitted_metrics
from tests.unit.lambdas.events import BUCKET, CALLER_NUMBER, FakeLambdaContext

MAX_CALL = timedelta(seconds=1800)  # MAX_CALL_SECONDS's default


@pytest.fixture(autouse=True)
def _index_settles_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests' seats moved a moment ago; moto's index does not lag, so the counter check need not wait for it.
    monkeypatch.setattr(reconcile, "INDEX_SETTLE", timedelta(0))


def _turn(call_sid: str, text: str) -> TranscriptTurn:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    return TranscriptTurn(call_sid=call_sid, index=0, role=TurnRole.AGENT, text=text, started_at=at, ended_at=at)


def _ended(aws: Any, make_call: Any, *, ago: timedelta, sequence: int = 3) -> Any:
    """A call that ended `ago` whose end-of-call work never ran (the status Lambda failed after applying the status)."""
    ended_at = datetime.now(UTC) - ago
    call = make_call(created_at=ended_at - timedelta(minutes=2))
    assert aws.store.apply_status(call.call_sid, CallStatus.COMPLETED, sequence, at=ended_at, duration_seconds=120)
    return call


def _streamed(aws: Any, make_call: Any, *, ago: timedelta, **fields: Any) -> Any:
    """An inbound call admitted `ago` whose stream started: Twilio never reports its answer, only its end."""
    call = make_call(created_at=datetime.now(UTC) - ago, status=CallStatus.RINGING, **fields)
    assert aws.store.claim_stream(call.call_sid, "MZ" + "1" * 32, at=call.created_at + timedelta(seconds=1))
    return call


def run_sweep() -> dict[str, Any]:
    handler: Handler = sweep_handler.handler
    return handler({"source": "aws.events"}, FakeLambdaContext())


def test_the_sweep_finishes_an_ended_unfinished_call_and_frees_its_seat(aws, make_call, twilio, capsys):
    call = _ended(aws, make_call, ago=SWEEP_AFTER + timedelta(minutes=1))
    aws.store.put_turn(_turn(call.call_sid, "stored turn"))
    assert aws.store.active_calls() == 1  # the seat the failed finish never gave back

    assert run_sweep()["finished"] == 1

    record = aws.store.require_call(call.call_sid)
    assert record.finished_at is not None
    assert record.outcome is CallOutcome.ERROR  # no relay transcript: the relay died with the call
    assert aws.store.active_calls() == 0
    assert aws.archive.read_transcript(call.call_sid, call.created_at) == [_turn(call.call_sid, "stored turn")]
    aws.archive.client.head_object(Bucket=BUCKET, Key=call_summary_key(call.call_sid, call.created_at))
    assert emitted_metrics(capsys.readouterr().out).get("CallsSwept") == 1
    # Finished calls are left alone by the next sweep.
    assert run_sweep()["finished"] == 0
    assert aws.store.active_calls() == 0
    assert twilio.requests == []  # nothing here needed Twilio


def test_the_sweep_leaves_live_recent_and_finished_calls_alone(aws, make_call, twilio):
    live = _streamed(aws, make_call, ago=MAX_CALL)  # long, but within the longest call plus the margin
    recent = _ended(aws, make_call, ago=timedelta(seconds=30))  # the status Lambda may still be at work
    done = _ended(aws, make_call, ago=SWEEP_AFTER * 2)
    aws.store.mark_finished(done.call_sid)

    assert run_sweep() == {"finished": 0, "reconciled": 0, "redacted": 0, "failed": 0, "seat_drift": 0}
    for call in (live, recent, done):
        assert aws.store.require_call(call.call_sid).outcome is None
    assert aws.store.active_calls() == 3
    assert twilio.requests == []


def test_one_call_that_cannot_be_finished_does_not_stop_the_others(aws, make_call, twilio, monkeypatch):
    broken = _ended(aws, make_call, ago=SWEEP_AFTER * 2)
    fine = _ended(aws, make_call, ago=SWEEP_AFTER * 2)
    real_release = type(aws.store).release_seat

    def release(store: Any, call_sid: str, *args: Any, **kwargs: Any) -> bool:
        if call_sid == broken.call_sid:
            raise RuntimeError("DynamoDB throttled")
        return bool(real_release(store, call_sid, *args, **kwargs))

    monkeypatch.setattr("callcore.store.CallStore.release_seat", release)
    report = run_sweep()
    assert (report["finished"], report["failed"]) == (1, 1)
    assert aws.store.require_call(fine.call_sid).finished_at is not None
    assert aws.store.require_call(broken.call_sid).finished_at is None  # the next sweep tries again


# ---- a lost terminal callback: Twilio's REST API says where the call is ------------------------------------------


def test_a_lost_terminal_callback_is_recovered_from_twilio_and_the_seat_comes_back(aws, make_call, twilio, capsys):
    call = _streamed(aws, make_call, ago=MAX_CALL + OPEN_CALL_MARGIN + timedelta(minutes=1))
    started = call.created_at.replace(microsecond=0)  # Twilio's times are whole seconds
    ended = started + timedelta(minutes=3)
    twilio.add_call(call.call_sid, started_at=started)
    twilio.end_call(call.call_sid, at=ended)  # the caller hung up; the `completed` callback never arrived
    assert aws.store.active_calls() == 1

    report = run_sweep()

    assert report["reconciled"] == 1
    assert [(r.method, r.call_sid) for r in twilio.requests] == [("GET", call.call_sid)]
    record = aws.store.require_call(call.call_sid)
    assert record.status is CallStatus.COMPLETED
    assert record.ended_at == ended
    assert record.duration_seconds == 180
    assert record.answered_at == call.created_at + timedelta(seconds=1)  # from the stream's start
    assert record.seat_released_at is not None
    assert record.finished_at is not None
    assert record.outcome is CallOutcome.ERROR  # nobody wrote a transcript: the relay died with it
    assert aws.store.active_calls() == 0
    aws.archive.client.head_object(Bucket=BUCKET, Key=call_summary_key(call.call_sid, call.created_at))
    assert emitted_metrics(capsys.readouterr().out).get("CallsReconciled") == 1
    # Done: the next sweep neither asks Twilio again nor finishes anything.
    again = run_sweep()
    assert (again["reconciled"], again["finished"]) == (0, 0)
    assert len(twilio.requests) == 1


def test_a_call_still_up_on_twilio_past_the_longest_call_gives_back_its_seat_only(aws, make_call, twilio):
    # The relay died mid-call and Twilio's <Connect> fell through to the human line: the call goes on without the
    # agent, so its seat is free, but the call has not ended and is not finished.
    call = _streamed(aws, make_call, ago=MAX_CALL + OPEN_CALL_MARGIN + timedelta(minutes=1))
    twilio.add_call(call.call_sid, started_at=call.created_at)

    assert run_sweep()["reconciled"] == 0

    record = aws.store.require_call(call.call_sid)
    assert record.seat_released_at is not None
    assert not record.status.is_terminal
    assert record.finished_at is None
    assert aws.store.active_calls() == 0
    # Once it ends, a later sweep finishes it.
    twilio.end_call(call.call_sid)
    assert run_sweep()["reconciled"] == 1
    assert aws.store.require_call(call.call_sid).finished_at is not None


def test_a_seat_whose_stream_never_started_is_reconciled_without_waiting_for_the_longest_call(aws, make_call, twilio):
    # Admitted, but the media stream never reached the relay; the caller hung up and that callback was lost.
    settings = load_settings()
    age = timedelta(seconds=settings.stream_token_ttl_seconds) + reconcile.NEVER_STREAMED_MARGIN
    call = make_call(created_at=datetime.now(UTC) - age - timedelta(seconds=5), status=CallStatus.RINGING)
    twilio.add_call(call.call_sid, started_at=call.created_at)
    twilio.end_call(call.call_sid, at=call.created_at + timedelta(seconds=20))

    assert run_sweep()["reconciled"] == 1
    assert aws.store.active_calls() == 0
    assert aws.store.require_call(call.call_sid).status is CallStatus.COMPLETED


def test_a_call_twilio_does_not_know_gives_back_its_seat(aws, make_call, twilio):
    call = _streamed(aws, make_call, ago=MAX_CALL + OPEN_CALL_MARGIN + timedelta(minutes=1))  # never added to Twilio
    assert run_sweep()["reconciled"] == 0
    assert aws.store.active_calls() == 0
    assert aws.store.require_call(call.call_sid).finished_at is None


def test_twilio_failing_keeps_the_seat_for_the_next_sweep(aws, make_call, twilio):
    call = _streamed(aws, make_call, ago=MAX_CALL + OPEN_CALL_MARGIN + timedelta(minutes=1))
    twilio.add_call(call.call_sid, started_at=call.created_at)
    twilio.end_call(call.call_sid)
    twilio.fail_next(status=503, code=20500, message="Service Unavailable")

    report = run_sweep()
    assert (report["reconciled"], report["failed"]) == (0, 1)
    assert aws.store.active_calls() == 1  # not given back on a guess
    assert run_sweep()["reconciled"] == 1
    assert aws.store.active_calls() == 0


def test_a_callback_that_arrives_after_twilio_was_asked_changes_nothing_more(aws, make_call, twilio):
    call = _streamed(aws, make_call, ago=MAX_CALL + OPEN_CALL_MARGIN + timedelta(minutes=1))
    twilio.add_call(call.call_sid, started_at=call.created_at)
    twilio.end_call(call.call_sid, status="completed")
    run_sweep()
    first = aws.store.require_call(call.call_sid)
    # Twilio's retry of the lost callback, late: the status is the same, the end work is not redone.
    assert aws.store.apply_status(call.call_sid, CallStatus.COMPLETED, 0)
    assert aws.store.require_call(call.call_sid).finished_at == first.finished_at
    assert aws.store.active_calls() == 0


# ---- the seat counter against the records -----------------------------------------------------------------------


def test_a_drifted_seat_counter_is_corrected_from_the_records(aws, make_call, twilio, capsys):
    _streamed(aws, make_call, ago=timedelta(minutes=1))  # one call really holds a seat
    aws.store.adjust_active_calls(+3)  # three seats that no record holds (leaked before this sweep existed)

    report = run_sweep()

    assert report["seat_drift"] == 3
    assert aws.store.active_calls() == 1
    assert emitted_metrics(capsys.readouterr().out).get("SeatDrift") == 3
    assert run_sweep()["seat_drift"] == 0


def test_a_counter_below_the_records_is_corrected_upwards(aws, make_call, twilio):
    for _ in range(2):
        _streamed(aws, make_call, ago=timedelta(minutes=1))
    aws.store.adjust_active_calls(-2)  # reset by hand while two calls were live
    assert run_sweep()["seat_drift"] == -2
    assert aws.store.active_calls() == 2


def test_a_drifted_line_seat_counter_is_corrected_from_the_records(aws, make_call, twilio):
    bistro = {"profile_id": "bistro", "profile_version": "0123456789abcdef"}
    live = _streamed(aws, make_call, ago=timedelta(minutes=1), **bistro)
    _streamed(aws, make_call, ago=timedelta(minutes=1), profile_id="clinic", profile_version="0123456789abcdef")
    ended = _streamed(aws, make_call, ago=timedelta(minutes=1), **bistro)
    # A seat given back without the line's: the bistro's counter says 2, its records hold 1.
    aws.store.client.update_item(
        TableName=aws.store.table_name,
        Key={"pk": {"S": f"CALL#{ended.call_sid}"}, "sk": {"S": "RECORD"}},
        UpdateExpression="SET seat_released_at = :at",
        ExpressionAttributeValues={":at": {"S": datetime.now(UTC).isoformat()}},
    )

    run_sweep()

    assert (aws.store.active_calls("bistro"), aws.store.active_calls("clinic")) == (1, 1)
    assert aws.store.release_seat(live.call_sid)
    assert aws.store.active_calls("bistro") == 0


def test_the_counter_is_not_recounted_while_seats_are_moving(aws, make_call, monkeypatch):
    monkeypatch.setattr(reconcile, "INDEX_SETTLE", timedelta(seconds=10))
    aws.store.adjust_active_calls(+1)  # moved just now: the index may not show the record that moved it yet
    waits: list[float] = []
    assert reconcile.reconcile_seat_counter(aws.store, ["2026-11-30"], sleep=waits.append) is None
    assert aws.store.active_calls() == 1
    assert len(waits) == reconcile.COUNTER_ATTEMPTS - 1
    later = datetime.now(UTC) + timedelta(seconds=11)
    assert reconcile.reconcile_seat_counter(aws.store, ["2026-11-30"], clock=lambda: later, sleep=waits.append) == 1
    assert aws.store.active_calls() == 0


def test_a_seat_moving_during_the_recount_makes_the_correction_wait(aws, make_call):
    aws.store.adjust_active_calls(+2)
    seen = aws.store.seat_counter()
    make_call()  # admitted after the counter was read: the recount may or may not include it
    assert not aws.store.correct_active_calls(0, seen=seen)
    assert aws.store.active_calls() == 3


# ---- raw numbers are kept a short while only ----------------------------------------------------------------------


def test_a_finished_call_loses_its_raw_number_after_the_window_and_keeps_its_hash(aws, make_call, twilio, capsys):
    settings = load_settings()
    old = _ended(aws, make_call, ago=timedelta(hours=settings.raw_number_retention_hours, minutes=10))
    aws.store.mark_finished(old.call_sid, at=datetime.now(UTC) - timedelta(hours=settings.raw_number_retention_hours))
    fresh = _ended(aws, make_call, ago=timedelta(hours=1))
    aws.store.mark_finished(fresh.call_sid)
    hashed = caller_hash(settings.caller_hash_key, CALLER_NUMBER)
    aws.store.update_call(old.call_sid, {"caller_hash": hashed})

    assert run_sweep()["redacted"] == 1

    redacted = aws.store.require_call(old.call_sid)
    assert redacted.from_number == mask_phone(CALLER_NUMBER) != CALLER_NUMBER
    assert redacted.caller_hash == hashed
    assert redacted.number_redacted_at is not None
    assert aws.store.require_call(fresh.call_sid).from_number == CALLER_NUMBER
    assert CALLER_NUMBER not in str(aws.store.client.get_item(TableName=aws.store.table_name, Key=_key(old)))
    assert emitted_metrics(capsys.readouterr().out).get("NumbersRedacted") == 1
    assert run_sweep()["redacted"] == 0


def test_a_call_started_before_midnight_loses_its_raw_number_two_days_later(aws, make_call, twilio):
    # Started at 23:50, finished two hours later: due for masking on the second UTC day after the day it started.
    started = datetime.now(UTC).replace(hour=23, minute=50, second=0, microsecond=0) - timedelta(days=3)
    call = make_call(created_at=started, status=CallStatus.RINGING)
    assert aws.store.apply_status(call.call_sid, CallStatus.COMPLETED, 3, at=started + timedelta(hours=2))
    finished = started + timedelta(hours=2)
    aws.store.mark_finished(call.call_sid, at=finished)
    settings = load_settings()
    due = finished + timedelta(hours=settings.raw_number_retention_hours, minutes=5)
    assert (due.date() - started.date()).days == 2

    report = sweep(settings=settings, store=aws.store, archive=aws.archive, calls=twilio_calls(settings), now=due)

    assert report.redacted == 1
    assert aws.store.require_call(call.call_sid).from_number == mask_phone(CALLER_NUMBER)


def _key(call: Any) -> dict[str, Any]:
    return {"pk": {"S": f"CALL#{call.call_sid}"}, "sk": {"S": "RECORD"}}


def test_outbound_calls_lose_the_callees_number_not_the_business_number(aws, make_call, twilio):
    call = make_call(direction=CallDirection.OUTBOUND, status=CallStatus.COMPLETED)
    aws.store.mark_finished(call.call_sid, at=datetime.now(UTC) - timedelta(days=1, minutes=1))
    assert aws.store.redact_caller_number(call.call_sid)
    record = aws.store.require_call(call.call_sid)
    assert record.to_number == mask_phone(call.to_number)
    assert record.from_number == call.from_number  # the business's caller id
    assert not aws.store.redact_caller_number(call.call_sid)  # once
