"""Record what Twilio reports about a call's media stream.

Only an error changes the record (its `error` field, first error kept): start and stop are logged with the
StreamSid for tracing. The stream SID itself is never written here: the relay claims it once
(`CallStore.claim_stream`), and a write from this callback would make that claim fail.
"""

from __future__ import annotations

from callcore.store import CallNotFound, CallStore
from lambdas.models import StreamEvent, StreamStatusCallback
from lambdas.observability import bind_call, logger


def record_stream_event(callback: StreamStatusCallback, *, store: CallStore) -> bool:
    """True if the record changed."""
    bind_call(callback.call_sid)
    details = {"stream_sid": callback.stream_sid, "stream_event": callback.stream_event.value}
    if callback.stream_event is not StreamEvent.ERROR:
        logger.info("media stream event", extra=details)
        return False
    logger.warning("media stream error", extra={**details, "stream_error": callback.stream_error})
    try:
        store.update_call(
            callback.call_sid,
            {"error": f"stream-error: {callback.stream_error or 'no detail'}"},
            only_if_unset=("error",),
        )
    except CallNotFound:
        logger.warning("stream status for a call without a record: ignored")
        return False
    return True
