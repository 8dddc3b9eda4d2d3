"""The end-of-call sweep finishes the calls whose end-of-call work failed and was never re-run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from callcore.models import CallOutcome, CallStatus, TranscriptTurn, TurnRole
from callcore.transcripts import call_summary_key
from lambdas.handlers import sweep as sweep_handler
from lambdas.logic.sweep import SWEEP_AFTER
from tests.unit.lambdas.conftest import Handler, emitted_metrics
from tests.unit.lambdas.events import BUCKET, FakeLambdaContext


def _turn(call_sid: str, text: str) -> TranscriptTurn:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    return TranscriptTurn(call_sid=call_sid, index=0, role=TurnRole.AGENT, text=text, started_at=at, ended_at=at)


def _ended(aws: Any, make_call: Any, *, ago: timedelta, sequence: int = 3) -> Any:
    """A call that ended `ago` whose end-of-call work never ran (the status Lambda failed after applying the status)."""
    ended_at = datetime.now(UTC) - ago
    call = make_call(created_at=ended_at - timedelta(minutes=2))
    assert aws.store.apply_status(call.call_sid, CallStatus.COMPLETED, sequence, at=ended_at, duration_seconds=120)
    return call


def run_sweep() -> dict[str, Any]:
    handler: Handler = sweep_handler.handler
    return handler({"source": "aws.events"}, FakeLambdaContext())


def test_the_sweep_finishes_an_ended_unfinished_call_and_frees_its_seat(aws, make_call, capsys):
    call = _ended(aws, make_call, ago=SWEEP_AFTER + timedelta(minutes=1))
    aws.store.put_turn(_turn(call.call_sid, "stored turn"))
    assert aws.store.active_calls() == 1  # the seat the failed finish never gave back

    assert run_sweep() == {"finished": 1}

    record = aws.store.require_call(call.call_sid)
    assert record.finished_at is not None
    assert record.outcome is CallOutcome.ERROR  # no relay transcript: the relay died with the call
    assert aws.store.active_calls() == 0
    assert aws.archive.read_transcript(call.call_sid, call.created_at) == [_turn(call.call_sid, "stored turn")]
    aws.archive.client.head_object(Bucket=BUCKET, Key=call_summary_key(call.call_sid, call.created_at))
    assert emitted_metrics(capsys.readouterr().out).get("CallsSwept") == 1
    # Finished calls are left alone by the next sweep.
    assert run_sweep() == {"finished": 0}
    assert aws.store.active_calls() == 0


def test_the_sweep_leaves_live_recent_and_finished_calls_alone(aws, make_call):
    live = make_call()  # in progress
    recent = _ended(aws, make_call, ago=timedelta(seconds=30))  # the status Lambda may still be at work
    done = _ended(aws, make_call, ago=SWEEP_AFTER * 2)
    aws.store.mark_finished(done.call_sid)

    assert run_sweep() == {"finished": 0}
    for call in (live, recent, done):
        assert aws.store.require_call(call.call_sid).outcome is None
    assert aws.store.active_calls() == 3


def test_one_call_that_cannot_be_finished_does_not_stop_the_others(aws, make_call, monkeypatch):
    broken = _ended(aws, make_call, ago=SWEEP_AFTER * 2)
    fine = _ended(aws, make_call, ago=SWEEP_AFTER * 2)
    real_release = type(aws.store).release_seat

    def release(store: Any, call_sid: str, *args: Any, **kwargs: Any) -> bool:
        if call_sid == broken.call_sid:
            raise RuntimeError("DynamoDB throttled")
        return bool(real_release(store, call_sid, *args, **kwargs))

    monkeypatch.setattr("callcore.store.CallStore.release_seat", release)
    assert run_sweep() == {"finished": 1}
    assert aws.store.require_call(fine.call_sid).finished_at is not None
    assert aws.store.require_call(broken.call_sid).finished_at is None  # the next sweep tries again
