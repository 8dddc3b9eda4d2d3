"""Call recordings, opt-in (a profile's `recording.enabled` for the calls of its line, CALL_RECORDING_ENABLED
without profiles) and consent-gated: a call is recorded only once its media stream to the agent opened, where the
relay's greeting begins with the recording announcement (the same setting turns both on). Twilio records both sides
on separate channels (left: caller, right: agent); when the recording ends, its audio is copied into the transcripts
bucket (`recordings/year=…/month=…/day=…/CA….wav`, KMS-encrypted, expired by its own
lifecycle rule), linked on the call record, and deleted at Twilio, so one copy remains and it is ours.

Idempotent: a repeated stream-started callback finds the recording already requested; a repeated recording-status
callback finds it stored (and deleted at Twilio) and does nothing, or finishes what an earlier attempt left undone.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from callcore.models import CallRecord, CallRecording, RecordingState, utc_now
from callcore.store import CallNotFound, CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.errors import ApiError
from lambdas.logic.lines import Lines
from lambdas.models import RecordingStatus, RecordingStatusCallback
from lambdas.observability import Metric, bind_call, count, logger

if TYPE_CHECKING:
    from lambdas.twilio_calls import TwilioCalls

# Kept in memory up to this size, then on the function's /tmp (a 30-minute dual-channel WAV is ~58 MB).
SPOOL_BYTES = 8 * 1024 * 1024
_WAV_MAGIC = (b"RIFF", b"WAVE")


def start_recording(
    call_sid: str, *, store: CallStore, lines: Lines, twilio: TwilioCalls, status_callback_url: str
) -> bool:
    """Ask Twilio to record a call whose stream to the agent just opened, if its line records calls; True when a
    recording was requested."""
    bind_call(call_sid)
    record = store.get_call(call_sid)
    if record is None or record.stream_token_expiry is None:
        logger.info("not recorded: the call was not answered by the agent")  # no greeting, so no announcement
        return False
    if not lines.of_record(record).recording_enabled:
        logger.info("not recorded: the call's line does not record calls")
        return False
    if record.recording is not None:
        logger.info("recording already requested")
        return False
    try:
        recording_sid = twilio.start_recording(call_sid, status_callback_url=status_callback_url)
    except ApiError as error:
        # The call goes on unrecorded: a recording is never worth dropping a caller for.
        logger.warning("could not start the recording", extra={"reason": error.message})
        return False
    store.update_call(
        call_sid,
        {"recording": CallRecording(recording_sid=recording_sid, requested_at=utc_now())},
        only_if_unset=("recording",),
    )
    logger.info("recording started", extra={"recording_sid": recording_sid})
    return True


def store_recording(
    callback: RecordingStatusCallback, *, store: CallStore, archive: TranscriptArchive, twilio: TwilioCalls
) -> RecordingState | None:
    """Apply a recording-status callback; returns the recording's state afterwards (None: not a call of ours)."""
    bind_call(callback.call_sid)
    record = store.get_call(callback.call_sid)
    if record is None:
        logger.warning("recording status for a call without a record: ignored")
        return None
    recording = record.recording or CallRecording(recording_sid=callback.recording_sid, requested_at=utc_now())
    if recording.recording_sid != callback.recording_sid:
        logger.warning("recording status for another recording of this call: ignored")
        return None
    if callback.recording_status is RecordingStatus.IN_PROGRESS:
        return recording.state
    if callback.recording_status is not RecordingStatus.COMPLETED:
        failed = recording.model_copy(
            update={"state": RecordingState.FAILED, "error": f"{callback.recording_status.value} {callback.error_code}"}
        )
        _save(store, record, failed)
        twilio.delete_recording(callback.recording_sid)
        logger.warning("the recording failed", extra={"status": callback.recording_status.value})
        return RecordingState.FAILED
    if recording.state is not RecordingState.STORED:
        recording = _copy_into_bucket(record, recording, callback, archive=archive, twilio=twilio)
        _save(store, record, recording)
    if recording.deleted_at is None:
        twilio.delete_recording(callback.recording_sid)
        _save(store, record, recording.model_copy(update={"deleted_at": utc_now()}))
        count(Metric.RECORDINGS_STORED)
    logger.info("recording stored", extra={"key": recording.key, "seconds": recording.duration_seconds})
    return RecordingState.STORED


def _copy_into_bucket(
    record: CallRecord,
    recording: CallRecording,
    callback: RecordingStatusCallback,
    *,
    archive: TranscriptArchive,
    twilio: TwilioCalls,
) -> CallRecording:
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as audio:
        size = twilio.download_recording(callback.recording_sid, audio)
        audio.seek(0)
        head = audio.read(12)
        if size < len(head) or (head[:4], head[8:12]) != _WAV_MAGIC:
            raise ValueError(f"the recording {callback.recording_sid} is not a WAV file ({size} bytes)")
        audio.seek(0)
        key = archive.write_recording(record, audio)
    return recording.model_copy(
        update={
            "state": RecordingState.STORED,
            "key": key,
            "duration_seconds": callback.recording_duration,
            "channels": callback.recording_channels,
            "stored_at": utc_now(),
        }
    )


def _save(store: CallStore, record: CallRecord, recording: CallRecording) -> None:
    try:
        store.update_call(record.call_sid, {"recording": recording})
    except CallNotFound:
        logger.warning("the call record disappeared while its recording was stored")
