"""Apply Twilio's call progress callbacks to the call record, in SequenceNumber order.

`CallStore.apply_status` writes a callback only when its SequenceNumber is newer than the last one applied, so a
duplicate or a late arrival changes nothing. The work of a call's end (outcome, agent seat, transcript recovery,
summary) runs after the terminal status is applied, and `finished_at` is written only once all of it succeeded. If it
failed (S3 or DynamoDB error, the function timed out in the grace wait), Twilio's retry of the terminal callback finds
the call terminal but unfinished and runs the work again: every step is idempotent (outcome only if unset, the seat
released by a conditional write at most once, the same transcript and summary objects overwritten).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from callcore.models import CallOutcome, CallRecord, CallStatus, utc_now
from callcore.store import CallNotFound, CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.models import CallStatusCallback
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.settings import LambdaSettings


def apply_call_status(
    callback: CallStatusCallback, *, settings: LambdaSettings, store: CallStore, archive: TranscriptArchive
) -> bool:
    """True if the callback changed the record; False for a duplicate, a late arrival or an unknown call."""
    bind_call(callback.call_sid)
    status = callback.call_status
    sequence = callback.sequence_number
    try:
        applied = store.apply_status(
            callback.call_sid,
            status,
            sequence,
            at=_twilio_time(callback.timestamp),
            duration_seconds=callback.call_duration if status.is_terminal else None,
        )
    except CallNotFound:
        # A call this API never answered (its voice webhook failed and the fallback URL took it): nothing to update.
        logger.warning("status callback for a call without a record: ignored", extra={"status": status.value})
        return False
    if not applied:
        if _finish_if_unfinished(callback, settings=settings, store=store, archive=archive):
            return True
        logger.info(
            "duplicate or late status callback: nothing changed", extra={"status": status.value, "seq": sequence}
        )
        return False
    logger.info("call status applied", extra={"status": status.value, "seq": sequence})
    if status.is_terminal:
        finish_call(callback.call_sid, settings=settings, store=store, archive=archive)
    return True


def _finish_if_unfinished(
    callback: CallStatusCallback, *, settings: LambdaSettings, store: CallStore, archive: TranscriptArchive
) -> bool:
    """A terminal callback that changed nothing: if the end-of-call work of an earlier attempt failed, do it now."""
    if not callback.call_status.is_terminal:
        return False
    record = store.require_call(callback.call_sid)
    if not record.status.is_terminal or record.finished_at is not None:
        return False
    logger.warning("retried terminal callback: finishing the call", extra={"status": record.status.value})
    finish_call(callback.call_sid, settings=settings, store=store, archive=archive)
    return True


def _twilio_time(value: str | None) -> datetime:
    """Twilio's Timestamp (RFC 2822); the time of arrival when it is missing or unreadable."""
    if value:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return utc_now()


def finish_call(
    call_sid: str,
    *,
    settings: LambdaSettings,
    store: CallStore,
    archive: TranscriptArchive,
    transcript_grace_seconds: float | None = None,
) -> None:
    """Outcome, seat, transcript and summary of an ended call, then the `finished_at` mark. Safe to run again.
    `transcript_grace_seconds`: how long the relay may still take to write its transcript (default: the setting)."""
    # First, before any wait: the seat is free the moment the call ended (a no-op for a call that never had one or
    # whose transfer already gave it back).
    if store.release_seat(call_sid):
        logger.info("call left the agent", extra={"active_calls": store.active_calls()})
    record = store.require_call(call_sid)
    # Before the outcome: the relay writes its outcome before its transcript, so once the transcript is there (or the
    # grace is over without it) the relay's outcome, if it will ever have one, is already stored.
    grace = settings.transcript_grace_seconds if transcript_grace_seconds is None else transcript_grace_seconds
    relay_wrote = _relay_wrote_transcript(record, archive, grace_seconds=grace)
    record = store.update_call(
        call_sid, {"outcome": _fallback_outcome(record.status, relay_wrote=relay_wrote)}, only_if_unset=("outcome",)
    )
    if not relay_wrote:
        record = _recover_transcript(record, settings=settings, store=store, archive=archive)
    archive.write_call_summary(record)
    store.mark_finished(call_sid)


def _fallback_outcome(status: CallStatus, *, relay_wrote: bool) -> CallOutcome:
    """The outcome of a call nobody else gave one: stored only if unset, so the relay's, the transfer's, the hang-up's
    and the admission's (overflow, voicemail) outcomes always win."""
    if status is not CallStatus.COMPLETED:
        return CallOutcome.NOT_ANSWERED  # busy, no-answer, canceled, failed: nobody talked
    # The relay writes the transcript of every call it carried: without one, it died (or never got the stream).
    return CallOutcome.CALLER_HUNG_UP if relay_wrote else CallOutcome.ERROR


def _recover_transcript(
    record: CallRecord, *, settings: LambdaSettings, store: CallStore, archive: TranscriptArchive
) -> CallRecord:
    """The relay did not write the transcript (it died, or the call never reached it): build it from the turns
    already stored, so analytics see every call."""
    turns = store.list_turns(record.call_sid)
    if not turns:
        return record
    key = archive.write_transcript(record, turns)
    record = store.update_call(record.call_sid, {"transcript_key": key}, only_if_unset=("transcript_key",))
    store.expire_turns(record.call_sid, utc_now() + timedelta(days=settings.turn_retention_days))
    count(Metric.TRANSCRIPTS_RECOVERED)
    logger.warning("transcript recovered from stored turns", extra={"turns": len(turns)})
    return record


POLL_SECONDS = 0.5


def _relay_wrote_transcript(record: CallRecord, archive: TranscriptArchive, *, grace_seconds: float) -> bool:
    """Twilio's `completed` callback races the relay's own end-of-call write (both follow the hang-up). A relay that
    admitted the stream gets a short grace to finish, so a normal call is not "recovered" from its turns."""
    deadline = time.monotonic() + (grace_seconds if record.stream_sid is not None else 0.0)
    while True:
        if archive.transcript_exists(record.call_sid, record.created_at):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
