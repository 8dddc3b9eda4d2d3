"""The call's records: each transcript turn written to the store as it completes (so a crash loses at most the turn
in flight), and at the end the agent seat given back, the transcript and summary in S3 and the call record's outcome,
latencies, usage and cost.

What is stored of the caller's turns has every run of three or more digits masked (MASK_CALLER_DIGITS): callers read
out card numbers and codes. The live conversation, and the turns a new model session is re-seeded with, keep them.

Every store/archive call runs on a thread of the records' own bounded pool (`in_record_thread`): boto3 is blocking
and the event loop carries every call's audio.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from callcore.masking import mask_phone, mask_spoken_numbers
from callcore.models import (
    CallLatencies,
    CallOutcome,
    CallRecord,
    TokenUsage,
    ToolCall,
    TranscriptTurn,
    TurnRole,
    utc_now,
)
from callcore.pricing import ModelPrices, estimate_cost
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
# Records are written on threads of their own, a few at a time: a burst of call endings queues here, never ahead of
# the admissions and heartbeats on the loop's default executor, and never takes more of the GIL than these threads.
RECORD_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="records")


async def in_record_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function` on a record writer thread (boto3 blocks)."""
    return await asyncio.get_running_loop().run_in_executor(
        RECORD_WRITERS, functools.partial(function, *args, **kwargs)
    )


def cut_text(text: str, heard_ms: int | None, total_ms: int) -> str:
    """The part of an interrupted utterance the caller heard, proportional to heard/total audio, on a word boundary."""
    if not heard_ms or total_ms <= 0:
        return ""
    if heard_ms >= total_ms:
        return text
    words = text.split()
    keep = round(len(words) * heard_ms / total_ms)
    return " ".join(words[:keep])


def usage_from_response_done(event: Mapping[str, Any]) -> TokenUsage:
    usage = (event.get("response") or {}).get("usage") or {}
    inputs = usage.get("input_token_details") or {}
    outputs = usage.get("output_token_details") or {}
    return TokenUsage(
        input_text_tokens=int(inputs.get("text_tokens") or 0),
        input_audio_tokens=int(inputs.get("audio_tokens") or 0),
        input_cached_tokens=int(inputs.get("cached_tokens") or 0),
        output_text_tokens=int(outputs.get("text_tokens") or 0),
        output_audio_tokens=int(outputs.get("audio_tokens") or 0),
    )


