"""The sweep: every few minutes, put right what a lost or failed message left behind, and forget what must not be kept.

The status Lambda does the end-of-call work when Twilio's terminal callback arrives (`call_status.finish_call`), and
writes `finished_at` once all of it succeeded. Without this sweep a call would keep its agent seat (the fleet's
capacity shrinking call by call) when that work failed, or when the callback itself was lost (a 5xx, a timeout, a
throttled request: Twilio does not retry those). Each run lists the calls of the last three UTC days through the
by-day index and, for each one:

1. ended but unfinished, and old enough to have finished by itself: finish it;
2. still open on its record long after it must have ended: ask Twilio's REST API, then finish it or give back its
   seat (`lambdas.logic.reconcile`);
3. finished more than RAW_NUMBER_RETENTION_HOURS ago: replace the caller's number by its masked form (the keyed hash
   stays, for counting and erasure).

Then it recounts the seats the records hold and corrects the fleet counter if it drifted (metric SeatDrift), and each
business line's counter the same way (logged per line). Every step is idempotent, so a sweep racing a late callback,
or another sweep, is safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callcore.models import CallRecord, utc_now
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.logic.call_status import finish_call
from lambdas.logic.reconcile import (
    reconcile_line_seat_counters,
    reconcile_open_call,
    reconcile_seat_counter,
    should_ask_twilio,
)
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.settings import LambdaSettings
from lambdas.twilio_calls import TwilioCalls

# Well past the status Lambda's own attempt (its timeout is 20 s) and the relay's end-of-call write.
SWEEP_AFTER = timedelta(minutes=5)
# Today and the two days before (UTC), by the day a call started: a call that started just before midnight, lasted up
# to MAX_CALL_SECONDS (4 h at most) and finished after it is due to lose its raw number RAW_NUMBER_RETENTION_HOURS
# (24 h at most) later, which is two UTC days after the day it started.
DAYS_SWEPT = 3
PAGE_SIZE = 100


@dataclass
class SweepReport:
    finished: int = 0  # ended calls whose end-of-call work the sweep did
    reconciled: int = 0  # open records Twilio said had ended, finished
    redacted: int = 0  # finished records whose caller number was masked
    failed: int = 0  # calls the sweep could not handle (logged; the next sweep tries again)
    seat_drift: int | None = None  # counter minus records, corrected; None: not checked this time
    line_seat_drift: dict[str, int] = field(default_factory=dict)  # per business line: the same, where corrected

    def as_dict(self) -> dict[str, int | None]:
        # The lines' drifts are logged where corrected; the report keeps the fleet's figure.
        return {
            "finished": self.finished,
            "reconciled": self.reconciled,
            "redacted": self.redacted,
            "failed": self.failed,
            "seat_drift": self.seat_drift,
        }


def sweep(
    *,
    settings: LambdaSettings,
    store: CallStore,
    archive: TranscriptArchive,
    calls: TwilioCalls,
    now: datetime | None = None,
) -> SweepReport:
    """One sweep over the last DAYS_SWEPT days. A call that fails is logged and left for the next sweep; the others
    still run."""
    now = now or utc_now()
    report = SweepReport()
    for record in _recent_calls(store, now):
        bind_call(record.call_sid)
        try:
            _sweep_call(record, settings=settings, store=store, archive=archive, calls=calls, now=now, report=report)
        except Exception:
            report.failed += 1
            logger.exception("the sweep could not handle the call; the next sweep tries again")
    report.seat_drift = reconcile_seat_counter(store, sweep_days(now))
    if report.seat_drift is not None:
        count(Metric.SEAT_DRIFT, abs(report.seat_drift))
    report.line_seat_drift = reconcile_line_seat_counters(store, sweep_days(now))
    return report


def _sweep_call(
    record: CallRecord,
    *,
    settings: LambdaSettings,
    store: CallStore,
    archive: TranscriptArchive,
    calls: TwilioCalls,
    now: datetime,
    report: SweepReport,
) -> None:
    if record.status.is_terminal and record.finished_at is None:
        if now - (record.ended_at or record.created_at) >= SWEEP_AFTER:
            # The relay had minutes to write its transcript: no grace wait.
            finish_call(record.call_sid, settings=settings, store=store, archive=archive, transcript_grace_seconds=0)
            report.finished += 1
            count(Metric.CALLS_SWEPT)
            logger.warning("the sweep finished an ended call", extra={"status": record.status.value})
    elif should_ask_twilio(record, settings=settings, now=now):
        if reconcile_open_call(record, settings=settings, store=store, archive=archive, calls=calls, now=now):
            report.reconciled += 1
    elif _number_due_for_redaction(record, settings=settings, now=now) and store.redact_caller_number(
        record.call_sid, at=now
    ):
        report.redacted += 1
        count(Metric.NUMBERS_REDACTED)


def _number_due_for_redaction(record: CallRecord, *, settings: LambdaSettings, now: datetime) -> bool:
    if record.finished_at is None or record.number_redacted_at is not None:
        return False
    return now - record.finished_at >= timedelta(hours=settings.raw_number_retention_hours)


def sweep_days(now: datetime) -> list[str]:
    """The UTC days swept, oldest first: a call that is still open, or ended just after midnight, may have started
    the day before."""
    return [(now - timedelta(days=back)).strftime("%Y-%m-%d") for back in range(DAYS_SWEPT - 1, -1, -1)]


def _recent_calls(store: CallStore, now: datetime) -> Iterator[CallRecord]:
    for day in sweep_days(now):
        token = None
        while True:
            page = store.list_calls_by_day(day, limit=PAGE_SIZE, start=token)
            yield from page.calls
            token = page.next_token
            if not token:
                break
