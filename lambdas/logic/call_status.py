"""Apply Twilio's call progress callbacks to the call record, in SequenceNumber order.

`CallStore.apply_status` writes a callback only when its SequenceNumber is newer than the last one applied, so a
duplicate or a late arrival changes nothing. The work of a call's end (outcome, live-call counter, transcript recovery)
runs only for the callback that actually applied the terminal status: exactly once per call.
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
        logger.info(
            "duplicate or late status callback: nothing changed", extra={"status": status.value, "seq": sequence}
        )
        return False
    logger.info("call status applied", extra={"status": status.value, "seq": sequence})
    if status.is_terminal:
        _finish_call(callback.call_sid, status, settings=settings, store=store, archive=archive)
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


def _finish_call(
    call_sid: str, status: CallStatus, *, settings: LambdaSettings, store: CallStore, archive: TranscriptArchive
) -> None:
    record = store.require_call(call_sid)
    if status is not CallStatus.COMPLETED:
        # busy, no-answer, canceled, failed: nobody talked. An outcome set earlier (overflow, voicemail) stays.
        record = store.update_call(call_sid, {"outcome": CallOutcome.NOT_ANSWERED}, only_if_unset=("outcome",))
    if record.stream_token_expiry is not None and record.transfer_target is None:
        # Only calls the voice webhook admitted to the agent were counted in; a transfer already gave its seat back.
        active = store.adjust_active_calls(-1)
        logger.info("call left the agent", extra={"active_calls": active})
    _archive_if_missing(record, settings=settings, store=store, archive=archive)


def _archive_if_missing(
    record: CallRecord, *, settings: LambdaSettings, store: CallStore, archive: TranscriptArchive
) -> None:
    """The relay writes the transcript when the stream ends. If it is not in S3 (the relay died, or the call never
    reached it), build it from the turns already stored and write the call summary, so analytics see every call."""
    if _relay_wrote_transcript(record, archive, grace_seconds=settings.transcript_grace_seconds):
        return
    turns = store.list_turns(record.call_sid)
    if turns:
        key = archive.write_transcript(record, turns)
        record = store.update_call(record.call_sid, {"transcript_key": key}, only_if_unset=("transcript_key",))
        store.expire_turns(record.call_sid, utc_now() + timedelta(days=settings.turn_retention_days))
        count(Metric.TRANSCRIPTS_RECOVERED)
        logger.warning("transcript recovered from stored turns", extra={"turns": len(turns)})
    archive.write_call_summary(record)


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
