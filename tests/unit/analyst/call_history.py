"""A few hundred calls over several days, written the way production writes them: the record created as the
incoming-call Lambda creates it, Twilio's status callbacks through the real status Lambda (signed events), and the
relay's end of call (the record's outcome, latencies, usage and cost, then the transcript and the call summary
through `callcore.transcripts.TranscriptArchive`).

`GeneratedCall` keeps what was generated, so tests compute their expected figures from it, never from what the code
under test read back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any, cast

from callcore.models import (
    CallDirection,
    CallLatencies,
    CallOutcome,
    CallRecord,
    CallStatus,
    TokenUsage,
    ToolCall,
    TranscriptTurn,
    TurnRole,
)
from callcore.pricing import ModelPrices, estimate_cost
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.handlers import call_status
from lambdas.webhooks import STATUS_PATH
from tests.unit.lambdas.events import ACCOUNT_SID, FakeLambdaContext, status_params, twilio_event

BUSINESS_NUMBERS = ("+15550100000", "+15550100001")
CALLERS = tuple(f"+1555010{n:04d}" for n in range(200, 260))
HUMAN_LINE = "+15550100999"
TALKED = (CallOutcome.COMPLETED_BY_AGENT, CallOutcome.CALLER_HUNG_UP, CallOutcome.TRANSFERRED)


@dataclass(frozen=True)
class GeneratedCall:
    call_sid: str
    created_at: datetime
    direction: CallDirection
    caller: str
    business: str
    outcome: CallOutcome
    duration_seconds: int | None
    transferred: bool
    greeting_ms: int | None
    turn_ms: tuple[int, ...]
    barge_ins: int
    cost: Decimal | None
    turns: tuple[TranscriptTurn, ...]

    @property
    def day(self) -> str:
        return self.created_at.strftime("%Y-%m-%d")


def _call_sid(rng: random.Random) -> str:
    return "CA" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def _turns(rng: random.Random, call_sid: str, start: datetime, count: int, *, tools: bool) -> list[TranscriptTurn]:
    turns = []
    at = start
    for index in range(count):
        role = TurnRole.AGENT if index % 2 == 0 else TurnRole.CALLER
        length = timedelta(milliseconds=rng.randint(800, 4000))
        interrupted = role is TurnRole.AGENT and index > 0 and rng.random() < 0.15
        tool_calls = []
        if tools and role is TurnRole.AGENT and index == 2:
            tool_calls.append(
                ToolCall(
                    call_id=f"call_{index}",
                    name="get_business_hours",
                    arguments="{}",
                    result='{"open":"08:00","close":"20:00"}',
                    duration_ms=rng.randint(5, 60),
                )
            )
        turns.append(
            TranscriptTurn(
                call_sid=call_sid,
                index=index,
                role=role,
                text=f"{role.value} line {index}",
                started_at=at,
                ended_at=at + length,
                interrupted=interrupted,
                heard_ms=int(length.total_seconds() * 500) if interrupted else None,
                tool_calls=tool_calls,
            )
        )
        at += length + timedelta(milliseconds=300)
    return turns


def _post_status(call_sid: str, status: str, sequence: int, at: datetime, **extra: str) -> None:
    params = status_params(call_sid, status, sequence, Timestamp=format_datetime(at), **extra)
    answer = call_status.handler(twilio_event(STATUS_PATH, params), cast(Any, FakeLambdaContext()))
    assert answer["statusCode"] == 200, answer


def generate_history(
    store: CallStore, archive: TranscriptArchive, *, calls: int, days: int, now: datetime, seed: int = 7
) -> list[GeneratedCall]:
    """`calls` calls spread over the `days` UTC days up to `now`, plus a few older than 30 days (outside every
    saved query's window)."""
    rng = random.Random(seed)
    prices = ModelPrices()
    generated: list[GeneratedCall] = []
    span = timedelta(days=days) - timedelta(hours=2)
    starts = [now - timedelta(minutes=5) - span * rng.random() for _ in range(calls)]
    starts += [now - timedelta(days=40 + n) for n in range(3)]
    for start in starts:
        created = start.astimezone(UTC)
        call_sid = _call_sid(rng)
        direction = CallDirection.OUTBOUND if rng.random() < 0.2 else CallDirection.INBOUND
        caller, business = rng.choice(CALLERS), rng.choice(BUSINESS_NUMBERS)
        from_number, to_number = (caller, business) if direction is CallDirection.INBOUND else (business, caller)
        store.create_call(
            CallRecord(
                call_sid=call_sid,
                account_sid=ACCOUNT_SID,
                direction=direction,
                from_number=from_number,
                to_number=to_number,
                status=CallStatus.RINGING,
                created_at=created,
            )
        )
        roll = rng.random()
        if roll < 0.1:  # nobody answered: Twilio says so, the status path finishes the call
            _post_status(call_sid, "no-answer", 0, created + timedelta(seconds=30))
            generated.append(
                GeneratedCall(
                    call_sid,
                    created,
                    direction,
                    caller,
                    business,
                    CallOutcome.NOT_ANSWERED,
                    None,
                    False,
                    None,
                    (),
                    0,
                    None,
                    (),
                )
            )
            continue
        answered = created + timedelta(seconds=rng.randint(1, 8))
        _post_status(call_sid, "in-progress", 0, answered)
        outcome = rng.choice(TALKED)
        turn_count = rng.randint(2, 12)
        turns = _turns(rng, call_sid, answered, turn_count, tools=rng.random() < 0.5)
        greeting_ms = rng.randint(15, 140)
        turn_ms = tuple(rng.randint(250, 1400) for _ in range(turn_count // 2))
        barge_ins = sum(turn.interrupted for turn in turns)
        usage = TokenUsage(
            input_audio_tokens=rng.randint(500, 9000),
            input_text_tokens=rng.randint(800, 3000),
            input_cached_tokens=rng.randint(0, 500),
            output_audio_tokens=rng.randint(300, 6000),
            output_text_tokens=rng.randint(20, 400),
        )
        cost = estimate_cost(usage, prices)
        tool_ms = [tool.duration_ms for turn in turns for tool in turn.tool_calls]
        # The relay's end of call (relay.records.CallRecorder.finish): the record, then transcript and summary.
        if outcome is CallOutcome.TRANSFERRED:
            store.claim_transfer(
                call_sid, reason="caller asked for a person", summary="Wants a refund.", lease=timedelta(seconds=30)
            )
            store.update_call(call_sid, {"transfer_target": HUMAN_LINE})
        record = store.update_call(
            call_sid,
            {
                "outcome": outcome,
                "turn_count": turn_count,
                "barge_in_count": barge_ins,
                "tool_call_count": len(tool_ms),
                "latencies": CallLatencies(greeting_ms=greeting_ms, turn_ms=list(turn_ms), tool_ms=tool_ms),
                "usage": usage,
                "estimated_cost_usd": cost,
            },
            only_if_unset=("outcome",),
        )
        key = archive.write_transcript(record, turns)
        record = store.update_call(call_sid, {"transcript_key": key})
        archive.write_call_summary(record)
        duration = max(1, round((turns[-1].ended_at - answered).total_seconds()))
        _post_status(call_sid, "completed", 1, answered + timedelta(seconds=duration), CallDuration=str(duration))
        generated.append(
            GeneratedCall(
                call_sid,
                created,
                direction,
                caller,
                business,
                outcome,
                duration,
                outcome is CallOutcome.TRANSFERRED,
                greeting_ms,
                turn_ms,
                barge_ins,
                cost,
                tuple(turns),
            )
        )
    return generated
