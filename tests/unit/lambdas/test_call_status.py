"""POST /twilio/status: SequenceNumber order, duplicates, the end of a call, transcript recovery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from callcore.models import CallOutcome, CallStatus, TranscriptTurn, TurnRole
from callcore.store import TTL_ATTRIBUTE, call_pk, turn_sk
from callcore.transcripts import call_summary_key
from lambdas.handlers import call_status
from tests.unit.lambdas.conftest import emitted_metrics
from tests.unit.lambdas.events import BUCKET, new_call_sid, status_params, twilio_event

PATH = "/twilio/status"


def send(invoke, call_sid: str, status: str, sequence: int, **extra: str):
    return invoke(call_status.handler, twilio_event(PATH, status_params(call_sid, status, sequence, **extra)))


def test_callbacks_apply_in_sequence_order_and_late_ones_change_nothing(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)

    assert send(invoke, call.call_sid, "in-progress", 1).json() == {"applied": True}
    answered = aws.store.require_call(call.call_sid)
    assert answered.status is CallStatus.IN_PROGRESS
    assert answered.answered_at == datetime(2025, 8, 16, 3, 45, 1, tzinfo=UTC)

    late = send(invoke, call.call_sid, "ringing", 0)  # sequence 0 arrives after 1
    assert late.status == 200
    assert late.json() == {"applied": False}
    assert aws.store.require_call(call.call_sid).status is CallStatus.IN_PROGRESS


def test_duplicate_callback_is_200_and_changes_nothing(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)
    send(invoke, call.call_sid, "in-progress", 1)
    before = aws.store.require_call(call.call_sid)

    duplicate = send(invoke, call.call_sid, "in-progress", 1, Timestamp="Mon, 16 Aug 2025 03:50:00 +0000")

    assert duplicate.status == 200
    assert duplicate.json() == {"applied": False}
    assert aws.store.require_call(call.call_sid) == before


def test_completed_before_in_progress_keeps_completed_and_counts_down_once(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)
    assert aws.store.active_calls() == 1

    send(invoke, call.call_sid, "completed", 3, CallDuration="42")
    send(invoke, call.call_sid, "in-progress", 2)  # late
    send(invoke, call.call_sid, "completed", 3, CallDuration="42")  # retried

    record = aws.store.require_call(call.call_sid)
    assert record.status is CallStatus.COMPLETED
    assert record.duration_seconds == 42
    assert record.ended_at == datetime(2025, 8, 16, 3, 45, 1, tzinfo=UTC)
    assert aws.store.active_calls() == 0
    make_call()  # another live call: the counter moved exactly once for the first
    assert aws.store.active_calls() == 1


def test_unanswered_call_gets_outcome_not_answered(aws, invoke, make_call):
    for status in ("busy", "no-answer", "canceled", "failed"):
        call = make_call(status=CallStatus.RINGING)
        send(invoke, call.call_sid, status, 2, CallDuration="0")
        record = aws.store.require_call(call.call_sid)
        assert record.status.value == status
        assert record.outcome is CallOutcome.NOT_ANSWERED
    assert aws.store.active_calls() == 0


def test_an_outcome_set_earlier_is_kept(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING, admitted=False, outcome=CallOutcome.OVERFLOW_TO_HUMAN)
    aws.store.adjust_active_calls(+3)  # other calls on the agent

    send(invoke, call.call_sid, "completed", 2, CallDuration="30")

    assert aws.store.require_call(call.call_sid).outcome is CallOutcome.OVERFLOW_TO_HUMAN
    assert aws.store.active_calls() == 3  # an overflow call was never counted in, so it is not counted out


def _turn(call_sid: str, index: int, role: TurnRole, text: str) -> TranscriptTurn:
    start = datetime(2025, 8, 16, 3, 45, tzinfo=UTC) + timedelta(seconds=5 * index)
    return TranscriptTurn(
        call_sid=call_sid, index=index, role=role, text=text, started_at=start, ended_at=start + timedelta(seconds=3)
    )


def test_completed_without_a_transcript_recovers_it_from_stored_turns(aws, invoke, make_call, capsys):
    call = make_call()
    turns = [
        _turn(call.call_sid, 0, TurnRole.AGENT, "Hello, how can I help?"),
        _turn(call.call_sid, 1, TurnRole.CALLER, "I'd like a table for two."),
    ]
    for turn in reversed(turns):
        aws.store.put_turn(turn)

    send(invoke, call.call_sid, "completed", 2, CallDuration="61")

    record = aws.store.require_call(call.call_sid)
    assert aws.archive.read_transcript(call.call_sid, record.created_at) == turns
    assert record.transcript_key is not None
    assert record.transcript_key.endswith(f"/{call.call_sid}.jsonl")
    summary_object = aws.archive.client.get_object(
        Bucket=BUCKET, Key=call_summary_key(call.call_sid, record.created_at)
    )
    summary = json.loads(summary_object["Body"].read())
    assert summary["call_sid"] == call.call_sid
    assert summary["duration_seconds"] == 61
    assert summary["caller_masked"] == "+1******0123"
    # The turns now expire: the transcript is safe in S3.
    item = aws.store.client.get_item(
        TableName=aws.store.table_name, Key={"pk": {"S": call_pk(call.call_sid)}, "sk": {"S": turn_sk(0)}}
    )["Item"]
    assert TTL_ATTRIBUTE in item
    assert emitted_metrics(capsys.readouterr().out).get("TranscriptsRecovered") == 1


def test_a_transcript_the_relay_wrote_is_left_alone(aws, invoke, make_call, capsys):
    call = make_call()
    relay_turns = [_turn(call.call_sid, 0, TurnRole.AGENT, "written by the relay")]
    aws.archive.write_transcript(call, relay_turns)
    aws.store.put_turn(_turn(call.call_sid, 0, TurnRole.AGENT, "written by the relay"))
    aws.store.put_turn(_turn(call.call_sid, 1, TurnRole.CALLER, "a turn the relay chose not to archive"))

    send(invoke, call.call_sid, "completed", 2, CallDuration="10")

    assert aws.archive.read_transcript(call.call_sid, call.created_at) == relay_turns
    assert aws.store.require_call(call.call_sid).transcript_key is None
    assert "TranscriptsRecovered" not in emitted_metrics(capsys.readouterr().out)


def test_a_call_that_never_reached_the_agent_gets_a_summary_but_no_transcript(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING, admitted=False)
    send(invoke, call.call_sid, "no-answer", 1, CallDuration="0")
    assert not aws.archive.transcript_exists(call.call_sid, call.created_at)
    summary_key = call_summary_key(call.call_sid, call.created_at)
    summary = json.loads(aws.archive.client.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
    assert summary["outcome"] == "not_answered"


def test_status_for_an_unknown_call_is_acknowledged_and_writes_nothing(aws, invoke):
    answer = send(invoke, new_call_sid(), "completed", 3)
    assert answer.status == 200
    assert answer.json() == {"applied": False}
    assert aws.written_items() == []


def test_bad_signature_is_403_and_changes_nothing(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)
    event = twilio_event(PATH, status_params(call.call_sid, "completed", 5), auth_token="another-auth-token")
    assert invoke(call_status.handler, event).status == 403
    assert aws.store.require_call(call.call_sid).status is CallStatus.RINGING
    assert aws.store.active_calls() == 1


def test_missing_sequence_number_is_a_400_naming_it(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)
    params = {k: v for k, v in status_params(call.call_sid, "completed", 1).items() if k != "SequenceNumber"}
    answer = invoke(call_status.handler, twilio_event(PATH, params))
    assert answer.status == 400
    assert answer.json()["field"] == "SequenceNumber"
    assert aws.store.require_call(call.call_sid).status is CallStatus.RINGING


def test_unknown_call_status_is_a_400(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)
    answer = invoke(call_status.handler, twilio_event(PATH, status_params(call.call_sid, "exploded", 1)))
    assert answer.status == 400
    assert answer.json()["field"] == "CallStatus"


def test_a_relay_still_finishing_gets_a_grace_before_recovery(aws, invoke, make_call, capsys, monkeypatch):
    """`completed` can arrive while the relay is writing its transcript: the Lambda waits for it, recovers nothing."""

    call = make_call(stream_sid="MZ" + "1" * 32)
    aws.store.put_turn(_turn(call.call_sid, 0, TurnRole.AGENT, "stored turn"))
    relay_turns = [_turn(call.call_sid, 0, TurnRole.AGENT, "the relay's full transcript")]
    polls: list[float] = []

    def relay_finishes_while_we_wait(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            aws.archive.write_transcript(call, relay_turns)

    monkeypatch.setattr("lambdas.logic.call_status.time.sleep", relay_finishes_while_we_wait)
    send(invoke, call.call_sid, "completed", 2, CallDuration="30")

    assert len(polls) == 2
    assert aws.archive.read_transcript(call.call_sid, call.created_at) == relay_turns
    assert "TranscriptsRecovered" not in emitted_metrics(capsys.readouterr().out)


def test_recovery_after_the_grace_when_the_relay_never_writes(aws, invoke, make_call, capsys, monkeypatch):
    from lambdas.logic import call_status as logic

    monkeypatch.setenv("TRANSCRIPT_GRACE_SECONDS", "0.2")
    call = make_call(stream_sid="MZ" + "2" * 32)
    turns = [_turn(call.call_sid, 0, TurnRole.AGENT, "stored turn")]
    aws.store.put_turn(turns[0])
    monkeypatch.setattr(logic, "POLL_SECONDS", 0.05)

    send(invoke, call.call_sid, "completed", 2, CallDuration="30")

    assert aws.archive.read_transcript(call.call_sid, call.created_at) == turns
    assert emitted_metrics(capsys.readouterr().out).get("TranscriptsRecovered") == 1


# ---- the outcome of a call nobody else gave one -------------------------------------------------------------------


def test_a_completed_call_whose_relay_died_gets_outcome_error(aws, invoke, make_call):
    call = make_call()  # admitted, no transcript ever written, no outcome
    send(invoke, call.call_sid, "completed", 2, CallDuration="40")
    record = aws.store.require_call(call.call_sid)
    assert record.outcome is CallOutcome.ERROR
    summary_key = call_summary_key(call.call_sid, call.created_at)
    summary = json.loads(aws.archive.client.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
    assert summary["outcome"] == "error"  # the summary is written after the outcome


def test_a_completed_call_with_the_relays_transcript_but_no_outcome_is_caller_hung_up(aws, invoke, make_call):
    call = make_call()
    aws.archive.write_transcript(call, [_turn(call.call_sid, 0, TurnRole.AGENT, "hello")])
    send(invoke, call.call_sid, "completed", 2, CallDuration="40")
    assert aws.store.require_call(call.call_sid).outcome is CallOutcome.CALLER_HUNG_UP


def test_the_relays_outcome_is_never_overwritten(aws, invoke, make_call):
    call = make_call(outcome=CallOutcome.MAX_DURATION)
    send(invoke, call.call_sid, "completed", 2, CallDuration="40")  # no transcript: would be `error` if unset
    assert aws.store.require_call(call.call_sid).outcome is CallOutcome.MAX_DURATION


# ---- end-of-call work that failed is done by Twilio's retry --------------------------------------------------------


def test_a_failed_finish_is_redone_by_the_retried_terminal_callback_and_the_seat_released_once(
    aws, invoke, make_call, monkeypatch, capsys
):
    call = make_call()
    aws.store.put_turn(_turn(call.call_sid, 0, TurnRole.AGENT, "stored turn"))
    aws.store.adjust_active_calls(+1)  # another caller on the agent
    real_write_summary = aws.archive.write_call_summary.__func__

    def s3_down(self, record):
        raise RuntimeError("S3 is unavailable")

    monkeypatch.setattr("callcore.transcripts.TranscriptArchive.write_call_summary", s3_down)
    failed = send(invoke, call.call_sid, "completed", 3, CallDuration="61")
    assert failed.status == 500  # Twilio retries the callback
    half_done = aws.store.require_call(call.call_sid)
    assert half_done.status is CallStatus.COMPLETED
    assert half_done.finished_at is None
    assert aws.store.active_calls() == 1  # this call's seat is free, the other caller's is not

    monkeypatch.setattr("callcore.transcripts.TranscriptArchive.write_call_summary", real_write_summary)
    retried = send(invoke, call.call_sid, "completed", 3, CallDuration="61")
    assert retried.json() == {"applied": True}
    record = aws.store.require_call(call.call_sid)
    assert record.finished_at is not None
    assert record.outcome is CallOutcome.ERROR
    assert aws.archive.read_transcript(call.call_sid, call.created_at) == [
        _turn(call.call_sid, 0, TurnRole.AGENT, "stored turn")
    ]
    aws.archive.client.head_object(Bucket=BUCKET, Key=call_summary_key(call.call_sid, call.created_at))
    assert aws.store.active_calls() == 1  # not given back a second time
    assert emitted_metrics(capsys.readouterr().out).get("TranscriptsRecovered") == 1  # recovered once

    # Once finished, a further duplicate changes nothing.
    assert send(invoke, call.call_sid, "completed", 3, CallDuration="61").json() == {"applied": False}
    assert aws.store.require_call(call.call_sid).finished_at == record.finished_at


def test_a_finish_that_timed_out_in_the_grace_wait_is_redone(aws, invoke, make_call, monkeypatch):
    call = make_call(stream_sid="MZ" + "3" * 32)

    def lambda_timed_out(seconds: float) -> None:
        raise TimeoutError("the function ran out of time")

    monkeypatch.setattr("lambdas.logic.call_status.time.sleep", lambda_timed_out)
    assert send(invoke, call.call_sid, "completed", 2, CallDuration="5").status == 500
    assert aws.store.require_call(call.call_sid).finished_at is None
    assert aws.store.active_calls() == 0  # the seat was given back before the wait

    monkeypatch.setenv("TRANSCRIPT_GRACE_SECONDS", "0")
    assert send(invoke, call.call_sid, "completed", 2, CallDuration="5").json() == {"applied": True}
    record = aws.store.require_call(call.call_sid)
    assert record.finished_at is not None
    assert record.outcome is CallOutcome.ERROR
    assert aws.store.active_calls() == 0


def test_a_late_non_terminal_callback_does_not_finish_anything(aws, invoke, make_call):
    call = make_call(status=CallStatus.RINGING)
    send(invoke, call.call_sid, "completed", 3, CallDuration="1")
    finished = aws.store.require_call(call.call_sid)
    assert send(invoke, call.call_sid, "in-progress", 2).json() == {"applied": False}
    assert aws.store.require_call(call.call_sid) == finished


def test_status_logs_carry_the_call_sid_and_never_a_full_number(aws, invoke, make_call, logs):
    from tests.unit.lambdas.events import AGENT_NUMBER, CALLER_NUMBER

    call = make_call(status=CallStatus.RINGING)
    # Twilio's status callbacks carry the numbers too; none of them may reach the logs.
    send(invoke, call.call_sid, "completed", 2, CallDuration="5", From=CALLER_NUMBER, To=AGENT_NUMBER)
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    assert lines
    assert all(line["correlation_id"] == call.call_sid for line in lines)
    assert CALLER_NUMBER not in logs.getvalue()
    assert AGENT_NUMBER not in logs.getvalue()
