"""What the sweep puts right when a message was lost: a call still open on its record long after it must have ended
(its last status callback never arrived), and a seat counter (the fleet's, a business line's) that disagrees with the
seats the records hold.

A number's status callback reports an inbound call only once, when it ends: nothing here waits for `ringing` or
`in-progress`. A call is suspect by its age alone (from its record's creation, the moment Twilio asked the voice
webhook), and Twilio's REST API says where it really is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from callcore.models import CallRecord, utc_now
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.logic.call_status import finish_call
from lambdas.observability import Metric, count, logger
from lambdas.settings import LambdaSettings
from lambdas.twilio_calls import CallNotLive, TwilioCalls

# Past MAX_CALL_SECONDS the relay has ended every call it carried; the margin covers ringing before the stream, the
# relay's own hang-up and Twilio's callback delivery.
OPEN_CALL_MARGIN = timedelta(minutes=10)
# A seat whose stream never started: the stream token expired long ago, so no stream can start any more.
NEVER_STREAMED_MARGIN = timedelta(minutes=5)
# The by-day index lags the table by a moment: a count is trusted only once no seat has moved for this long.
INDEX_SETTLE = timedelta(seconds=10)
COUNTER_ATTEMPTS = 4
COUNTER_RETRY_SECONDS = 5.0


def should_ask_twilio(record: CallRecord, *, settings: LambdaSettings, now: datetime) -> bool:
    """A call whose record is still open although it must have ended by now, or that holds a seat for a stream that
    can no longer start."""
    if record.status.is_terminal:
        return False
    age = now - record.created_at
    if age >= timedelta(seconds=settings.max_call_seconds) + OPEN_CALL_MARGIN:
        return True
    holds_seat = record.stream_token_expiry is not None and record.seat_released_at is None
    never_streamed = holds_seat and record.stream_sid is None
    return never_streamed and age >= timedelta(seconds=settings.stream_token_ttl_seconds) + NEVER_STREAMED_MARGIN


def reconcile_open_call(
    record: CallRecord,
    *,
    settings: LambdaSettings,
    store: CallStore,
    archive: TranscriptArchive,
    calls: TwilioCalls,
    now: datetime,
) -> bool:
    """Ask Twilio where the call is. Ended: record Twilio's final status and finish the call (seat, outcome,
    transcript, summary); True. Still up (with a human after a transfer, or the relay is gone): the agent is not on
    it, so its seat, if it still holds one, is given back; False. Twilio errors other than "no such call" propagate:
    the next sweep asks again."""
    call_sid = record.call_sid
    try:
        state = calls.call_state(call_sid)
    except CallNotLive:
        # Twilio has no such call: nothing will ever end it, and the agent is certainly not on it.
        logger.warning("Twilio knows no call with this CallSid: its seat is given back, its record left open")
        store.release_seat(call_sid)
        return False
    if not state.status.is_terminal:
        if store.release_seat(call_sid):
            logger.warning("a call still up on Twilio without the agent: its seat was given back")
        return False
    store.settle_status(call_sid, state.status, ended_at=state.ended_at or now, duration_seconds=state.duration_seconds)
    # The relay ended long ago: no grace wait for its transcript.
    finish_call(call_sid, settings=settings, store=store, archive=archive, transcript_grace_seconds=0)
    count(Metric.CALLS_RECONCILED)
    logger.warning("a call whose last status callback was lost was finished", extra={"status": state.status.value})
    return True


def reconcile_seat_counter(
    store: CallStore,
    days: Iterable[str],
    *,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """Recount the seats the call records hold and correct the fleet counter when it disagrees. Returns the drift
    (counter minus records) that was corrected, 0 when they agreed, None when seats kept moving on every attempt (the
    next sweep tries again)."""
    days = list(days)
    for attempt in range(COUNTER_ATTEMPTS):
        if attempt:
            sleep(COUNTER_RETRY_SECONDS)
        seen = store.seat_counter()
        if seen.changed_at is not None and clock() - seen.changed_at < INDEX_SETTLE:
            continue
        counted = store.count_held_seats(days)
        drift = seen.active - counted
        if drift == 0:
            return 0
        if store.correct_active_calls(counted, seen=seen):
            logger.error(
                "the agent seat counter disagreed with the call records: corrected",
                extra={"counter": seen.active, "records": counted, "drift": drift},
            )
            return drift
    logger.info("seats kept moving: the counter is checked again at the next sweep")
    return None


def reconcile_line_seat_counters(
    store: CallStore, days: Iterable[str], *, clock: Callable[[], datetime] = utc_now
) -> dict[str, int]:
    """Recount the seats of each business line the calls of these days were on and correct its counter when it
    disagrees (a line's counter that moved within INDEX_SETTLE, or moves while counting, waits for the next sweep).
    Returns the corrected drift (counter minus records) per line; lines that agreed are not listed."""
    days = list(days)
    lines = store.count_held_line_seats(days)
    # Each counter is read before the records are counted, so a seat that moves meanwhile fails the correction.
    seen = {line: store.seat_counter(line) for line in lines}
    settled = {line: s for line, s in seen.items() if s.changed_at is None or clock() - s.changed_at >= INDEX_SETTLE}
    counted = store.count_held_line_seats(days) if settled else {}
    corrected: dict[str, int] = {}
    for line, counter in settled.items():
        drift = counter.active - counted.get(line, 0)
        if drift and store.correct_active_calls(counted.get(line, 0), seen=counter, line=line):
            logger.error(
                "a line's agent seat counter disagreed with the call records: corrected",
                extra={"profile_id": line, "counter": counter.active, "records": counted.get(line, 0), "drift": drift},
            )
            corrected[line] = drift
    return corrected
