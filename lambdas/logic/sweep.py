"""The end-of-call sweep: finish the calls whose end-of-call work never completed.

The status Lambda does that work when Twilio's terminal callback arrives (`call_status.finish_call`), and writes
`finished_at` once all of it succeeded. If it failed (S3 or DynamoDB error, a timeout), Twilio re-sends the callback
only when it could not connect at all, so without this sweep the call's agent seat would stay taken (the fleet's
capacity shrinking call by call), its summary never written and its transcript never recovered. Every few minutes
the sweep lists the last two UTC days' calls through the by-day index and finishes each ended, unfinished one that has
had time to finish by itself. Every step of `finish_call` is idempotent, so a sweep racing a late callback is safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from callcore.models import CallRecord, utc_now
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.logic.call_status import finish_call
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.settings import LambdaSettings

# Well past the status Lambda's own attempt (its timeout is 20 s) and the relay's end-of-call write.
SWEEP_AFTER = timedelta(minutes=5)
DAYS_SWEPT = 2  # today and yesterday (UTC): a call that ended just after midnight started the day before
PAGE_SIZE = 100


def sweep_unfinished_calls(
    *, settings: LambdaSettings, store: CallStore, archive: TranscriptArchive, now: datetime | None = None
) -> int:
    """Finish every ended call that has not been finished; returns how many were. A call that fails to finish is
    logged and left for the next sweep; the others still run."""
    now = now or utc_now()
    finished = 0
    for record in _unfinished(store, now):
        bind_call(record.call_sid)
        try:
            # The relay had minutes to write its transcript: no grace wait.
            finish_call(record.call_sid, settings=settings, store=store, archive=archive, transcript_grace_seconds=0)
        except Exception:
            logger.exception("the sweep could not finish the call; the next sweep tries again")
            continue
        finished += 1
        count(Metric.CALLS_SWEPT)
        logger.warning("the sweep finished an ended call", extra={"status": record.status.value})
    return finished


def _unfinished(store: CallStore, now: datetime) -> Iterator[CallRecord]:
    for days_back in range(DAYS_SWEPT - 1, -1, -1):
        day = (now - timedelta(days=days_back)).strftime("%Y-%m-%d")
        token = None
        while True:
            page = store.list_calls_by_day(day, limit=PAGE_SIZE, start=token)
            for record in page.calls:
                ended = record.ended_at or record.created_at
                if record.status.is_terminal and record.finished_at is None and now - ended >= SWEEP_AFTER:
                    yield record
            token = page.next_token
            if not token:
                break