class CallRecorder:
    def __init__(
        self,
        record: CallRecord,
        *,
        store: CallStore,
        archive: TranscriptArchive,
        prices: ModelPrices,
        turn_retention_days: int,
        mask_caller_digits: bool = True,
    ) -> None:
        self.record = record
        self._mask_caller_digits = mask_caller_digits
        self._store = store
        self._archive = archive
        self._prices = prices
        self._retention = timedelta(days=turn_retention_days)
        self._next_index = 0
        self._writes: set[asyncio.Task[None]] = set()
        self._pending_tools: list[ToolCall] = []
        self.usage = TokenUsage()
        self.greeting_ms: int | None = None
        self.turn_ms: list[int] = []
        self.tool_ms: list[int] = []
        self.barge_ins = 0
        self.tool_calls = 0
        self.model_reconnects = 0
        self.model_rotations = 0
        self.error: str | None = None  # why the call could not go on as it should, for the record (no personal data)
        self.turns: list[TranscriptTurn] = []

    # ---- during the call ---------------------------------------------------------------------------------------

    def caller_turn(self, text: str, *, started_at: datetime, item_id: str | None) -> None:
        if text.strip():
            self._write(TurnRole.CALLER, text.strip(), started_at=started_at, item_id=item_id)

    def agent_turn(
        self,
        text: str,
        *,
        started_at: datetime,
        item_id: str | None,
        interrupted: bool = False,
        heard_ms: int | None = None,
    ) -> None:
        tools, self._pending_tools = self._pending_tools, []
        # An interruption a few ms in cuts to no words, yet the caller did hear the agent start: keep that turn.
        if text.strip() or tools or (interrupted and heard_ms):
            self._write(
                TurnRole.AGENT,
                text.strip(),
                started_at=started_at,
                item_id=item_id,
                interrupted=interrupted,
                heard_ms=heard_ms,
                tool_calls=tools,
            )

    def tool_call(self, call: ToolCall) -> None:
        """Kept until the next agent turn is written, which carries it."""
        self.tool_calls += 1
        self.tool_ms.append(call.duration_ms)
        self._pending_tools.append(call)

    def add_usage(self, usage: TokenUsage) -> None:
        self.usage = self.usage + usage

    def _write(self, role: TurnRole, text: str, *, started_at: datetime, item_id: str | None, **extra: Any) -> None:
        turn = TranscriptTurn(
            call_sid=self.record.call_sid,
            index=self._next_index,
            role=role,
            text=text,
            started_at=started_at,
            ended_at=utc_now(),
            item_id=item_id,
            **extra,
        )
        self._next_index += 1
        self.turns.append(turn)
        task = asyncio.create_task(self._put(self._stored(turn)))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _stored(self, turn: TranscriptTurn) -> TranscriptTurn:
        """A turn as DynamoDB and S3 keep it: the caller's digits masked unless MASK_CALLER_DIGITS is off."""
        if self._mask_caller_digits and turn.role is TurnRole.CALLER:
            return turn.model_copy(update={"text": mask_spoken_numbers(turn.text)})
        return turn

    async def _put(self, turn: TranscriptTurn) -> None:
        try:
            await in_record_thread(self._store.put_turn, turn)
        except Exception:
            # The turn stays in memory and goes to S3 at the end; losing the DynamoDB copy only weakens crash recovery.
            log.exception("could not store turn %d of call %s", turn.index, turn.call_sid)

    # ---- at the end --------------------------------------------------------------------------------------------

    async def finish(self, outcome: CallOutcome) -> CallRecord | None:
        """Give back the seat, flush turns, update the call record, write transcript + summary to S3, then expire the
        turn items."""
        await self._give_back_seat()
        if self._pending_tools:
            self.agent_turn("", started_at=utc_now(), item_id=None)
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        changes: dict[str, Any] = {
            "outcome": outcome,
            "turn_count": len(self.turns),
            "barge_in_count": self.barge_ins,
            "tool_call_count": self.tool_calls,
            "model_reconnects": self.model_reconnects,
            "model_rotations": self.model_rotations,
            "latencies": CallLatencies(greeting_ms=self.greeting_ms, turn_ms=self.turn_ms, tool_ms=self.tool_ms),
            "usage": self.usage,
            "estimated_cost_usd": estimate_cost(self.usage, self._prices),
        }
        if self.error is not None:
            changes["error"] = self.error
        try:
            return await in_record_thread(self._finish_sync, changes)
        except Exception:
            log.exception("could not finish the records of call %s", self.record.call_sid)
            return None

    async def _give_back_seat(self) -> None:
        """The stream has ended: the agent's seat is free now, not when Twilio's final status callback arrives (it may
        never arrive). Once per call, whoever comes first (`CallStore.release_seat`): after a transfer the transfer
        endpoint already gave it back and this changes nothing. A failure leaves it to that callback or the sweep."""
        try:
            released = await in_record_thread(self._store.release_seat, self.record.call_sid)
        except Exception:
            log.exception("could not give back the seat of call %s", self.record.call_sid)
            return
        if released:
            log.info("call %s gave back its agent seat", self.record.call_sid)

    def _finish_sync(self, changes: dict[str, Any]) -> CallRecord:
        call_sid = self.record.call_sid
        record = self._store.update_call(call_sid, changes, only_if_unset=("outcome",))
        # The store's turns are the durable copy; the in-memory ones cover any write that failed.
        stored = {turn.index: turn for turn in self._store.list_turns(call_sid)}
        for turn in self.turns:
            stored.setdefault(turn.index, self._stored(turn))
        turns = [stored[i] for i in sorted(stored)]
        key = self._archive.write_transcript(record, turns)
        record = self._store.update_call(call_sid, {"transcript_key": key})
        self._archive.write_call_summary(record)
        self._store.expire_turns(call_sid, utc_now() + self._retention)
        log.info(
            "call %s from %s recorded: %d turns, outcome %s, cost $%s",
            call_sid,
            mask_phone(record.from_number),
            len(turns),
            record.outcome.value if record.outcome else None,
            record.estimated_cost_usd,
        )
        return record
